"""Corpus -> tokenizer -> the token store -> training and evaluation batches.

Three sources, one path through the code (ffnlab.data.corpus reads them, ffnlab.data.store keeps their ids):
  - `files` + `split_fractions`: one text corpus cut contiguously by characters into train/val/test
    (`data=tinyshakespeare`);
  - `train_files` / `val_files` / `test_files`: the user's own split, as UTF-8 text files (`data=text_files`) or as
    parquet / jsonl files with a `text` column (`data=parquet_fixture`);
  - `hub_path` (+ `hub_name`, `revision`): a Hugging Face Hub dataset's train/validation/test splits, streamed.
The ids live in `cache_dir/tokens/<data_hash>/`. For text, `data_hash` is the sha256 of every split's text and the
tokenizer settings (the same text always reuses one entry, a changed text or setting never does, whatever the files'
mtimes); for rows, the files' content hashes (or the hub's name and revision) and the settings.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset, Subset

from ffnlab.data import corpus
from ffnlab.data.config import TextDataConfig

from ffnlab.data import store
from ffnlab.runs.atomic import write_atomic
from ffnlab.config.errors import DataConfigError
from ffnlab.data.tokenizer import TextTokenizer, load_tokenizer_from_json, load_pretrained_tokenizer, train_tokenizer
from ffnlab.data.windows import EvalWindows, RandomWindows, RankShare, rank_and_world_size

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # part of data_hash: bump only when the ids of a text change (not for a new store layout)
SPLITS = ("train", "val", "test")
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
TOKENIZER_SAMPLE_CHARS = 100_000_000  # BPE and char vocabularies are learned from this much of the train split
SHARD_TOKENS = 1 << 24
OFFLINE_HINT = (
    "data=text_files data.train_files=[train.txt] data.val_files=[valid.txt] data.test_files=[test.txt], "
    "or the embedded corpus: data=tinyshakespeare"
)


# ------------------------------------------------------------------------------------------------- text


def check_files(paths: str | Sequence[str], key: str) -> list[str]:
    paths = [paths] if isinstance(paths, str) else list(paths)
    if not paths:
        raise DataConfigError(f"data.{key} lists no files; give one or more UTF-8 text (or parquet/jsonl) files")
    return [corpus.check_file(path, key) for path in paths]


def file_identity(path: str) -> dict:
    """A local file's size and content hash (read in 1 MiB chunks): what makes two files the same data."""
    return {"bytes": os.path.getsize(path), "sha256": store.file_sha256(Path(path))}


FILE_KEYS = ("files", "train_files", "val_files", "test_files")


def data_identity(data_cfg) -> dict:
    """The identity of a `data` config's input, without reading it through the tokenizer: per file key, each
    file's name, size and sha256 (its path is not part of it: a moved corpus is the same data); for a hub
    dataset its path, config name, the revision asked for (null = the default branch) and the commit sha that
    revision resolves to (`resolved_revision`, hub_revision): the data a store is prepared from, so two commits of a
    dataset never share a token store, a run identity or a comparison setting."""
    if data_cfg.get("hub_path") is not None:
        asked = {key: data_cfg.get(key) for key in ("hub_path", "hub_name", "revision")}
        return asked | {"resolved_revision": hub_revision(asked, data_cfg.get("cache_dir"))}
    identity = {}
    for key in FILE_KEYS:
        if key in data_cfg and OmegaConf.is_missing(data_cfg, key):
            raise DataConfigError(f"data.{key} is not set; give a list of UTF-8 text files, e.g. data.{key}=[a.txt]")
        if data_cfg.get(key) is not None:
            files = {}
            for path in check_files(data_cfg[key], key):
                name = os.path.basename(path)
                files[name if name not in files else f"{name}#{len(files)}"] = file_identity(path)
            identity[key] = files
    return identity


def hub_revision(asked: dict, cache_dir: str | None) -> str:
    """The commit sha of a hub dataset's asked revision (corpus.resolve_hub_revision). Offline with neither the hub
    nor an HF cache snapshot, the token stores already prepared for this source say which commit they were read
    at: one commit is taken, several or none is one line (what is wrong, what is accepted)."""
    resolved = corpus.resolve_hub_revision(asked["hub_path"], asked["revision"])
    if resolved is not None:
        return resolved
    prepared = sorted({source["resolved_revision"] for source in prepared_sources(cache_dir)
                       if {k: source.get(k) for k in asked} == asked and source.get("resolved_revision")})
    if len(prepared) == 1:
        return prepared[0]
    name = "/".join(v for v in (asked["hub_path"], asked["hub_name"]) if v)
    found = f"token stores were prepared from {len(prepared)} commits of it ({', '.join(prepared)})" if prepared else (
        "it is not in the HF hub cache and no token store here was prepared from it")
    raise DataConfigError(
        f"Hub dataset {name}: cannot tell which commit data.revision={asked['revision'] or 'null'} names (offline, or "
        f"the hub is unreachable, and {found}); pin data.revision=<commit sha>, prepare it where the hub is reachable "
        "(scripts/prepare_data.py), or train on local files: data=text_files, data=tinyshakespeare"
    )


def prepared_sources(cache_dir: str | None) -> list[dict]:
    """The hub `source` each prepared token store's index records (entries without one are left out)."""
    found = []
    for index in sorted(Path(cache_dir or ".").expanduser().glob(f"tokens/*/{store.INDEX}")):
        try:
            source = json.loads(index.read_text()).get("source")
        except (OSError, ValueError):
            continue
        if isinstance(source, dict):
            found.append(source)
    return found


def join_documents(rows: Sequence[str]) -> str:
    """Rows (whole files, or Hub lines/documents) in order, a newline between two only where one is missing."""
    parts, previous = [], None
    for row in rows:
        if previous is not None and not previous.endswith("\n"):
            parts.append("\n")
        parts.append(row)
        previous = row
    return "".join(parts)


def split_text(text: str, fractions: Sequence[float]) -> dict[str, str]:
    """Contiguous train/val/test cut by characters: the first fractions[0] of the text is train, and so on."""
    bounds = split_bounds(len(text), fractions)
    return {split: text[lo:hi] for split, (lo, hi) in bounds.items()}


def split_bounds(n: int, fractions: Sequence[float]) -> dict[str, tuple[int, int]]:
    train_end = int(n * fractions[0])
    val_end = int(n * (fractions[0] + fractions[1]))
    return {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, n)}


def content_hash(text_digests: dict, tokenizer: str, vocab_size: int, extra: dict | None = None) -> str:
    """Short hex identity of (text of every split, tokenizer settings): the cache key and the runs' data id."""
    identity = {
        "format": CACHE_FORMAT,
        "tokenizer": tokenizer,
        "vocab_size": vocab_size if tokenizer == "bpe" else None,  # a char vocabulary comes from the text alone
        "text_sha256": text_digests,
        **(extra or {}),  # settings only some sources have (row separator, pretrained tokenizer, sample size)
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- sources


class SplitSource:
    """One split's text: `pieces()` streams it (for the tokenizer), `digest()` identifies it (text sources)."""

    def __init__(self, split: str, text_files: list[str] | None = None, chars: tuple[int, int | None] = (0, None),
                 rows: corpus.RowSource | None = None, separator: str = "newline"):
        self.split, self.text_files, self.chars, self.rows, self.separator = split, text_files, chars, rows, separator

    def blocks(self) -> Iterator[str]:
        return corpus.limit_chars(corpus.text_files_stream(self.text_files), *self.chars)

    def pieces(self) -> Iterator[str | None]:
        if self.rows is not None:
            return corpus.row_pieces(self.rows.documents(), self.separator)
        return corpus.to_pieces(self.blocks())

    def digest(self) -> str:
        """sha256 of the split's text, streamed (equal to hashing the whole text at once); checks it is not empty."""
        digest, has_text = hashlib.sha256(), False
        for block in self.blocks():
            digest.update(block.encode())
            has_text = has_text or bool(block.strip())
        if not has_text:
            raise DataConfigError(f"the {self.split} split is empty (no text besides whitespace)")
        return digest.hexdigest()

    def total_chars(self) -> int | None:
        if self.text_files is None:
            return None
        lo, hi = self.chars
        return (hi if hi is not None else sum(os.path.getsize(f) for f in self.text_files)) - lo


def count_chars(paths: list[str]) -> int:
    return sum(len(block) for block in corpus.text_files_stream(paths))


def sample_text(source: SplitSource, max_chars: int) -> Iterator[str]:
    """The first `max_chars` characters of the train split, as pieces: what BPE / char vocabularies learn from."""
    taken = 0
    for piece in source.pieces():
        if piece is None:
            continue
        if taken + len(piece) >= max_chars:
            yield piece[: max_chars - taken]
            return
        taken += len(piece)
        yield piece


# -------------------------------------------------------------------------------------------- datamodule


class TextDataModule(L.LightningDataModule):
    """Its config is a TextDataConfig (ffnlab.data.config): conf/data/*.yaml's keys; give exactly one source (see the
    module docstring).

    After `prepare_data()` + `setup()`: `tokenizer`, `vocab_size` (the tokenizer's actual size),
    `unigram_entropy` (nats, validation split), `tokens_per_split`, `data_hash`, `cache_hit`.
    """

    def __init__(self, config: TextDataConfig | None = None, /, **fields):
        """A TextDataConfig, or its fields as keyword arguments (how Hydra instantiates conf/data/*.yaml)."""
        super().__init__()
        c = self.config = config if config is not None else TextDataConfig(**fields)
        self.name, self.cache_dir = c.name, Path(c.cache_dir).expanduser()
        self.tokenizer_kind, self.requested_vocab_size = c.tokenizer, c.vocab_size
        self.tokenizer_path, self.text_column = c.tokenizer_path, c.text_column or "text"
        self.sample_chars = int(c.tokenizer_sample_chars or TOKENIZER_SAMPLE_CHARS)
        self.num_proc, self.shard_tokens = int(c.num_proc), int(c.shard_tokens or SHARD_TOKENS)
        self.verify_cache = bool(c.verify_cache)
        # Large corpora (issue 13): windows that never repeat within max_epochs passes, validation and test carved
        # from the first 2 x eval_documents documents of the validation source, a cap on the tokens prepared.
        self.sampling, self.max_epochs = c.sampling or "random", c.max_epochs
        self.eval_documents, self.max_train_tokens = c.eval_documents, c.max_train_tokens
        self.hub_eval_files = list(c.hub_eval_files) if c.hub_eval_files else None
        self.seq_len, self.batch_size, self.eval_batch_size = c.seq_len, c.batch_size, c.eval_batch_size or c.batch_size
        self.seed, self.num_workers = c.seed, c.num_workers
        # Validations during fit score the first fit_val_windows windows of the validation split (a fixed subset:
        # the curve's points are comparable with each other); the final validation and the test score whole splits.
        self.fit_val_windows = c.fit_val_windows
        self.hub_path, self.hub_name, self.revision = c.hub_path, c.hub_name, c.revision
        test_files = c.test_files
        if c.eval_documents is not None and test_files is None and c.val_files is not None:
            test_files = c.val_files  # carved: the next eval_documents documents of the same files
        self.files_by_split, self.split_fractions = self._check_source(
            c.files, c.split_fractions, {"train": c.train_files, "val": c.val_files, "test": test_files}, c.hub_path
        )
        row_files = self.files_by_split and corpus.row_format(self.files_by_split["train"]) is not None
        self.rows = c.hub_path is not None or bool(row_files)
        # Rows are documents: an end-of-document token between them, but for characters the newline convention.
        self.separator = c.separator or ("eod" if self.rows and c.tokenizer != "char" else "newline")
        self.start_sample = 0  # global samples already consumed: set before fit for an exact resume

        self.tokenizer: TextTokenizer | None = None
        self.vocab_size: int | None = None
        self.unigram_entropy: float | None = None
        self.tokens_per_split: dict[str, int] | None = None
        self.cache_hit: bool | None = None  # False: this process tokenized; True: it reused the cache
        self._data_hash: str | None = None
        self._hub_source: dict | None = None
        self._ids: dict | None = None

    @staticmethod
    def _check_source(files, split_fractions, split_files, hub_path):
        given = {
            "files": files is not None,
            "train_files/val_files/test_files": any(paths is not None for paths in split_files.values()),
            "hub_path": hub_path is not None,
        }
        sources = [key for key, is_given in given.items() if is_given]
        if len(sources) != 1:
            raise DataConfigError(
                f"give exactly one text source, got {sources or 'none'}; accepted: files + split_fractions "
                "(one corpus), train_files + val_files + test_files, or hub_path (+ hub_name)"
            )
        if split_fractions is not None and files is None:
            raise DataConfigError("split_fractions only applies to data.files (one corpus cut into three splits)")
        if files is not None:
            fractions = [float(f) for f in split_fractions] if split_fractions is not None else []
            if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
                raise DataConfigError(
                    f"split_fractions must be three positive train/val/test fractions that sum to 1, got {fractions}"
                )
            checked = check_files(files, "files")
            if corpus.row_format(checked) is not None:
                raise DataConfigError("data.files + split_fractions takes text files; give parquet/jsonl rows as "
                                      "data.train_files / val_files / test_files")
            return {"train": checked}, fractions
        if hub_path is not None:
            return None, None
        missing = [f"{split}_files" for split, paths in split_files.items() if paths is None]
        if missing:
            raise DataConfigError(f"data.{missing[0]} is missing: train_files, val_files and test_files are all needed")
        checked = {split: check_files(paths, f"{split}_files") for split, paths in split_files.items()}
        kinds = {split: corpus.row_format(paths) or "text" for split, paths in checked.items()}
        if len({kind == "text" for kind in kinds.values()}) > 1:
            raise DataConfigError(f"the splits mix text and row files ({kinds}); use one kind for all three")
        return checked, None

    # --------------------------------------------------------------------------------------- text and hash

    def sources(self) -> dict[str, SplitSource]:
        if self.rows:
            def rows(split: str, **where) -> corpus.RowSource:
                if self.hub_path is None:
                    return corpus.RowSource(split, files=self.files_by_split[split], text_column=self.text_column,
                                            **where)
                # at the commit the identity names, not at a branch that may move while the splits are read
                return corpus.RowSource(HUB_SPLITS[split], hub_path=self.hub_path, hub_name=self.hub_name,
                                        revision=self.hub_source()["resolved_revision"],
                                        text_column=self.text_column, **where)

            if self.eval_documents is None:
                found = {split: rows(split) for split in SPLITS}
            else:  # val = the first N documents of the validation source, test = the next N
                n = int(self.eval_documents)
                if self.hub_eval_files:  # a dataset with a train split only: a named held-out file
                    held_out = {"hub_files": self.hub_eval_files}
                    found = {"train": rows("train", exclude_files=self.hub_eval_files),
                             "val": rows("train", take=n, **held_out),
                             "test": rows("train", skip=n, take=n, **held_out)}
                else:
                    found = {"train": rows("train"), "val": rows("val", take=n), "test": rows("val", skip=n, take=n)}
            return {split: SplitSource(split, rows=source, separator=self.separator) for split, source in found.items()}
        if self.split_fractions is not None:
            files = self.files_by_split["train"]
            bounds = split_bounds(count_chars(files), self.split_fractions)
            return {split: SplitSource(split, text_files=files, chars=bounds[split]) for split in SPLITS}
        return {split: SplitSource(split, text_files=paths) for split, paths in self.files_by_split.items()}

    def train_windows(self) -> int:
        """Training windows in one pass (sampling=no_repeat), for the budget check in ffnlab.training.run."""
        return (self.tokens_per_split["train"] - 1) // self.seq_len

    def check_budget(self, samples: int) -> None:
        """A no-repeat budget that needs more windows than max_epochs passes hold is one line, before training."""
        if self.sampling != "no_repeat":
            return
        available = self.train_windows() * int(self.max_epochs or 1)
        if samples > available:
            raise DataConfigError(
                f"the budget needs {samples:,} training windows but the train split holds {self.train_windows():,} "
                f"(x data.max_epochs={self.max_epochs or 1}); prepare more text (data.max_train_tokens), shorten the "
                "budget, or allow more passes with data.max_epochs"
            )

    @property
    def data_hash(self) -> str:
        if self._data_hash is None:
            extra = {}
            if self.tokenizer_kind == "pretrained":
                extra["tokenizer_path"] = self.tokenizer_path  # its identity: the file's hash when it is a file
                if os.path.isfile(os.path.expanduser(self.tokenizer_path)):
                    extra["tokenizer_sha256"] = store.file_sha256(Path(self.tokenizer_path).expanduser())
            if self.sample_chars != TOKENIZER_SAMPLE_CHARS:
                extra["tokenizer_sample_chars"] = self.sample_chars
            for key in ("eval_documents", "max_train_tokens", "hub_eval_files"):  # what is read, so what is stored
                if getattr(self, key) is not None:
                    extra[key] = getattr(self, key)
            if self.rows:  # rows are named by their files' hashes (or the hub's revision), not read up front
                identity = (self.hub_source() if self.hub_path is not None else
                            {split: [file_identity(f) for f in paths] for split, paths in self.files_by_split.items()})
                extra |= {"separator": self.separator, "text_column": self.text_column}
                digests = {"rows": identity}
            else:
                digests = {split: source.digest() for split, source in self.sources().items()}
            self._data_hash = content_hash(digests, self.tokenizer_kind, self.requested_vocab_size, extra)
        return self._data_hash

    def hub_source(self) -> dict:
        """The hub dataset's identity, the resolved commit included (data_identity); resolved once per module."""
        if self._hub_source is None:
            self._hub_source = data_identity(OmegaConf.create({
                "hub_path": self.hub_path, "hub_name": self.hub_name, "revision": self.revision,
                "cache_dir": str(self.cache_dir)}))
        return self._hub_source

    @property
    def cache_path(self) -> Path:
        return self.cache_dir / "tokens" / self.data_hash

    # ------------------------------------------------------------------------------------- the token store

    def _open(self) -> bool:
        """Open the entry if it is complete and sound; False when there is none. A damaged entry is cleared for a
        rebuild with a warning, or, when the cache is read-only, is one line naming it and the cure."""
        entry = self.cache_path
        try:
            index, ids = store.open_entry(entry, verify=self.verify_cache)
        except FileNotFoundError:
            return False
        except store.BadEntry as bad:
            if not store.is_writable(entry):
                raise DataConfigError(
                    f"token cache entry {entry} is damaged ({bad}) and the cache is read-only: delete that entry "
                    "where the cache is writable, or set data.cache_dir (or FFNLAB_CACHE_DIR) to a writable directory"
                ) from None
            log.warning("token cache entry %s is damaged (%s): rebuilding it", entry, bad)
            shutil.rmtree(entry)
            return False
        self.tokenizer = load_tokenizer_from_json((entry / store.TOKENIZER).read_text())
        self.vocab_size = self.tokenizer.vocab_size
        self.unigram_entropy = index["unigram_entropy_val"]
        self.tokens_per_split = index["tokens"]
        self._ids = ids
        return True

    def _build(self) -> None:
        entry = self.cache_path
        if not store.is_writable(entry):
            raise DataConfigError(f"the token cache {self.cache_dir} is read-only and holds no entry for this data "
                                  f"({entry.name}); prepare it where the cache is writable (scripts/prepare_data.py)")
        entry.mkdir(parents=True, exist_ok=True)
        sources = self.sources()
        tokenizer = self._tokenizer(entry, sources["train"])
        eod_id = tokenizer.hf.token_to_id(corpus.EOD) if self.separator == "eod" else None
        splits, tokens = {}, {}
        for split in SPLITS:
            cap = self.max_train_tokens if split == "train" else None
            splits[split] = store.prepare_split(entry, split, sources[split].pieces, tokenizer, eod_id, self.num_proc,
                                                self.shard_tokens, sources[split].total_chars(), max_tokens=cap)
            tokens[split] = sum(shard["tokens"] for shard in splits[split])
            if tokens[split] == 0:
                raise DataConfigError(f"the {split} split of data {self.name!r} is empty")
        val = store.TokenShards([str(entry / s["file"]) for s in splits["val"]],
                                [s["tokens"] for s in splits["val"]], str(store.token_dtype(tokenizer.vocab_size)))
        store.write_index(entry, {
            "name": self.name, "tokenizer": self.tokenizer_kind, "vocab_size": tokenizer.vocab_size,
            "dtype": store.token_dtype(tokenizer.vocab_size).name, "separator": self.separator,
            "shard_tokens": self.shard_tokens, "tokens": tokens, "splits": splits,
            "unigram_entropy_val": store.unigram_entropy_of(val, tokenizer.vocab_size),
            **({"source": self.hub_source()} if self.hub_path is not None else {}),  # the commit it was read at
        })
        log.info("tokenized %s (%s, vocab %d) into %s: %s", self.name, self.tokenizer_kind, tokenizer.vocab_size,
                 entry, tokens)

    def _tokenizer(self, entry: Path, train: SplitSource) -> TextTokenizer:
        path = entry / store.TOKENIZER
        if path.is_file():  # an interrupted preparation: its shards were made with this tokenizer
            return load_tokenizer_from_json(path.read_text())
        if self.tokenizer_kind == "pretrained":
            tokenizer = load_pretrained_tokenizer(self.tokenizer_path)
        else:
            special = [corpus.EOD] if self.separator == "eod" else []
            tokenizer = train_tokenizer(self.tokenizer_kind, sample_text(train, self.sample_chars),
                                        self.requested_vocab_size, special_tokens=special)
            if self.tokenizer_kind == "bpe" and tokenizer.vocab_size < self.requested_vocab_size:
                log.warning("the train split supports only %d BPE tokens (asked for %d)", tokenizer.vocab_size,
                            self.requested_vocab_size)
        if self.separator == "eod" and tokenizer.hf.token_to_id(corpus.EOD) is None:
            tokenizer.hf.add_special_tokens([corpus.EOD])
        write_atomic(path, lambda tmp: tmp.write_text(tokenizer.to_json()))
        return tokenizer

    # ------------------------------------------------------------------------------------- Lightning hooks

    def prepare_data(self) -> None:
        """Tokenize the corpus into the store unless a sound entry for this data + settings exists.

        Cheap when called again (Lightning calls it after ffnlab.training.run's own call).
        """
        if self._ids is not None:
            return
        if self._open():
            self.cache_hit = True
            log.info("reusing cached tokens in %s", self.cache_path)
            return
        with store.entry_lock(self.cache_path):  # one process builds; the others wait, then read what it wrote
            if self._open():
                self.cache_hit = True
                log.info("reusing cached tokens in %s (prepared by another process meanwhile)", self.cache_path)
                return
            self.cache_hit = False
            self._build()
            if not self._open():
                raise RuntimeError(f"the token store entry {self.cache_path} was not complete after preparing it")

    def setup(self, stage: str | None = None) -> None:
        """Open the stored ids (every rank). Prepares them first if this process has not."""
        if self._ids is None:
            self.prepare_data()
        for split in ("val", "test", "train"):
            n = self.tokens_per_split[split]
            if n <= self.seq_len:
                raise DataConfigError(
                    f"seq_len={self.seq_len} is longer than the {split} split of {self.name!r} ({n} tokens): a "
                    f"window needs seq_len + 1 tokens. Set a smaller model.seq_len (at most {n - 1}) or use more text."
                )

    def tokenizer_json(self) -> str:
        if self.tokenizer is None:
            raise RuntimeError("call prepare_data() and setup() first")
        return self.tokenizer.to_json()

    def train_dataloader(self) -> DataLoader:
        windows = RandomWindows(self._ids["train"], self.seq_len, self.batch_size, self.seed, self.start_sample,
                                sampling=self.sampling)
        return self._loader(windows, batch_size=None)  # the dataset yields whole batches

    def val_dataloader(self) -> DataLoader:
        fitting = self.trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        return self._eval_loader("val", self.fit_val_windows if fitting else None)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str, first_windows: int | None = None) -> DataLoader:
        """Rank r of W scores windows r, r+W, ...: each token once across ranks. The ranks left a window short
        score a padding window instead (ffnlab.data.windows.RankShare), so every rank runs the same number of batches,
        as FSDP's collectives need; the module sums loss and scored tokens over ranks, so the loss is exact."""
        windows = EvalWindows(self._ids[split], self.seq_len)
        if first_windows is not None and first_windows < len(windows):
            windows = Subset(windows, range(first_windows))
        rank, world_size = rank_and_world_size()
        return self._loader(RankShare(windows, self.seq_len, rank, world_size), batch_size=self.eval_batch_size)

    def _loader(self, dataset: Dataset, batch_size: int | None) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
        )


# validate's accepted data keys and a reader's help(): the config's fields, not (config, **fields)
TextDataModule.__signature__ = inspect.signature(TextDataConfig)
