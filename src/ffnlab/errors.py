"""The one error type for bad user input: the message says what was wrong and what is accepted."""


class ConfigError(ValueError):
    """A config value or input that cannot work. train.py prints it as one line, without a traceback."""


class DataConfigError(ConfigError):
    """A data setting or file that cannot work (missing, empty, too short for seq_len, hub offline...)."""
