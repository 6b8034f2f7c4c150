"""One `last.ckpt` per run, always the newest: written every N optimizer steps and when training ends, each time to
a temporary name and renamed, so a kill mid-write leaves the previous `last.ckpt` whole.

Lightning's ModelCheckpoint does neither here: with `max_steps` not a multiple of its step cadence the final weights
are never saved, and a re-run in the same directory writes `last-v1.ckpt` beside a stale `last.ckpt`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from ffnlab.atomic import write_atomic

LAST = "last.ckpt"


class LastCheckpoint(Callback):
    def __init__(self, dirpath: str | Path, every_n_steps: int):
        self.path = Path(dirpath) / LAST
        self.every_n_steps = every_n_steps
        self._saved_step = -1

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        """Collective (every rank calls it; rank 0 writes). A step already saved is not saved again, which also
        covers the batches of one step under gradient accumulation."""
        if trainer.global_step in (self._saved_step, 0):
            return
        # Full state (optimizer, schedule, loops): what an exact resume needs.
        if trainer.is_global_zero:
            write_atomic(self.path, lambda tmp: trainer.save_checkpoint(tmp, weights_only=False))
        else:
            trainer.save_checkpoint(self.path, weights_only=False)  # joins the collective parts; only rank 0 writes
        self._saved_step = trainer.global_step
