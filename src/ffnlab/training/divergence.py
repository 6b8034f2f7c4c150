"""A non-finite training loss stops the run at once, and its record says `diverged` (issue 14).

Checking every step would cost a host sync per step (a stall on GPUs). Instead the device keeps, without a sync, the
first step whose loss was not finite and the last finite loss; the host reads them every `every_n_steps` optimizer
steps (the logging cadence) and at the end of training, after a max over ranks so that every rank stops together.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class Diverged(RuntimeError):
    def __init__(self, step: int, last_finite_loss: float | None):
        last = f"{last_finite_loss:.4f}" if last_finite_loss is not None else "none"
        super().__init__(f"the training loss is not finite from step {step} (last finite loss {last})")
        self.step, self.last_finite_loss = step, last_finite_loss


class DivergenceCheck(Callback):
    def __init__(self, every_n_steps: int):
        self.every_n_steps = max(1, int(every_n_steps))
        self._first_bad: torch.Tensor | None = None
        self._last_finite: torch.Tensor | None = None
        self._step = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx) -> None:
        self._step = trainer.global_step  # the optimizer step this batch belongs to

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = (outputs["loss"] if isinstance(outputs, dict) else outputs).detach().float()
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._last_finite = torch.full((), math.nan, device=loss.device)
        finite = torch.isfinite(loss)
        self._first_bad = torch.where(~finite & (self._first_bad < 0), self._step, self._first_bad)
        self._last_finite = torch.where(finite, loss, self._last_finite)
        if trainer.global_step % self.every_n_steps == 0 and trainer.global_step != self._step:
            self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        if self._first_bad is None:
            return
        flag = (self._first_bad >= 0).long()
        if trainer.world_size > 1:
            flag = trainer.strategy.reduce(flag, reduce_op="max")
        if int(flag):  # the one host sync, every every_n_steps steps
            first = int(self._first_bad)
            last = float(self._last_finite)
            raise Diverged(first if first >= 0 else self._step, last if math.isfinite(last) else None)
