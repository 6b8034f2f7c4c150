"""The token store (issue 12): a corpus tokenized once into fixed-size shards of ids, checked on every load.

An entry (`<cache_dir>/tokens/<data_hash>/`) holds `tokenizer.json`, the shards `<split>.<k>.bin` (uint16 ids, or
uint32 past 65,535 ids; `shard_tokens` each, the last shorter) and `index.json`, written last: its presence marks
the entry complete, and it holds every shard's token count and sha256. Every file is written under a temporary
name and renamed (ffnlab.runs.atomic).

Preparation encodes batches of text pieces (ffnlab.data.corpus) in `num_proc` processes, a bounded number of batches in
flight, and appends their ids in input order, so the shards are byte-identical for any `num_proc` and memory stays
bounded however large the corpus. After each batch that completed a shard, `<split>.state.json` records how many
batches are in the shards plus a tail file: an interrupted preparation skips those batches (reading, not
tokenizing them) and goes on from there.

Loading checks the index and every shard's size, always; checksums when an entry is written and on request
(`data.verify_cache=true`). A bad entry raises `BadEntry` naming what is wrong; the data module rebuilds it, or says
what to do when the cache is read-only. A good entry is only ever read, so a read-only cache serves it as is.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import types
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ffnlab.runs.atomic import write_atomic
from ffnlab.data.tokenizer import TextTokenizer, load_tokenizer_from_json, token_dtype

log = logging.getLogger("ffnlab.data.module")

STORE_FORMAT = 2  # 1: one <split>.bin per split and meta.json (rebuilt on sight); 2: shards + index.json
INDEX = "index.json"
TOKENIZER = "tokenizer.json"
BATCH_CHARS = 1 << 18  # text per encoding task: a batch closes at the first piece that reaches it
TEST_KILL_AFTER_SHARDS = "FFNLAB_TEST_KILL_AFTER_SHARDS"  # test-only: SIGKILL once a split's state holds N shards
IN_FLIGHT_PER_PROCESS = 2  # batches queued per worker: bounds memory, keeps every worker busy


class BadEntry(Exception):
    """A cache entry that exists but cannot be used as it is (the message says what is wrong)."""


# ---------------------------------------------------------------------------------------------- reading


class TokenShards:
    """The shards of one split seen as one array of ids: len(), contiguous slices, and `windows`."""

    def __init__(self, paths: list[str], sizes: list[int], dtype: str):
        self.paths, self.sizes, self.dtype = paths, sizes, np.dtype(dtype)
        self.offsets = np.cumsum([0, *sizes]).tolist()
        self._maps: list[np.memmap] | None = None

    def _shards(self) -> list[np.memmap]:
        if self._maps is None:
            self._maps = [np.memmap(p, dtype=self.dtype, mode="r", shape=(n,)) for p, n in zip(self.paths, self.sizes)]
        return self._maps

    def __getstate__(self):  # DataLoader workers reopen the files instead of receiving their bytes
        return {**self.__dict__, "_maps": None}

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("TokenShards supports contiguous slices; use windows() for many windows")
        start, stop, _ = index.indices(len(self))
        parts, shard = [], bisect.bisect_right(self.offsets, start) - 1
        while start < stop:
            lo = start - self.offsets[shard]
            hi = min(stop, self.offsets[shard + 1]) - self.offsets[shard]
            parts.append(self._shards()[shard][lo:hi])
            start, shard = self.offsets[shard] + hi, shard + 1
        return np.concatenate(parts) if len(parts) != 1 else np.asarray(parts[0])

    def windows(self, starts: np.ndarray, length: int) -> np.ndarray:
        return np.stack([self[int(s) : int(s) + length] for s in starts])

    def tolist(self) -> list[int]:
        return self[:].tolist()


def open_entry(entry: Path, verify: bool = False) -> tuple[dict, dict]:
    """(index, {split: ids}) of a complete entry; FileNotFoundError when there is none, BadEntry when it is damaged."""
    index_path = entry / INDEX
    if not index_path.is_file():
        if (entry / "meta.json").is_file():
            raise BadEntry("it was written by an older ffnlab (one file per split, no checksums)")
        raise FileNotFoundError(index_path)
    try:
        index = json.loads(index_path.read_text())
        splits, dtype = index["splits"], np.dtype(index["dtype"])
    except (ValueError, KeyError, TypeError) as error:
        raise BadEntry(f"{INDEX} is unreadable ({type(error).__name__}: {error})") from None
    if index.get("format") != STORE_FORMAT:
        raise BadEntry(f"store format {index.get('format')} (this code reads {STORE_FORMAT})")
    if not (entry / TOKENIZER).is_file():
        raise BadEntry(f"{TOKENIZER} is missing")
    ids = {}
    for split, shards in splits.items():
        for shard in shards:
            path = entry / shard["file"]
            expected = shard["tokens"] * dtype.itemsize
            size = path.stat().st_size if path.is_file() else None
            if size != expected:
                found = "missing" if size is None else f"{size:,} bytes"
                raise BadEntry(f"shard {shard['file']} is {found}, its index says {expected:,} bytes")
            if verify and file_sha256(path) != shard["sha256"]:
                raise BadEntry(f"shard {shard['file']} does not match its checksum")
        paths = [str(entry / s["file"]) for s in shards]
        sizes = [s["tokens"] for s in shards]
        ids[split] = (np.memmap(paths[0], dtype=dtype, mode="r", shape=(sizes[0],)) if len(shards) == 1
                      else TokenShards(paths, sizes, dtype.str))
    return index, ids


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_writable(directory: Path) -> bool:
    """Whether files can be created in `directory` (or where it would be made): tried, since root ignores modes."""
    directory = Path(directory)
    probe = directory
    while not probe.exists():
        probe = probe.parent
    try:
        with tempfile.TemporaryFile(dir=probe):
            return True
    except OSError:
        return False


@contextmanager
def entry_lock(entry: Path):
    """An exclusive lock on preparing `entry`, shared by every process on every host that sees the cache (flock on
    `<tokens>/.locks/<entry>`, outside the entry so a listing of it holds only the store's files). The kernel
    releases it when its holder dies, so a killed preparation never leaves a stale lock; the next one resumes."""
    import fcntl

    locks = entry.parent / ".locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        handle = open(locks / entry.name, "a")
    except OSError:  # a read-only cache: nothing can be prepared in it, and reading needs no lock
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -------------------------------------------------------------------------------------------- preparing

_WORKER_TOKENIZER: TextTokenizer | None = None


def _init_worker(tokenizer_json: str) -> None:
    global _WORKER_TOKENIZER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process: num_proc says how many
    _WORKER_TOKENIZER = load_tokenizer_from_json(tokenizer_json)


def encode_batch(batch: list[str | None], eod_id: int | None, dtype: str, tokenizer: TextTokenizer | None = None):
    """Ids of a batch of pieces (None: an end-of-document token)."""
    tokenizer = tokenizer or _WORKER_TOKENIZER
    if tokenizer.char_table() is not None:
        parts = [np.asarray([eod_id], dtype=dtype) if piece is None else tokenizer.encode_array(piece, dtype)
                 for piece in batch]
    else:
        texts = [piece for piece in batch if piece is not None]
        encoded = iter(tokenizer.hf.encode_batch(texts, add_special_tokens=False) if texts else [])
        parts = [np.asarray([eod_id], dtype=dtype) if piece is None else np.asarray(next(encoded).ids, dtype=dtype)
                 for piece in batch]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


@contextmanager
def _light_main():
    """Spawned workers re-import the parent's __main__ (train.py or a script, which import torch and Lightning:
    hundreds of MB per worker). They need only this module, so they are started with an empty __main__."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def batches(pieces: Iterator[str | None]) -> Iterator[list[str | None]]:
    """Pieces grouped into tasks of about BATCH_CHARS: a pure function of the piece stream (not of num_proc)."""
    batch, chars = [], 0
    for piece in pieces:
        batch.append(piece)
        chars += len(piece) if piece is not None else 0
        if chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


class ShardWriter:
    """Appends ids and writes every full shard at once; its state lets an interrupted split go on."""

    def __init__(self, entry: Path, split: str, shard_tokens: int, dtype: np.dtype):
        self.entry, self.split, self.shard_tokens, self.dtype = entry, split, shard_tokens, dtype
        self.state_path = entry / f"{split}.state.json"
        self.shards: list[dict] = []
        self.batches_done = 0
        self.pending: list[np.ndarray] = []
        self.pending_tokens = 0
        self._load_state()

    def _load_state(self) -> None:
        try:
            state = json.loads(self.state_path.read_text())
            tail = np.fromfile(self.entry / state["tail"], dtype=self.dtype) if state["tail"] else None
            if tail is not None and len(tail) != state["tail_tokens"]:
                raise ValueError("tail size")
            for shard in state["shards"]:
                if (self.entry / shard["file"]).stat().st_size != shard["tokens"] * self.dtype.itemsize:
                    raise ValueError("shard size")
        except (OSError, ValueError, KeyError):
            return  # no usable state: start the split over
        self.shards, self.batches_done = state["shards"], state["batches_done"]
        if tail is not None and len(tail):
            self.pending, self.pending_tokens = [tail], len(tail)

    @property
    def total_tokens(self) -> int:
        return sum(shard["tokens"] for shard in self.shards) + self.pending_tokens

    def append(self, ids: np.ndarray) -> bool:
        """Add a batch's ids; True when it completed at least one shard (then `save_state` is worth calling)."""
        self.pending.append(ids)
        self.pending_tokens += len(ids)
        self.batches_done += 1
        wrote = False
        while self.pending_tokens >= self.shard_tokens:
            joined = np.concatenate(self.pending)
            self._write_shard(joined[: self.shard_tokens])
            rest = joined[self.shard_tokens :]
            self.pending, self.pending_tokens = ([rest] if len(rest) else []), len(rest)
            wrote = True
        return wrote

    def _write_shard(self, ids: np.ndarray) -> None:
        name = f"{self.split}.{len(self.shards):05d}.bin"
        data = np.ascontiguousarray(ids, dtype=self.dtype).tobytes()
        write_atomic(self.entry / name, lambda tmp: tmp.write_bytes(data), size=len(data))
        digest = hashlib.sha256(data).hexdigest()
        if file_sha256(self.entry / name) != digest:  # checked when written
            raise OSError(f"shard {self.entry / name} does not read back as written")
        self.shards.append({"file": name, "tokens": len(ids), "sha256": digest})

    def save_state(self) -> None:
        tail_name = None
        if self.pending_tokens:
            tail_name = f"{self.split}.tail.{self.batches_done}.bin"
            tail = np.concatenate(self.pending).astype(self.dtype).tobytes()
            write_atomic(self.entry / tail_name, lambda tmp: tmp.write_bytes(tail), size=len(tail))
        state = {"batches_done": self.batches_done, "shards": self.shards, "tail": tail_name,
                 "tail_tokens": self.pending_tokens}
        write_atomic(self.state_path, lambda tmp: tmp.write_text(json.dumps(state)))
        for old in self.entry.glob(f"{self.split}.tail.*.bin"):
            if old.name != tail_name:
                old.unlink(missing_ok=True)
        if len(self.shards) >= int(os.environ.get(TEST_KILL_AFTER_SHARDS) or 1 << 62):
            os.kill(os.getpid(), 9)

    def finish(self) -> list[dict]:
        if self.pending_tokens:
            self._write_shard(np.concatenate(self.pending))
            self.pending, self.pending_tokens = [], 0
        return self.shards

    def clean(self) -> None:
        self.state_path.unlink(missing_ok=True)
        for old in self.entry.glob(f"{self.split}.tail.*.bin"):
            old.unlink(missing_ok=True)


class Progress:
    """Documents, tokens, tokens/s and ETA, on one line (a tqdm bar when the total is known)."""

    def __init__(self, split: str, total_chars: int | None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_chars, unit="char", unit_scale=True, desc=f"tokenizing {split}",
                        disable=os.environ.get("FFNLAB_NO_PROGRESS") == "1", mininterval=1.0)
        self.tokens, self.documents, self.started = 0, 0, time.perf_counter()

    def update(self, batch: list[str | None], n_tokens: int) -> None:
        self.tokens += n_tokens
        self.documents += sum(piece is None for piece in batch)
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{self.documents:,} docs, {self.tokens:,} tokens, {rate:,.0f} tokens/s",
                                 refresh=False)
        self.bar.update(sum(len(p) for p in batch if p is not None))

    def close(self) -> None:
        self.bar.close()


def prepare_split(entry: Path, split: str, pieces: Callable[[], Iterator[str | None]], tokenizer: TextTokenizer,
                  eod_id: int | None, num_proc: int, shard_tokens: int, total_chars: int | None = None,
                  max_tokens: int | None = None) -> list[dict]:
    """Tokenize one split into shards (resuming an interrupted run of the same entry); returns its shard list.
    `max_tokens` caps the split: preparation stops there (the rest of the corpus is never read)."""
    dtype = token_dtype(tokenizer.vocab_size)
    writer = ShardWriter(entry, split, shard_tokens, dtype)
    if writer.batches_done:
        log.info("resuming the %s split of %s after %d batches (%d shards)", split, entry, writer.batches_done,
                 len(writer.shards))
    progress = Progress(split, total_chars)
    stream = batches(pieces())
    for _ in range(writer.batches_done):  # already in the shards or the tail: read past them, do not encode
        next(stream, None)

    def consume(batch, ids) -> bool:
        """Add a batch's ids; False once the cap is reached."""
        if max_tokens is not None:
            ids = ids[: max(0, max_tokens - writer.total_tokens)]
        if writer.append(ids):
            writer.save_state()
        progress.update(batch, len(ids))
        return max_tokens is None or writer.total_tokens < max_tokens

    try:
        if num_proc <= 1:
            for batch in stream:
                if not consume(batch, encode_batch(batch, eod_id, dtype.str, tokenizer)):
                    break
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a process that holds tokenizer threads
            with _light_main():
                pool = context.Pool(num_proc, initializer=_init_worker, initargs=(tokenizer.to_json(),))
            with pool:
                in_flight: deque = deque()
                going = True
                for batch in stream:
                    in_flight.append((batch, pool.apply_async(encode_batch, (batch, eod_id, dtype.str))))
                    if len(in_flight) >= num_proc * IN_FLIGHT_PER_PROCESS:
                        done_batch, result = in_flight.popleft()
                        going = consume(done_batch, result.get())
                        if not going:
                            break
                while in_flight and going:
                    done_batch, result = in_flight.popleft()
                    going = consume(done_batch, result.get())
    finally:
        progress.close()
    shards = writer.finish()
    writer.clean()
    return shards


def write_index(entry: Path, index: dict) -> None:
    write_atomic(entry / INDEX, lambda tmp: tmp.write_text(json.dumps({"format": STORE_FORMAT, **index}, indent=2)))


def unigram_entropy_of(ids, vocab_size: int) -> float:
    """Entropy (nats) of the token frequencies of a split, counted shard by shard."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    step = 1 << 24
    for start in range(0, len(ids), step):
        counts += np.bincount(np.asarray(ids[start : start + step]), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
