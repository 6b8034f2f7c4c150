"""`shakespeare_speaker`: who says this? A fine-tuning task the `make demo`-scale checkpoints can take offline.

The corpus (tinyshakespeare by default) is "NAME:\\nspeech lines\\n\\n" blocks, cut into train/val/test by characters
exactly as pre-training cuts it (`ffnlab.data.module.split_text`, the same `split_fractions`). An example is one speech:
    input  "speaker speech: <the speech's lines joined by spaces, its first MAX_SPEECH_CHARS characters>"
    target "<the speaker's name as in the corpus>", e.g. "PETRUCHIO"
Training examples come from the train split, scored ones from the test split, which neither pre-training nor
fine-tuning saw. Both use only characters of the corpus, so the character tokenizer pre-training learned from the
train split can write every input and target. The first block of a split that does not start the corpus is left out:
the cut lands inside it, and its first line may be a clipped name ("TONIO:").

The candidate speakers are the `speakers` most frequent speakers of the test split (ties by name) among those with at
least `min_train_speeches` speeches in the train split: a speaker the model never saw speak in training cannot be
learnt. On tinyshakespeare with split_fractions [0.9, 0.05, 0.05] the test split (the end of the corpus) is mostly
The Tempest, whose cast never speaks in the train split (PROSPERO 60 test speeches / 0 train, SEBASTIAN 42/0,
ANTONIO 38/0, GONZALO 37/0, MIRANDA 34/0, ...), plus the end of The Taming of the Shrew: PETRUCHIO 50/21,
LUCENTIO 23/20, BIONDELLO 20/4, HORTENSIO 19/25, BAPTISTA 18/6, KATHARINA 18/10, GREMIO 10/23, TRANIO 9/26,
BIANCA 7/5. So the defaults (speakers=8, min_train_speeches=20) give 5 candidates, PETRUCHIO, LUCENTIO, HORTENSIO,
GREMIO and TRANIO: 111 test examples (50/23/19/10/9) and 115 train examples (21/20/25/23/26). On the test set, chance
(a uniform guess among the 5) is 20% accuracy; always answering the majority speaker, PETRUCHIO, gives 45.0% accuracy
(50/111) and 12.4 macro-F1. min_train_speeches=5 admits BAPTISTA, KATHARINA and BIANCA too (8 speakers, 154 test
examples, majority 32.5%), with as few as 5 training speeches for one of them.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import sklearn.metrics

from ffnlab.data import corpus
from ffnlab.config.schemas import REPO_ROOT
from ffnlab.downstream import scores
from ffnlab.downstream.example import Example
from ffnlab.config.errors import ConfigError, DataConfigError
from ffnlab.data.store import file_sha256

NAME = "shakespeare_speaker"
CORPUS = REPO_ROOT / "data" / "tinyshakespeare" / "input.txt"
FRACTIONS = (0.9, 0.05, 0.05)  # conf/data/tinyshakespeare.yaml's split_fractions
PREFIX = "speaker speech: "  # T5-style "<task> <feature>: "; letters, space and colon only: all in the corpus
MAX_SPEECH_CHARS = 96  # the start of a speech: enough to tell a voice, short next to a demo model's seq_len


def speeches(text: str, starts_corpus: bool) -> list[tuple[str, str]]:
    """(speaker, speech) of each block of a split's text; the first block only when the split starts the corpus."""
    blocks = text.split("\n\n")[0 if starts_corpus else 1:]
    found = []
    for block in blocks:
        head, _, body = block.strip("\n").partition("\n")
        lines = [line.strip() for line in body.split("\n") if line.strip()]
        if head.endswith(":") and len(head) > 1 and lines:
            found.append((head[:-1], " ".join(lines)))
    return found


@dataclass(frozen=True)
class SpeakerTask:
    """Options: `files` (the corpus), `split_fractions` (as its pre-training data config), `speakers` (at most this
    many candidates), `min_train_speeches` (a candidate's least number of speeches in the train split)."""

    files: tuple[str, ...] = (str(CORPUS),)
    split_fractions: tuple[float, ...] = FRACTIONS
    speakers: int = 8
    min_train_speeches: int = 20

    name: ClassVar[str] = NAME
    benchmark: ClassVar[str | None] = None
    train_split: ClassVar[str] = "train"
    eval_sets: ClassVar[dict[str, str]] = {NAME: "test"}

    def __post_init__(self):
        fractions = self.split_fractions
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) > 1 + 1e-9 or fractions[0] == 0:
            raise ConfigError(f"{NAME}: split_fractions={list(fractions)}; give 3 non-negative fractions (train, "
                              "val, test) summing to at most 1, as the corpus's data config: e.g. [0.9, 0.05, 0.05]")
        if self.speakers < 2 or self.min_train_speeches < 1:
            raise ConfigError(f"{NAME}: speakers={self.speakers}, min_train_speeches={self.min_train_speeches}; "
                              "accepted: speakers >= 2, min_train_speeches >= 1")
        for path in self.files:
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                raise DataConfigError(f"{NAME}: files: {path} is not a non-empty file; give the corpus's text files, "
                                      f"e.g. files=[{CORPUS}]")

    @cached_property
    def split_speeches(self) -> dict[str, list[tuple[str, str]]]:
        from ffnlab.data.module import split_text  # imports torch: only this task needs it

        text = "".join(corpus.text_files_stream(list(self.files)))
        return {split: speeches(part, starts_corpus=split == "train")
                for split, part in split_text(text, self.split_fractions).items()}

    @cached_property
    def candidates(self) -> tuple[str, ...]:
        train = collections.Counter(name for name, _ in self.split_speeches["train"])
        test = collections.Counter(name for name, _ in self.split_speeches["test"])
        ranked = sorted((name for name in test if train[name] >= self.min_train_speeches),
                        key=lambda name: (-test[name], name))
        if len(ranked) < 2:
            raise DataConfigError(f"{NAME}: {len(ranked)} test-split speakers have >= {self.min_train_speeches} "
                                  "train-split speeches; lower min_train_speeches or give a larger corpus")
        return tuple(ranked[: self.speakers])

    def source(self) -> dict:
        files = {os.path.basename(path): file_sha256(path) for path in self.files}
        return {"files": files, "split_fractions": list(self.split_fractions), "speakers": self.speakers,
                "min_train_speeches": self.min_train_speeches}

    def examples(self, split: str) -> list[Example]:
        if split not in self.split_speeches:
            raise DataConfigError(f"{NAME}: no split {split!r}; accepted: {', '.join(self.split_speeches)}")
        wanted = set(self.candidates)
        return [Example(PREFIX + speech[:MAX_SPEECH_CHARS].rstrip(), name)
                for name, speech in self.split_speeches[split] if name in wanted]

    def metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        """Accuracy and macro-F1 over the candidates; a prediction that is no candidate's name is a miss."""
        if len(predictions) != len(examples) or not examples:
            raise ValueError(f"{NAME}: {len(predictions)} predictions for {len(examples)} examples")
        gold = [e.target for e in examples]
        macro_f1 = sklearn.metrics.f1_score(gold, list(predictions), labels=list(self.candidates), average="macro",
                                            zero_division=0)
        return {"accuracy": scores.accuracy(gold, list(predictions)), "macro_f1": 100 * float(macro_f1)}
