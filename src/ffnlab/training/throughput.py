"""Where a run's wall time goes, and its throughput and MFU, with the device synchronised where it is read.

`TrainClock` splits fit's time into training (steps, data loading, loop, checkpoints: everything but validation)
and evaluation, and counts the time between one step's end and the next one's start (data loading plus the loop's
own bookkeeping). It accumulates host time between marks and synchronises the device only at the marks a figure
is read at: every `log_every_n_steps` steps (the logged `tokens_per_s` and `mfu` of that window), around each
validation and at the end of training. A GPU step stays asynchronous, and the totals are exact, since every
interval ends at a synchronised mark or at a host mark that the next synchronised one follows.

The totals live on the LightningModule (`train_time_s`, `eval_time_s`, `between_steps_s`), which saves them in its
checkpoints, so a resumed run counts its whole training. The run record's `tokens_per_s` is
tokens_seen / train_time_s, and its `mfu` flops_per_token · tokens_per_s / (peak · devices).
Lightning's ThroughputMonitor synchronises on every batch and reads a peak table that maps the L40S wrongly:
ffnlab.runs.hardware has ours.
"""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

from ffnlab.runs.hardware import peak_flops


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TrainClock(L.Callback):
    def __init__(self, flops_per_token: int, log_every_n_steps: int, peak_flops_override: float | None = None):
        self.flops_per_token = flops_per_token
        self.log_every = log_every_n_steps
        self.peak_override = peak_flops_override
        self.peak: float | None = None
        self._mark = 0.0  # the end of the last interval counted as training
        self._last_end: float | None = None  # host time the last step ended (the gap to the next is data + loop)
        self._window: tuple[float, int] | None = None  # (synchronised time, tokens_seen) a logged window started at
        self._eval_started = 0.0

    def setup(self, trainer, pl_module, stage):
        self.peak = peak_flops(pl_module.device, str(trainer.precision), self.peak_override)

    def mfu(self, tokens_per_s: float, world_size: int) -> float | None:
        return None if self.peak is None else self.flops_per_token * tokens_per_s / (self.peak * world_size)

    def _synced_now(self, pl_module) -> float:
        synchronize(pl_module.device)
        return time.perf_counter()

    # ------------------------------------------------------------------ training
    def on_train_start(self, trainer, pl_module):
        self._mark = self._synced_now(pl_module)
        self._window = (self._mark, pl_module.tokens_seen)
        self._last_end = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._last_end is not None:
            pl_module.between_steps_s += time.perf_counter() - self._last_end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        logging_step = trainer.global_step % self.log_every == 0
        now = self._synced_now(pl_module) if logging_step else time.perf_counter()
        pl_module.train_time_s += now - self._mark
        self._mark = self._last_end = now
        if logging_step and self._window is not None:
            started, tokens = self._window
            tokens_per_s = (pl_module.tokens_seen - tokens) / max(now - started, 1e-9)
            pl_module.log("tokens_per_s", tokens_per_s, on_step=True, on_epoch=False)
            mfu = self.mfu(tokens_per_s, trainer.world_size)
            if mfu is not None:
                pl_module.log("mfu", mfu, on_step=True, on_epoch=False)
            self._window = (now, pl_module.tokens_seen)

    def on_train_end(self, trainer, pl_module):
        now = self._synced_now(pl_module)
        pl_module.train_time_s += now - self._mark
        self._mark = now

    # ------------------------------------------------------------------ evaluation (inside fit and after it)
    def _eval_start(self, trainer, pl_module):
        now = self._synced_now(pl_module)
        if trainer.state.fn == TrainerFn.FITTING:
            pl_module.train_time_s += now - self._mark
        self._eval_started = now

    def _eval_end(self, trainer, pl_module):
        now = self._synced_now(pl_module)
        pl_module.eval_time_s += now - self._eval_started
        self._mark = now
        self._last_end = None  # the next step's wait is not a data wait
        if self._window is not None:  # a logged window measures training only
            self._window = (now, pl_module.tokens_seen)

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._eval_start(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._eval_end(trainer, pl_module)

    def on_test_start(self, trainer, pl_module):
        self._eval_start(trainer, pl_module)

    def on_test_end(self, trainer, pl_module):
        self._eval_end(trainer, pl_module)
