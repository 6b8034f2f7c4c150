"""`shakespeare_next_line`: a zero-shot multiple-choice task a `make demo`-scale checkpoint can be scored on without
the hub. Given a few lines of a play, pick the line that comes next among 4 candidates.

Built deterministically from tinyshakespeare's **test** split, cut exactly as training cuts it
(`conf/data/tinyshakespeare.yaml`: the last 5% of the characters), so no document was seen in training. Each target is
a spoken line (not a speaker's name, not blank); its context is the `CONTEXT_LINES` lines before it as they stand
(speaker names included); the 3 distractors are other spoken lines of the test split drawn with a fixed seed. The
answer's position among the choices is drawn with the same generator, so it is uniform over the four.
"""

from __future__ import annotations

import random
from pathlib import Path

from ffnlab.config.schemas import REPO_ROOT

CORPUS = REPO_ROOT / "data" / "tinyshakespeare" / "input.txt"
FRACTIONS = (0.9, 0.05, 0.05)  # conf/data/tinyshakespeare.yaml's split_fractions
CONTEXT_LINES = 4
CHOICES = 4
MAX_DOCS = 500
SEED = 1234


def spoken(line: str) -> bool:
    """A line of verse or prose: not blank, not a speaker's name (`KING RICHARD III:`), long enough to tell apart."""
    return len(line.strip()) >= 12 and not line.rstrip().endswith(":")


def build_docs(text: str, max_docs: int = MAX_DOCS, seed: int = SEED) -> list[dict]:
    """The task's documents from the test split's text: {context, choices, label}."""
    lines = text.split("\n")
    eligible = [i for i in range(CONTEXT_LINES + 1, len(lines)) if spoken(lines[i])]  # line 0 is cut mid-line
    pool = sorted({lines[i] for i in eligible})
    stride = max(1, len(eligible) // max_docs)
    rng = random.Random(seed)
    docs = []
    for i in eligible[::stride][:max_docs]:
        answer = lines[i]
        distractors = rng.sample([line for line in pool if line != answer], CHOICES - 1)
        label = rng.randrange(CHOICES)
        choices = [*distractors[:label], answer, *distractors[label:]]
        docs.append({"context": "\n".join(lines[i - CONTEXT_LINES : i]) + "\n", "choices": choices, "label": label})
    return docs


def held_out_text(corpus: Path = CORPUS) -> str:
    from ffnlab.data.module import split_text

    return split_text(corpus.read_text(encoding="utf-8"), FRACTIONS)["test"]


def dataset(**_):
    """lm-eval's `custom_dataset` hook (tasks/shakespeare_next_line.yaml): the documents as a `test` split."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(build_docs(held_out_text()))})
