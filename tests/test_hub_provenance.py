"""Hub corpora carry their provenance (issue 22.7): the commit a hub dataset's revision resolves to is part of the
data identity, the token store's key and manifest, and every run record, so stores prepared from two commits are
never pooled. The hub is not reachable here: a local HF hub cache shaped like huggingface_hub's (datasets--org--name/
refs/<ref>, snapshots/<sha>/...) holds two snapshots, and the rows are served from the snapshot the data module asks
for (datasets cannot stream a hand-made hub cache offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ffnlab import corpus
from ffnlab.data import TextDataModule, data_identity
from ffnlab.errors import DataConfigError

OLD, NEW = "a" * 40, "b" * 40
TEXT = {OLD: "the first commit of a tiny corpus. " * 200, NEW: "the second commit reads otherwise, and longer. " * 200}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """org/tiny with two snapshots; refs/main names the newer one. Offline: only the cache can answer."""
    import huggingface_hub.constants

    root = tmp_path / "hub"
    repo = root / "datasets--org--tiny"
    for sha, text in TEXT.items():
        data = repo / "snapshots" / sha / "data"
        data.mkdir(parents=True)
        (data / "train.jsonl").write_text(json.dumps({"text": text}) + "\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(NEW)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def documents(source: corpus.RowSource):  # what datasets would stream from the asked commit's snapshot
        rows = (repo / "snapshots" / source.revision / "data" / "train.jsonl").read_text().splitlines()
        yield from (json.loads(row)["text"] for row in rows)

    monkeypatch.setattr(corpus.RowSource, "documents", documents)
    return repo


def datamodule(tmp_path: Path, revision: str | None) -> TextDataModule:
    return TextDataModule(name="tiny_hub", hub_path="org/tiny", revision=revision, tokenizer="char", seq_len=8,
                          batch_size=2, cache_dir=str(tmp_path / "cache"))


def test_the_resolved_commit_is_in_the_identity_the_store_and_its_manifest(hub_cache, tmp_path):
    main, old = datamodule(tmp_path, None), datamodule(tmp_path, OLD)
    for dm, sha in ((main, NEW), (old, OLD)):
        dm.prepare_data()
        assert dm.hub_source()["resolved_revision"] == sha
        index = json.loads((dm.cache_path / "index.json").read_text())
        assert index["source"] == {"hub_path": "org/tiny", "hub_name": None, "revision": dm.revision,
                                   "resolved_revision": sha}
    assert main.data_hash != old.data_hash  # two commits, two stores: never pooled
    assert main.tokens_per_split != old.tokens_per_split  # and each read its own commit's text
    asked = {"hub_path": "org/tiny", "hub_name": None, "cache_dir": str(tmp_path / "cache")}
    assert data_identity(asked | {"revision": None})["resolved_revision"] == NEW  # what a run record holds
    assert data_identity(asked | {"revision": "aaaaaaa"})["resolved_revision"] == OLD  # a short sha


def test_a_moved_ref_is_another_identity(hub_cache, tmp_path):
    asked = {"hub_path": "org/tiny", "hub_name": None, "revision": None, "cache_dir": str(tmp_path / "cache")}
    before = data_identity(asked)
    (hub_cache / "refs" / "main").write_text(OLD)  # the hub's main moved: the same config now reads other data
    assert data_identity(asked) != before


def test_offline_without_a_snapshot_a_prepared_store_names_the_commit_or_one_line(hub_cache, tmp_path):
    import shutil

    datamodule(tmp_path, None).prepare_data()
    shutil.rmtree(hub_cache)  # the cache is gone (streaming leaves none): the prepared store still says which commit
    asked = {"hub_path": "org/tiny", "hub_name": None, "revision": None, "cache_dir": str(tmp_path / "cache")}
    assert data_identity(asked)["resolved_revision"] == NEW
    with pytest.raises(DataConfigError, match="cannot tell which commit data.revision=None names.*pin data.revision"):
        data_identity(asked | {"cache_dir": str(tmp_path / "empty")})
