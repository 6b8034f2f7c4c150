"""The embedded zero-shot task `shakespeare_next_line` (ffnlab.downstream.next_line): built the same way every time
from the test split as training cuts it, never from the splits a model trains or is validated on."""

from __future__ import annotations

from collections import Counter

from ffnlab.data.module import split_text
from ffnlab.downstream.next_line import CHOICES, CORPUS, FRACTIONS, MAX_DOCS, build_docs, spoken, held_out_text


def test_the_documents_are_the_same_every_time_and_well_formed():
    text = held_out_text()
    docs = build_docs(text)
    assert docs == build_docs(text) and len(docs) == MAX_DOCS
    for doc in docs:
        assert len(doc["choices"]) == CHOICES == len(set(doc["choices"]))
        assert all(spoken(choice) for choice in doc["choices"])
        assert doc["context"].endswith("\n")
        answer = doc["choices"][doc["label"]]
        assert doc["context"] + answer in text  # the true next line follows its context in the play
    labels = Counter(doc["label"] for doc in docs)
    assert set(labels) == set(range(CHOICES)) and min(labels.values()) > MAX_DOCS / CHOICES / 2


def test_the_task_reads_only_the_test_split():
    splits = split_text(CORPUS.read_text(encoding="utf-8"), FRACTIONS)
    assert held_out_text() == splits["test"]
    docs = build_docs(splits["test"])
    # every context is a stretch of the test split; the train and validation splits hold none of them
    contexts = [doc["context"] for doc in docs if len(doc["context"]) > 80]
    assert contexts and not any(context in splits["train"] or context in splits["val"] for context in contexts)
