"""Token ids -> batches: random training windows in a seed-fixed order, contiguous evaluation windows."""

from __future__ import annotations

import itertools
import math
import mmap

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ffnlab.config.errors import DataConfigError

IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index
SAMPLES_PER_BLOCK = 1024  # training window starts are drawn this many at a time from rng([seed, block])


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


SAMPLINGS = ("random", "no_repeat")
_MIX = np.uint64(0x9E3779B97F4A7C15)


def permute(index: np.ndarray, n: int, key: tuple[int, ...]) -> np.ndarray:
    """A seeded bijection of [0, n), applied elementwise: a 4-round Feistel network on the smallest even number of
    bits that holds n, cycle-walked back into [0, n) (fewer than 4 rounds of walking on average)."""
    bits = max(2, int(np.ceil(np.log2(max(n, 2)))))
    bits += bits % 2
    half, mask = bits // 2, np.uint64((1 << (bits // 2)) - 1)
    round_keys = np.random.default_rng(list(key)).integers(0, 2**63, size=4, dtype=np.uint64)

    def feistel(x: np.ndarray) -> np.ndarray:
        left, right = x >> np.uint64(half), x & mask
        for k in round_keys:
            mixed = ((right ^ k) * _MIX) >> np.uint64(64 - half)
            left, right = right, left ^ (mixed & mask)
        return (left << np.uint64(half)) | right

    with np.errstate(over="ignore"):  # the multiply is meant to wrap
        x = np.asarray(index, dtype=np.uint64)
        pending = np.ones(len(x), dtype=bool)
        while pending.any():
            x[pending] = feistel(x[pending])
            pending &= x >= np.uint64(n)
    return x.astype(np.int64)


class RandomWindows(_PicklesMemmapAsPath, IterableDataset):
    """Endless (x, y) batches of random `seq_len + 1`-token windows; their order depends on `seed` alone.

    Global sample i = 0, 1, 2, ... starts where block i // 1024 of `default_rng([seed, block])` says, so
    sample i is the same whatever the batch size or the number of ranks and workers. Rank r of W takes
    the samples i = r (mod W): at every step the W ranks together see what one process with batch W*B
    would. DataLoader workers take whole batches in turn, the order in which the DataLoader hands them
    out, so the stream does not depend on num_workers either. `start_sample` (a multiple of W*B) skips
    samples already consumed, for an exact resume. Rank and world size are read when the dataset is
    built: DataLoader worker processes have no process group.

    `sampling="no_repeat"` (large corpora, issue 13): the split is cut into n = (tokens - 1) // seq_len windows that
    share only their boundary token, and sample i is window perm_e(i mod n) of epoch e = i // n, perm_e a seeded
    bijection of [0, n): no window repeats within an epoch, whatever the ranks, workers or resumes.
    """

    def __init__(
        self, ids: np.ndarray, seq_len: int, batch_size: int, seed: int, start_sample: int = 0,
        rank: int | None = None, world_size: int | None = None, sampling: str = "random",
    ):
        if len(ids) <= seq_len:
            raise DataConfigError(f"seq_len={seq_len} needs more than {len(ids)} training tokens")
        if sampling not in SAMPLINGS:
            raise DataConfigError(f"data.sampling={sampling!r} is not accepted; use one of {', '.join(SAMPLINGS)}")
        self.sampling = sampling
        self.ids, self.seq_len, self.batch_size, self.seed = ids, seq_len, batch_size, seed
        self.start_sample = start_sample
        self.rank, self.world_size = (rank, world_size) if rank is not None else rank_and_world_size()
        self._block: tuple[int, np.ndarray] | None = None

    @property
    def windows_per_epoch(self) -> int:
        return (len(self.ids) - 1) // self.seq_len

    def window_starts(self, samples: np.ndarray) -> np.ndarray:
        if self.sampling == "no_repeat":
            n = self.windows_per_epoch
            starts = np.empty(len(samples), dtype=np.int64)
            for epoch in np.unique(samples // n):
                in_epoch = samples // n == epoch
                starts[in_epoch] = permute(samples[in_epoch] % n, n, (self.seed, int(epoch))) * self.seq_len
            return starts
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
            starts = self.window_starts(samples)
            if hasattr(self.ids, "windows"):  # ffnlab.data.store.TokenShards: a split in several shards
                gathered = self.ids.windows(starts, self.seq_len + 1)
            else:
                gathered = self.ids[starts[:, None] + window]
            rows = torch.from_numpy(gathered.astype(np.int64))
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


class RankShare(Dataset):
    """Rank r of W's share of evaluation windows: item i is window r + i*W, or, past the last window, a padding window
    (inputs 0, labels IGNORE_INDEX) that scores no token.

    Every rank gets ceil(n / W) items, so the same number of batches: under FSDP every forward is a collective, and a
    rank with a batch fewer (or, with fewer windows than ranks, none at all) breaks the others' next collective. The
    evaluation sums loss and scored tokens over ranks; a padding window adds 0 to both, so the loss is unchanged.
    """

    def __init__(self, windows: Dataset, seq_len: int, rank: int, world_size: int):
        self.windows, self.seq_len, self.rank, self.world_size = windows, seq_len, rank, world_size

    def __len__(self) -> int:
        return math.ceil(len(self.windows) / self.world_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        window = self.rank + i * self.world_size
        if window < len(self.windows):
            return self.windows[window]
        return torch.zeros(self.seq_len, dtype=torch.int64), torch.full((self.seq_len,), IGNORE_INDEX)
