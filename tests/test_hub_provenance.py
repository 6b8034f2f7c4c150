"""Hub corpora carry their provenance (issue 22.7): the commit a hub dataset's revision resolves to is part of the
data identity, the token store's key and manifest, and every run record, so stores prepared from two commits are
never pooled. The hub is not reachable here: a local HF hub cache shaped like huggingface_hub's (datasets--org--name/
refs/<ref>, snapshots/<sha>/...) holds two snapshots, and the rows are served from the snapshot the data module asks
for. `datasets` itself cannot stream from it offline: under HF_HUB_OFFLINE its load_dataset raises before reading the
hub cache and falls back only to its own prepared Arrow cache (datasets/load.py, dataset_module_factory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY_SETTINGS
from ffnlab.data import corpus
from ffnlab.data.module import TextDataModule, data_identity
from ffnlab.config.errors import DataConfigError

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

    def documents(source: corpus.RowSource):  # what datasets streams: the asked commit, or where main is now
        sha = source.revision or (repo / "refs" / "main").read_text()
        rows = (repo / "snapshots" / sha / "data" / "train.jsonl").read_text().splitlines()
        yield from (json.loads(row)["text"] for row in rows)

    monkeypatch.setattr(corpus.RowSource, "documents", documents)
    return repo


def datamodule(tmp_path: Path, revision: str | None) -> TextDataModule:
    return TextDataModule(name="tiny_hub", hub_path="org/tiny", revision=revision, tokenizer="char", seq_len=8,
                          batch_size=2, cache_dir=str(tmp_path / "cache"))


def manifest(dm: TextDataModule) -> dict:
    return json.loads((dm.cache_path / "index.json").read_text())


def test_the_resolved_commit_is_in_the_identity_the_store_and_its_manifest(hub_cache, tmp_path):
    main, old = datamodule(tmp_path, None), datamodule(tmp_path, OLD)
    for dm, sha in ((main, NEW), (old, OLD)):
        dm.prepare_data()
        assert manifest(dm)["source"] == {"hub_path": "org/tiny", "hub_name": None, "revision": dm.revision,
                                          "resolved_revision": sha}
    assert main.data_hash != old.data_hash  # two commits, two stores: never pooled
    assert main.tokens_per_split != old.tokens_per_split  # and each read its own commit's text
    asked = {"hub_path": "org/tiny", "hub_name": None, "cache_dir": str(tmp_path / "cache")}
    assert data_identity(asked | {"revision": None})["resolved_revision"] == NEW  # what a run record holds
    assert data_identity(asked | {"revision": "aaaaaaa"})["resolved_revision"] == OLD  # a short sha


def test_main_moved_between_two_preparations_gives_two_stores(hub_cache, tmp_path):
    """The same config (revision null) before and after the hub's main moved: two commits, two entries."""
    before = datamodule(tmp_path, None)
    before.prepare_data()
    (hub_cache / "refs" / "main").write_text(OLD)
    after = datamodule(tmp_path, None)
    after.prepare_data()
    assert after.data_hash != before.data_hash and not after.cache_hit
    assert (manifest(before)["source"]["resolved_revision"], manifest(after)["source"]["resolved_revision"]) == (
        NEW, OLD)
    assert after.tokens_per_split != before.tokens_per_split


def test_a_moved_ref_is_another_identity(hub_cache, tmp_path):
    asked = {"hub_path": "org/tiny", "hub_name": None, "revision": None, "cache_dir": str(tmp_path / "cache")}
    before = data_identity(asked)
    (hub_cache / "refs" / "main").write_text(OLD)  # the hub's main moved: the same config now reads other data
    assert data_identity(asked) != before


def test_a_ref_is_taken_before_a_sha_that_starts_with_its_name(hub_cache, tmp_path):
    """A tag `bbbb` names OLD, while NEW's sha also starts with `bbbb`: git's rule, the ref wins."""
    (hub_cache / "refs" / "bbbb").write_text(OLD)
    assert corpus.cached_hub_revision("org/tiny", "bbbb") == OLD


def test_offline_without_a_snapshot_a_prepared_store_names_the_commit_or_one_line(hub_cache, tmp_path):
    import shutil

    datamodule(tmp_path, None).prepare_data()
    shutil.rmtree(hub_cache)  # the cache is gone (streaming leaves none): the prepared store still says which commit
    asked = {"hub_path": "org/tiny", "hub_name": None, "revision": None, "cache_dir": str(tmp_path / "cache")}
    assert data_identity(asked)["resolved_revision"] == NEW
    with pytest.raises(DataConfigError, match="cannot tell which commit data.revision=null names.*pin data.revision"):
        data_identity(asked | {"cache_dir": str(tmp_path / "empty")})


def test_a_revision_the_hub_does_not_have_is_said_as_such(hub_cache, monkeypatch):
    """Online, the hub's own "no such revision" is the error, not a fall back to the cache (reviewed-not-run path,
    here with the hub's answer faked)."""
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import RevisionNotFoundError

    def no_such_revision(self, repo_id, *, revision=None, **_):
        raise RevisionNotFoundError("404", response=httpx2.Response(404, request=httpx2.Request("GET", "https://hub")))

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", no_such_revision)
    with pytest.raises(DataConfigError, match="org/tiny: the hub has no revision 'v9'.*data.revision"):
        corpus.resolve_hub_revision("org/tiny", "v9")


def test_a_run_records_the_commit_it_was_trained_on(hub_cache, tmp_path):
    """metrics.json's data_identity (the run's identity) and setting.data_hash name the commit read."""
    from ffnlab.config.compose import compose_config
    from ffnlab.runs.record import read_metrics
    from ffnlab.training.run import run

    tiny = [f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in TINY_SETTINGS.items()]
    cfg = compose_config(["data=wikitext2", "data.hub_path=org/tiny", "data.hub_name=null", "data.tokenizer=char",
                          f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}", *tiny])
    run(cfg)
    record = read_metrics(tmp_path / "run")
    assert record["status"] == "finished"
    assert record["data_identity"]["resolved_revision"] == NEW
    assert record["setting"]["data_hash"] == datamodule(tmp_path, None).data_hash != datamodule(tmp_path, OLD).data_hash
