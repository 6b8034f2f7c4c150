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
import itertools
import json
import logging
import math
import mmap
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, get_worker_info

from ffnlab.errors import ConfigError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when tokenization or the cache layout changes, so old entries are never reused
SPLITS = ("train", "val", "test")
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
TOKENIZERS = ("bpe", "char")
MIN_BPE_VOCAB = 257  # the 256 byte tokens + at least one merge
CHAR_UNKNOWN = "[UNK]"  # id for characters of val/test never seen in train (the last id)
IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index
SAMPLES_PER_BLOCK = 1024  # training window starts are drawn this many at a time from rng([seed, block])
OFFLINE_HINT = (
    "data=text_files data.train_files=[train.txt] data.val_files=[valid.txt] data.test_files=[test.txt], "
    "or the embedded corpus: data=tinyshakespeare"
)


class DataConfigError(ConfigError):
    """A data setting that cannot work; the message says what was wrong and what is accepted."""


# ---------------------------------------------------------------------------------------------- tokenizers


class TextTokenizer:
    """A `tokenizers.Tokenizer` seen as plain ids: encode(str) -> list[int], decode(list[int]) -> str."""

    def __init__(self, hf: Tokenizer):
        self.hf = hf

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode([int(i) for i in ids])

    def to_json(self) -> str:
        return self.hf.to_str()


def load_tokenizer_from_json(tokenizer_json: str) -> TextTokenizer:
    return TextTokenizer(Tokenizer.from_str(tokenizer_json))


def train_tokenizer(kind: str, text: str, vocab_size: int) -> TextTokenizer:
    """A tokenizer learned from `text` (the train split): byte-level BPE, or one id per character."""
    if kind == "char":
        chars = sorted(set(text))
        vocab = {c: i for i, c in enumerate(chars)} | {CHAR_UNKNOWN: len(chars)}
        hf = Tokenizer(models.WordLevel(vocab, unk_token=CHAR_UNKNOWN))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every char, "\n" too
        hf.decoder = decoders.Fuse()  # join the chars back without spaces
        return TextTokenizer(hf)
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    hf.train_from_iterator(encoding_chunks(text), trainer=trainer)
    return TextTokenizer(hf)


# Right after a newline that sits between two non-space characters, GPT-2's pre-tokenizer pattern always
# ends a piece ("\n" is a piece of its own there), so pieces cut at such points encode to exactly the ids
# of the whole text. Cutting lets `encode_batch` use every core.
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")


def encoding_chunks(text: str, chunk_chars: int = 1 << 16) -> list[str]:
    """`text` cut into pieces of about `chunk_chars` whose ids, concatenated, are the ids of `text`."""
    chunks, start = [], 0
    while len(text) - start > chunk_chars:
        cut = _SAFE_CUT.search(text, start + chunk_chars)
        if cut is None:
            break
        chunks.append(text[start : cut.start()])
        start = cut.start()
    chunks.append(text[start:])
    return chunks


def encode_ids(tokenizer: TextTokenizer, text: str) -> np.ndarray:
    dtype = token_dtype(tokenizer.vocab_size)
    encodings = tokenizer.hf.encode_batch(encoding_chunks(text))
    return np.concatenate([np.asarray(e.ids, dtype=dtype) for e in encodings])


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 halves the cache for vocabularies that fit; larger ones (100k+ tokens) need uint32."""
    return np.dtype(np.uint16 if vocab_size <= 65535 else np.uint32)


def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that ignores context."""
    p = np.bincount(ids, minlength=vocab_size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


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


def load_hub_texts(hub_path: str, hub_name: str | None) -> dict[str, str]:
    import datasets

    label = f"{hub_path}/{hub_name}" if hub_name else hub_path
    try:
        loaded = datasets.load_dataset(hub_path, hub_name)
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


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` then rename onto `path`: readers see the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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


# ---------------------------------------------------------------------------------------------- datasets


class _PicklesMemmapAsPath:
    """A spawned DataLoader worker gets the memmap's path and reopens it, instead of a pickled copy of every id."""

    ids: np.ndarray

    def __getstate__(self):
        state = dict(self.__dict__)
        if isinstance(self.ids, np.memmap) and isinstance(self.ids.base, mmap.mmap):  # a whole file, not a slice
            state["ids"] = (self.ids.filename, self.ids.dtype.str, self.ids.offset, len(self.ids))
        return state

    def __setstate__(self, state):
        if isinstance(state["ids"], tuple):
            path, dtype, offset, n = state["ids"]
            state["ids"] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(n,))
        self.__dict__.update(state)


def rank_and_world_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class RandomWindows(_PicklesMemmapAsPath, IterableDataset):
    """Endless (x, y) batches of random `seq_len + 1`-token windows; their order depends on `seed` alone.

    Global sample i = 0, 1, 2, ... starts where block i // 1024 of `default_rng([seed, block])` says, so
    sample i is the same whatever the batch size or the number of ranks and workers. Rank r of W takes
    the samples i = r (mod W): at every step the W ranks together see what one process with batch W*B
    would. DataLoader workers take whole batches in turn, the order in which the DataLoader hands them
    out, so the stream does not depend on num_workers either. `start_sample` (a multiple of W*B) skips
    samples already consumed, for an exact resume. Rank and world size are read when the dataset is
    built: DataLoader worker processes have no process group.
    """

    def __init__(
        self, ids: np.ndarray, seq_len: int, batch_size: int, seed: int, start_sample: int = 0,
        rank: int | None = None, world_size: int | None = None,
    ):
        if len(ids) <= seq_len:
            raise DataConfigError(f"seq_len={seq_len} needs more than {len(ids)} training tokens")
        self.ids, self.seq_len, self.batch_size, self.seed = ids, seq_len, batch_size, seed
        self.start_sample = start_sample
        self.rank, self.world_size = (rank, world_size) if rank is not None else rank_and_world_size()
        self._block: tuple[int, np.ndarray] | None = None

    def window_starts(self, samples: np.ndarray) -> np.ndarray:
        blocks = samples // SAMPLES_PER_BLOCK
        starts = np.empty(len(samples), dtype=np.int64)
        for block in np.unique(blocks):
            in_block = blocks == block
            starts[in_block] = self._block_starts(int(block))[samples[in_block] % SAMPLES_PER_BLOCK]
        return starts

    def _block_starts(self, block: int) -> np.ndarray:
        if self._block is None or self._block[0] != block:
            rng = np.random.default_rng([self.seed, block])
            self._block = (block, rng.integers(0, len(self.ids) - self.seq_len, SAMPLES_PER_BLOCK))
        return self._block[1]

    def __iter__(self):
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        window = np.arange(self.seq_len + 1)
        for batch in itertools.count(worker_id, num_workers):
            local = batch * self.batch_size + np.arange(self.batch_size)
            samples = self.start_sample + self.rank + self.world_size * local
            rows = torch.from_numpy(self.ids[self.window_starts(samples)[:, None] + window].astype(np.int64))
            yield rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


class EvalWindows(_PicklesMemmapAsPath, Dataset):
    """The whole split in contiguous windows: every token but the first is a label exactly once.

    The last window is padded (inputs with 0, labels with IGNORE_INDEX) rather than dropped, so the
    loss is over the entire split whatever seq_len is.
    """

    def __init__(self, ids: np.ndarray, seq_len: int):
        self.ids, self.seq_len = ids, seq_len

    def __len__(self) -> int:
        return math.ceil((len(self.ids) - 1) / self.seq_len)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        t = self.seq_len
        chunk = np.asarray(self.ids[i * t : (i + 1) * t + 1], dtype=np.int64)
        x = np.zeros(t, dtype=np.int64)
        y = np.full(t, IGNORE_INDEX, dtype=np.int64)
        x[: min(len(chunk), t)] = chunk[:t]
        y[: len(chunk) - 1] = chunk[1:]
        return torch.from_numpy(x), torch.from_numpy(y)


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
        self.hub_path, self.hub_name = hub_path, hub_name
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
            texts = load_hub_texts(self.hub_path, self.hub_name)
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
