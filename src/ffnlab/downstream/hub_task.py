"""A fine-tuning task whose rows are a Hugging Face Hub dataset's (GLUE, SuperGLUE, SQuAD): `HubTask`.

Rows come from `datasets.load_dataset(hub_path, hub_name, split=..., revision=...)`, the hub's own code path, or, with
`local_dir`, from the same parquet files laid out as in the hub repositories
(`<local_dir>/<hub_path>/<hub_name>/<split>-00000-of-00001.parquet`), read by `datasets.load_dataset("parquet")`:
the offline route, and the one the tests take (tests/assets/hub).
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from unittest import mock

from ffnlab.downstream.example import Example
from ffnlab.config.errors import DataConfigError
from ffnlab.data.store import file_sha256

@functools.cache
def _resolved(hub_path: str, revision: str | None) -> str | None:
    from ffnlab.data.corpus import resolve_hub_revision

    return resolve_hub_revision(hub_path, revision)


Formatter = Callable[[dict, bool], list[Example]]  # (row, is the train split) -> the row's examples
Scorer = Callable[[Sequence[str], Sequence[Example]], dict[str, float]]


@dataclass(frozen=True)
class HubRows:
    """Where a task's rows are: a hub dataset config, at `revision`, or its files under `local_dir`."""

    hub_path: str
    hub_name: str
    revision: str | None = None
    local_dir: str | None = None

    def label(self) -> str:
        return f"{self.hub_path}/{self.hub_name}"

    def local_files(self, split: str) -> list[str]:
        folder = os.path.join(os.path.expanduser(self.local_dir), self.hub_path, self.hub_name)
        files = sorted(glob.glob(os.path.join(glob.escape(folder), f"{split}-*.parquet")))
        if not files:
            raise DataConfigError(
                f"{self.label()}: no {split}-*.parquet in {folder}; local_dir must be laid out like the hub "
                f"repositories: <local_dir>/{self.hub_path}/{self.hub_name}/{split}-00000-of-00001.parquet"
            )
        return files

    def read(self, split: str) -> list[dict]:
        import datasets  # ~1 s to import: only reading rows needs it

        try:
            if self.local_dir is not None:
                # streaming: the rows in file order, and no Arrow copy written to the HF cache for local files.
                # Local rows need no network, but load_dataset pings the hub's download counter for its packaged
                # "parquet" module unless offline: a HEAD that costs its 3 s timeout wherever the hub is unreachable
                files = self.local_files(split)
                with mock.patch.object(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False):
                    rows = datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=True)
            else:  # at the commit the identity names, not at a branch that may have moved since
                rows = datasets.load_dataset(self.hub_path, self.hub_name, split=split,
                                             revision=self.resolved_revision() or self.revision)
            return list(rows)
        except ConnectionError as error:  # offline (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) and not in the HF cache
            raise DataConfigError(
                f"Hub dataset {self.label()} cannot be reached (offline, or no network) and is not in the HF cache; "
                f"load it once where the hub is reachable, or give local_dir=<a copy of its parquet files>"
            ) from error
        except ValueError as error:
            if "split" in str(error).lower():
                raise DataConfigError(f"{self.label()}: no split {split!r} ({error})") from None
            raise

    def resolved_revision(self) -> str | None:
        """The commit `revision` names (ffnlab.data.corpus.resolve_hub_revision: the hub, else the HF cache; None when
        neither says, offline with nothing cached, where reading fails in one line anyway)."""
        return _resolved(self.hub_path, self.revision)

    def source(self, splits: Sequence[str]) -> dict:
        """The hub config and revision asked for, or for local rows each file read and its sha256."""
        identity = {"hub_path": self.hub_path, "hub_name": self.hub_name}
        if self.local_dir is None:
            return identity | {"revision": self.revision, "resolved_revision": self.resolved_revision()}
        root = os.path.join(os.path.expanduser(self.local_dir), self.hub_path)
        files = {os.path.relpath(path, root): file_sha256(path) for split in splits for path in self.local_files(split)}
        return identity | {"files": files}


@dataclass(frozen=True)
class HubTask:
    """A task over hub rows: each row formatted by `to_examples` (T5's preprocessor), scored by `score`."""

    name: str
    benchmark: str | None
    rows: HubRows
    to_examples: Formatter
    score: Scorer
    eval_sets: dict[str, str]
    group_of: Callable[[dict], Hashable] | None = None  # the row's question/query, numbered into Example.group
    train_split: str = "train"
    metric_keys: tuple[str, ...] = ()  # the keys `score` returns, for benchmark averages

    def source(self) -> dict:
        return self.rows.source([self.train_split, *self.eval_sets.values()])

    def examples(self, split: str) -> list[Example]:
        training = split == self.train_split
        examples, groups = [], {}
        for row in self.rows.read(split):
            group = None if self.group_of is None else groups.setdefault(self.group_of(row), len(groups))
            examples += [replace(e, group=group) for e in self.to_examples(row, training)]
        return examples

    def metrics(self, predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        if len(predictions) != len(examples):
            raise ValueError(f"{self.name}: {len(predictions)} predictions for {len(examples)} examples")
        if not examples:
            raise ValueError(f"{self.name}: no examples to score")
        return self.score(list(predictions), list(examples))
