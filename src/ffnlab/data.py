"""Text -> tokenizer (trained on the train split) -> cached token ids -> training and evaluation batches.

Three sources, one path through the code:
  - `files` + `split_fractions`: one corpus cut contiguously into train/val/test (`data=tinyshakespeare`);
  - `train_files` / `val_files` / `test_files`: the user's own split (`data=text_files`);
  - `hub_path` (+ `hub_name`): a Hugging Face Hub dataset with train/validation/test splits (`data=wikitext2`).
The tokenizer and the ids of each split live in `cache_dir/tokens/<data_hash>/`, where `data_hash` is
the sha256 of every split's text and the tokenizer settings: the same text always reuses one entry,
a changed text or setting never does. Every cache file is written under a temporary name and renamed,
so concurrent jobs sharing `cache_dir` only ever see complete files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset, Subset

from ffnlab.atomic import write_atomic
from ffnlab.errors import DataConfigError
from ffnlab.tokenizer import (
    TextTokenizer,
    encode_ids,
    load_tokenizer_from_json,
    token_dtype,
    train_tokenizer,
    unigram_entropy,
)
from ffnlab.windows import EvalWindows, RandomWindows, rank_and_world_size

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when tokenization or the cache layout changes, so old entries are never reused
SPLITS = ("train", "val", "test")
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
TOKENIZERS = ("bpe", "char")
MIN_BPE_VOCAB = 257  # the 256 byte tokens + at least one merge
OFFLINE_HINT = (
    "data=text_files data.train_files=[train.txt] data.val_files=[valid.txt] data.test_files=[test.txt], "
    "or the embedded corpus: data=tinyshakespeare"
)


# ------------------------------------------------------------------------------------------------- text


def check_files(paths: str | Sequence[str], key: str) -> list[str]:
    paths = [paths] if isinstance(paths, str) else list(paths)
    if not paths:
        raise DataConfigError(f"data.{key} lists no files; give one or more UTF-8 text files")
    checked = []
    for path in paths:
        path = os.path.abspath(os.path.expanduser(str(path)))
        if not os.path.isfile(path):
            raise DataConfigError(f"data.{key}: data file not found: {path} (expected an existing UTF-8 text file)")
        if os.path.getsize(path) == 0:
            raise DataConfigError(f"data.{key}: data file is empty: {path}")
        checked.append(path)
    return checked


def file_identity(path: str) -> dict:
    """A local file's size and content hash (read in 1 MiB chunks): what makes two files the same data."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


FILE_KEYS = ("files", "train_files", "val_files", "test_files")


def data_identity(data_cfg) -> dict:
    """The identity of a `data` config's input, without reading it through the tokenizer: per file key, each
    file's name, size and sha256 (its path is not part of it: a moved corpus is the same data); for a hub
    dataset its path, config name and revision (null = the hub's newest, which is not pinned)."""
    if data_cfg.get("hub_path") is not None:
        return {key: data_cfg.get(key) for key in ("hub_path", "hub_name", "revision")}
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
    n = len(text)
    train_end = int(n * fractions[0])
    val_end = int(n * (fractions[0] + fractions[1]))
    return {"train": text[:train_end], "val": text[train_end:val_end], "test": text[val_end:]}


def load_local_texts(files_by_split: dict[str, list[str]], hf_cache_dir: str) -> dict[str, str]:
    import datasets  # ~1 s to import; sampling needs only the tokenizer above

    try:
        loaded = datasets.load_dataset("text", data_files=files_by_split, sample_by="document", cache_dir=hf_cache_dir)
    except datasets.exceptions.DatasetGenerationError as e:
        if not isinstance(e.__cause__, UnicodeDecodeError):
            raise
        files = [path for paths in files_by_split.values() for path in paths]
        raise DataConfigError(f"data files must be UTF-8 text; one of {files} is not: {e.__cause__}") from e
    return {split: join_documents(loaded[split]["text"]) for split in files_by_split}


def load_hub_texts(hub_path: str, hub_name: str | None, revision: str | None = None) -> dict[str, str]:
    import datasets

    label = f"{hub_path}/{hub_name}" if hub_name else hub_path
    try:
        loaded = datasets.load_dataset(hub_path, hub_name, revision=revision)
    except ConnectionError as e:  # what datasets raises offline (HF_DATASETS_OFFLINE=1) or without network
        raise DataConfigError(
            f"Hub dataset {label} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"(offline: HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set, or no network). Download it once online, or "
            f"train on local text instead: {OFFLINE_HINT}"
        ) from e
    missing = [hub for hub in HUB_SPLITS.values() if hub not in loaded]
    if missing:
        raise DataConfigError(f"Hub dataset {label} has no split {missing}; it has {list(loaded)}")
    return {split: join_documents(loaded[hub]["text"]) for split, hub in HUB_SPLITS.items()}


def text_sha256(texts: dict[str, str]) -> dict[str, str]:
    return {split: hashlib.sha256(texts[split].encode()).hexdigest() for split in SPLITS}


def content_hash(text_digests: dict[str, str], tokenizer: str, vocab_size: int) -> str:
    """Short hex identity of (text of every split, tokenizer settings): the cache key and the runs' data id."""
    identity = {
        "format": CACHE_FORMAT,
        "tokenizer": tokenizer,
        "vocab_size": vocab_size if tokenizer == "bpe" else None,  # a char vocabulary comes from the text alone
        "text_sha256": text_digests,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ cache


def build_cache(
    entry: Path, texts: dict[str, str], text_digests: dict[str, str], tokenizer: str, vocab_size: int, name: str
) -> None:
    start = time.perf_counter()
    tok = train_tokenizer(tokenizer, texts["train"], vocab_size)
    if tokenizer == "bpe" and tok.vocab_size < vocab_size:
        log.warning("the train split supports only %d BPE tokens (asked for %d)", tok.vocab_size, vocab_size)
    entry.mkdir(parents=True, exist_ok=True)
    write_atomic(entry / "tokenizer.json", lambda p: p.write_text(tok.to_json()))
    tokens = {}
    for split in SPLITS:
        ids = encode_ids(tok, texts[split])
        write_atomic(entry / f"{split}.bin", ids.tofile)
        tokens[split] = len(ids)
        if split == "val":
            val_entropy = unigram_entropy(ids, tok.vocab_size)
    meta = {
        "format": CACHE_FORMAT,
        "name": name,
        "tokenizer": tokenizer,
        "vocab_size": tok.vocab_size,
        "dtype": token_dtype(tok.vocab_size).name,
        "tokens": tokens,
        "unigram_entropy_val": val_entropy,
        "text_sha256": text_digests,
        "seconds": round(time.perf_counter() - start, 3),
    }
    # Written last: its presence is what marks the entry complete.
    write_atomic(entry / "meta.json", lambda p: p.write_text(json.dumps(meta, indent=2)))
    log.info("tokenized %s (%s, vocab %d) in %.1f s: %s", name, tokenizer, tok.vocab_size, meta["seconds"], tokens)


# -------------------------------------------------------------------------------------------- datamodule


class TextDataModule(L.LightningDataModule):
    """Config keys are the constructor's arguments; give exactly one source (see the module docstring).

    After `prepare_data()` + `setup()`: `tokenizer`, `vocab_size` (the tokenizer's actual size),
    `unigram_entropy` (nats, validation split), `tokens_per_split`, `data_hash`, `cache_hit`.
    """

    def __init__(
        self, *, name: str, cache_dir: str, tokenizer: str = "bpe", vocab_size: int = 1024, seq_len: int = 128,
        batch_size: int = 32, eval_batch_size: int | None = None, seed: int = 0, num_workers: int = 0,
        files: Sequence[str] | str | None = None, split_fractions: Sequence[float] | None = None,
        train_files: Sequence[str] | str | None = None, val_files: Sequence[str] | str | None = None,
        test_files: Sequence[str] | str | None = None, hub_path: str | None = None, hub_name: str | None = None,
        revision: str | None = None,
    ):
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise DataConfigError(f"unknown tokenizer {tokenizer!r}; accepted: {', '.join(TOKENIZERS)}")
        if tokenizer == "bpe" and vocab_size < MIN_BPE_VOCAB:
            raise DataConfigError(
                f"vocab_size={vocab_size} is too small for byte-level BPE: it needs at least {MIN_BPE_VOCAB} "
                "(256 byte tokens + 1 merge); use tokenizer=char for a character vocabulary"
            )
        if seq_len < 1:
            raise DataConfigError(f"seq_len must be positive, got {seq_len}")
        self.name, self.cache_dir = name, Path(cache_dir).expanduser()
        self.tokenizer_kind, self.requested_vocab_size = tokenizer, vocab_size
        self.seq_len, self.batch_size, self.eval_batch_size = seq_len, batch_size, eval_batch_size or batch_size
        self.seed, self.num_workers = seed, num_workers
        self.hub_path, self.hub_name, self.revision = hub_path, hub_name, revision
        self.files_by_split, self.split_fractions = self._check_source(
            files, split_fractions, {"train": train_files, "val": val_files, "test": test_files}, hub_path
        )
        self.start_sample = 0  # global samples already consumed: set before fit for an exact resume

        self.tokenizer: TextTokenizer | None = None
        self.vocab_size: int | None = None
        self.unigram_entropy: float | None = None
        self.tokens_per_split: dict[str, int] | None = None
        self.cache_hit: bool | None = None  # False: this process tokenized; True: it reused the cache
        self._data_hash: str | None = None
        self._ids: dict[str, np.ndarray] | None = None

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
            return {"train": check_files(files, "files")}, fractions
        if hub_path is not None:
            return None, None
        missing = [f"{split}_files" for split, paths in split_files.items() if paths is None]
        if missing:
            raise DataConfigError(f"data.{missing[0]} is missing: train_files, val_files and test_files are all needed")
        return {split: check_files(paths, f"{split}_files") for split, paths in split_files.items()}, None

    # --------------------------------------------------------------------------------------- text and hash

    def _load_texts(self) -> dict[str, str]:
        if self.hub_path is not None:
            texts = load_hub_texts(self.hub_path, self.hub_name, self.revision)
        else:
            texts = load_local_texts(self.files_by_split, str(self.cache_dir / "hf_datasets"))
            if self.split_fractions is not None:
                texts = split_text(texts["train"], self.split_fractions)
        for split, text in texts.items():
            if not text.strip():
                raise DataConfigError(f"the {split} split of data {self.name!r} is empty (no text besides whitespace)")
        return texts

    @property
    def data_hash(self) -> str:
        if self._data_hash is None:
            self._data_hash = content_hash(
                text_sha256(self._load_texts()), self.tokenizer_kind, self.requested_vocab_size
            )
        return self._data_hash

    @property
    def cache_path(self) -> Path:
        return self.cache_dir / "tokens" / self.data_hash

    # ------------------------------------------------------------------------------------- Lightning hooks

    def prepare_data(self) -> None:
        """Load the text and tokenize it into the cache unless an entry for this text + settings exists.

        Cheap when called again (Lightning calls it after ffnlab.train's own call).
        """
        if self.cache_hit is not None and (self.cache_path / "meta.json").exists():
            return
        texts = self._load_texts()
        digests = text_sha256(texts)
        self._data_hash = content_hash(digests, self.tokenizer_kind, self.requested_vocab_size)
        if (self.cache_path / "meta.json").exists():
            self.cache_hit = True
            log.info("reusing cached tokens in %s", self.cache_path)
            return
        self.cache_hit = False
        build_cache(self.cache_path, texts, digests, self.tokenizer_kind, self.requested_vocab_size, self.name)

    def setup(self, stage: str | None = None) -> None:
        """Open the cached ids (every rank). Prepares them first if this process has not."""
        if self._ids is not None:
            return
        if self.cache_hit is None or not (self.cache_path / "meta.json").exists():
            self.prepare_data()
        meta = json.loads((self.cache_path / "meta.json").read_text())
        for split in ("val", "test", "train"):
            n = meta["tokens"][split]
            if n <= self.seq_len:
                raise DataConfigError(
                    f"seq_len={self.seq_len} is longer than the {split} split of {self.name!r} ({n} tokens): a "
                    f"window needs seq_len + 1 tokens. Set a smaller model.seq_len (at most {n - 1}) or use more text."
                )
        self.tokenizer = load_tokenizer_from_json((self.cache_path / "tokenizer.json").read_text())
        self.vocab_size = self.tokenizer.vocab_size
        self.unigram_entropy = meta["unigram_entropy_val"]
        self.tokens_per_split = meta["tokens"]
        self._ids = {
            split: np.memmap(self.cache_path / f"{split}.bin", dtype=meta["dtype"], mode="r") for split in SPLITS
        }

    def tokenizer_json(self) -> str:
        if self.tokenizer is None:
            raise RuntimeError("call prepare_data() and setup() first")
        return self.tokenizer.to_json()

    def train_dataloader(self) -> DataLoader:
        windows = RandomWindows(self._ids["train"], self.seq_len, self.batch_size, self.seed, self.start_sample)
        return self._loader(windows, batch_size=None)  # the dataset yields whole batches

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        """Rank r of W scores windows r, r+W, ...: each token once across ranks, no padding windows
        (the module sums loss and token counts over ranks, so uneven shares are exact)."""
        windows = EvalWindows(self._ids[split], self.seq_len)
        rank, world_size = rank_and_world_size()
        if world_size > 1:
            windows = Subset(windows, range(rank, len(windows), world_size))
        return self._loader(windows, batch_size=self.eval_batch_size)

    def _loader(self, dataset: Dataset, batch_size: int | None) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
        )
