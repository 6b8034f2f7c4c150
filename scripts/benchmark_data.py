"""The data layer's speed on this machine: token-store preparation with 1 and 2 processes, and the training loader.

    python scripts/benchmark_data.py [--mb 40] [--tokenizer bpe|char] [--json out.json]

Preparation: a generated corpus of `--mb` MB (lines of random words, plus one line of a tenth of it), tokenized into
a fresh store with num_proc 1 and then 2, interleaved `--repeats` times in this one process so machine noise hits
both alike; tokens/s and the peak RSS summed over the process tree. Loader: RandomWindows over the stored train
split at batch 64 x seq 512, tokens/s of whole batches (one process, no workers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("FFNLAB_NO_PROGRESS", "1")

from ffnlab.data.module import TextDataModule  # noqa: E402
from ffnlab.data.windows import RandomWindows  # noqa: E402


def tree_rss(pid: int) -> int:
    """Resident bytes of pid and its descendants (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree = {pid}
    while True:
        grown = tree | {child for child, parent in parents.items() if parent in tree}
        if grown == tree:
            break
        tree = grown
    total = 0
    for member in tree:
        try:
            line = next(x for x in Path(f"/proc/{member}/status").read_text().splitlines() if x.startswith("VmRSS:"))
            total += int(line.split()[1]) * 1024
        except (OSError, StopIteration, ValueError):
            continue
    return total


def generate(path: Path, megabytes: float) -> None:
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=n)) for n in rng.integers(2, 9, 2000)]
    target = int(megabytes * 1e6)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target * 0.9:
            block = "\n".join(" ".join(rng.choice(words, 12)) for _ in range(20_000)) + "\n"
            f.write(block)
            written += len(block)
        f.write(" ".join(rng.choice(words, max(1, target // 60))) + "\n")  # one long line, a tenth of the corpus


def prepare(files: dict, tokenizer: str, num_proc: int, cache: Path) -> tuple[float, int, int]:
    """(seconds, tokens, peak tree RSS) of one preparation into an empty cache."""
    shutil.rmtree(cache, ignore_errors=True)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(os.getpid()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    datamodule = TextDataModule(name="bench", tokenizer=tokenizer, vocab_size=1024, seq_len=512, batch_size=64,
                                cache_dir=str(cache), num_proc=num_proc, tokenizer_sample_chars=5_000_000,
                                **{f"{split}_files": [str(path)] for split, path in files.items()})
    datamodule.prepare_data()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return seconds, sum(datamodule.tokens_per_split.values()), peak[0]


def loader_tokens_per_s(ids, batches: int = 300) -> float:
    windows = iter(RandomWindows(ids, 512, 64, seed=0, rank=0, world_size=1))
    next(windows)
    started = time.perf_counter()
    for _ in range(batches):
        x, _ = next(windows)
    return batches * x.numel() / (time.perf_counter() - started)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=40.0, help="size of the generated train split")
    parser.add_argument("--tokenizer", default="bpe", choices=["bpe", "char"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "train.txt", args.mb)
        generate(tmp / "held_out.txt", 1)
        files = {"train": tmp / "train.txt", "val": tmp / "held_out.txt", "test": tmp / "held_out.txt"}
        runs: dict[int, list] = {1: [], 2: []}
        for _ in range(args.repeats):
            for num_proc in (1, 2):
                runs[num_proc].append(prepare(files, args.tokenizer, num_proc, tmp / "cache"))
        datamodule = TextDataModule(name="bench", tokenizer=args.tokenizer, vocab_size=1024, seq_len=512,
                                    batch_size=64, cache_dir=str(tmp / "cache"), tokenizer_sample_chars=5_000_000,
                                    **{f"{split}_files": [str(path)] for split, path in files.items()})
        datamodule.prepare_data()
        datamodule.setup("fit")
        loader = [loader_tokens_per_s(datamodule._ids["train"]) for _ in range(3)]
    result = {
        "corpus_mb": args.mb, "tokenizer": args.tokenizer,
        **{f"prepare_tokens_per_s_num_proc_{n}": [round(tokens / s) for s, tokens, _ in rs] for n, rs in runs.items()},
        **{f"prepare_peak_rss_mb_num_proc_{n}": [round(peak / 1e6) for *_, peak in rs] for n, rs in runs.items()},
        "loader_tokens_per_s_batch_64x512": [round(t) for t in loader],
    }
    medians = {n: float(np.median([tokens / s for s, tokens, _ in rs])) for n, rs in runs.items()}
    for key, value in result.items():
        print(f"{key}: {value}")
    print(f"2 processes / 1 process (median preparation tokens/s): {medians[2] / medians[1]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
