"""Where a real train.py run's time goes: one run through ffnlab.training.run.run (the path `python train.py` takes), its
record's timing (ffnlab.training.throughput), and the training data loader timed alone."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig

from ffnlab.runs.record import read_metrics


def train_py_run(cfg: DictConfig) -> dict:
    """Run `cfg` (composed, not yet resolved) into a temporary run dir and return its record."""
    from ffnlab.training.run import run

    with tempfile.TemporaryDirectory(prefix="ffnlab-bench-") as out:
        cfg.paths.output_dir = str(Path(out) / "run")
        cfg.force = True
        run(cfg)
        return read_metrics(Path(cfg.paths.output_dir))


def loader_seconds_per_batch(cfg: DictConfig, batches: int = 50) -> float:
    """The training dataloader alone: seconds per batch over `batches` batches (after one to warm it up)."""
    from ffnlab.training.run import instantiate_data

    datamodule = instantiate_data(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    iterator = iter(datamodule.train_dataloader())
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return (time.perf_counter() - started) / batches
