"""The one error type for bad user input: the message says what was wrong and what is accepted."""


class ConfigError(ValueError):
    """A config value or input that cannot work. train.py prints it as one line, without a traceback."""
