"""lm-eval resolves `!function next_line.dataset` beside the task's YAML: the task is built in ffnlab."""

from ffnlab.downstream.next_line import dataset  # noqa: F401
