"""The one error type for bad user input: the message says what was wrong and what is accepted."""


class ConfigError(ValueError):
    """A config value or input that cannot work. train.py prints it as one line, without a traceback."""


class DataConfigError(ConfigError):
    """A data setting or file that cannot work (missing, empty, too short for seq_len, hub offline...)."""


def one_line(error: BaseException) -> str:
    """An error as one line (Hydra's composition errors span several: the problem, then a hint)."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
