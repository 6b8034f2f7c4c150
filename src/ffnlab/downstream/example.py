"""One text-to-text example and the interface every fine-tuning task has (ffnlab.downstream.text_tasks lists them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Example:
    """What the model reads (`input`), what it is trained to write (`target`), and what scoring needs besides."""

    input: str                     # T5's text-to-text input, e.g. "cola sentence: The book was read."
    target: str                    # the text trained on, e.g. "acceptable"
    answers: tuple[str, ...] = ()  # every acceptable answer (SQuAD, ReCoRD); () means (target,)
    group: int | None = None       # the question (MultiRC) or query (ReCoRD) the example belongs to, numbered in
                                   # the split's order: MultiRC's EM is over questions, ReCoRD scores each query once
    label: int | None = None       # the gold class where the target is not it: WSC's target is the candidate
                                   # referent (T5's wsc_simple), `label` whether it is the pronoun's referent

    @property
    def gold_answers(self) -> tuple[str, ...]:
        return self.answers or (self.target,)


class Task(Protocol):
    """A fine-tuning task: where its rows come from, its examples per split, and its metrics."""

    name: str                  # "glue_cola", ... "squad", "shakespeare_speaker"
    benchmark: str | None      # "glue" | "super_glue" | None
    train_split: str           # the split trained on
    eval_sets: dict[str, str]  # score name -> split scored (MNLI: matched and mismatched)

    def source(self) -> dict:
        """What identifies the rows read: the hub dataset (path, config, revision) or local files' sha256."""
        ...

    def examples(self, split: str) -> list[Example]:
        """The split's examples, in the split's row order."""
        ...

    def metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        """Scores (0-100) of predictions[i] for examples[i]."""
        ...
