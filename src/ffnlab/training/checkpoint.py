"""Two checkpoint generations per run, `last.ckpt` the newest, and a clean stop on a scheduler's signal.

`LastCheckpoint` is the run's only checkpoint callback (two ModelCheckpoints would write `last-v1.ckpt`):
  - it saves every `every_n_steps` optimizer steps and/or every `every_n_minutes`, and when training ends;
  - each save goes to a temporary name and is renamed onto `last.ckpt`, the one before it kept as `previous.ckpt`:
    a kill mid-write leaves both whole, and a `last.ckpt` damaged afterwards (a disk, a copy cut short) still leaves
    `previous.ckpt` to resume from (ffnlab.runs.resume tries them newest first);
  - saves happen at the end of a training batch (`on_train_batch_end`), where Lightning's own ModelCheckpoint saves:
    its restore logic assumes that point (it steps the LR schedule and counters on from there), and a resume then
    continues exactly; a save at the start of the next batch resumes one batch out of step with validation;
  - SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 ask for a stop: at the end of the current step it saves, lets Lightning log
    that step and run the validation due after it, and raises `Interrupted` before the next step starts (or at the
    end of training), so the history holds everything up to the checkpoint (ffnlab.training.history; a resume does not
    validate again at its checkpoint's step). Under DDP the ranks agree on "stop" and "save now" with one tiny
    all-reduce per step, so a signal that reaches one rank stops them all at the same step.

Lightning's own SIGTERM handling (raise at the end of a batch) is replaced while training runs; the handlers that
were installed before the Trainer (submitit's requeue handler, say) are kept in `Interrupted.previous_handler`, so
the caller can hand the signal on once the run's record is written.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ffnlab.runs.atomic import write_atomic
from ffnlab.runs.resume import LAST, PREVIOUS
from ffnlab.runs.diskfull import DiskFull

log = logging.getLogger("ffnlab")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)

# Test-only hooks (environment variables, read when a run starts): signal this process at a given step of a run that
# did not resume ("4:SIGKILL"), pause between writing a checkpoint and renaming it (seconds), and make one rank
# raise mid-training.
TEST_SIGNAL_AT_STEP = "FFNLAB_TEST_SIGNAL_AT_STEP"
TEST_PAUSE_BEFORE_RENAME = "FFNLAB_TEST_PAUSE_BEFORE_RENAME"
TEST_FAIL_RANK_AT_STEP = "FFNLAB_TEST_FAIL_RANK_AT_STEP"  # "<rank>:<step>": that rank raises there (ffnlab.distributed.launch)


class Interrupted(Exception):
    """Training stopped on a signal after saving `last.ckpt` at `step`."""

    def __init__(self, signum: int, step: int, previous_handler):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; last.ckpt saved, re-run to resume")
        self.signum, self.step, self.previous_handler = signum, step, previous_handler

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention for "ended by signal N"

    def hand_on(self) -> None:
        """Call the handler that was installed before ffnlab's (e.g. submitit's checkpoint-and-requeue, which
        requeues the job and exits); a no-op when there was none."""
        # Python's own SIGINT handler raises KeyboardInterrupt: a traceback after a clean stop, exit -2 instead of 130
        if callable(self.previous_handler) and self.previous_handler is not signal.default_int_handler:
            self.previous_handler(self.signum, None)


class LastCheckpoint(Callback):
    def __init__(self, dirpath: str | Path, every_n_steps: int | None, every_n_minutes: float | None = None):
        self.path = Path(dirpath) / LAST
        self.previous = Path(dirpath) / PREVIOUS
        self.every_n_steps, self.every_n_minutes = every_n_steps, every_n_minutes
        self._saved_step = -1
        self._saved_at = time.monotonic()
        self._signal: int | None = None
        self._stop: Interrupted | None = None  # agreed and saved: raised before the next step
        # The handlers in place before the Trainer: Lightning installs its own between here and on_train_start.
        self._previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        self._test_signal = _parse_test_signal(os.environ.get(TEST_SIGNAL_AT_STEP))
        self._test_pause = float(os.environ.get(TEST_PAUSE_BEFORE_RENAME) or 0)
        self._test_fail = os.environ.get(TEST_FAIL_RANK_AT_STEP)
        self._resumed_at = 0
        self._stepped = 0  # the global step at the last batch end: a step boundary is where it changes

    # ------------------------------------------------------------------------------------------ signals

    def _on_signal(self, signum, frame) -> None:
        if self._signal is None:
            log.warning("received %s: saving a checkpoint at the next step boundary, then stopping",
                        signal.Signals(signum).name)
        self._signal = signum

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        self._resumed_at = self._stepped = trainer.global_step
        if trainer.is_global_zero:  # what a kill mid-save left behind: never read, so never wanted
            for stale in self.path.parent.glob(f".{LAST}.*.tmp"):
                stale.unlink(missing_ok=True)
        if threading_is_main():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._on_signal)

    def teardown(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        if threading_is_main():
            for signum, handler in self._previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    # --------------------------------------------------------------------------------------- cadence

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx) -> None:
        if self._stop is not None:
            raise self._stop
        step = trainer.global_step
        if self._test_signal and step == self._test_signal[0] and self._resumed_at == 0:
            os.kill(os.getpid(), self._test_signal[1])
        if self._test_fail == f"{trainer.global_rank}:{step}":
            raise RuntimeError(f"test hook: rank {trainer.global_rank} fails at step {step}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self._stepped:  # a micro-batch under gradient accumulation: no optimizer step, no boundary
            return
        self._stepped = step
        due_by_steps = bool(self.every_n_steps) and step > 0 and step % self.every_n_steps == 0
        minutes = (time.monotonic() - self._saved_at) / 60
        due_by_time = self.every_n_minutes is not None and minutes >= self.every_n_minutes
        stop, due = self._agree(trainer, self._signal or 0, due_by_steps or due_by_time)
        if due or stop:
            self.save(trainer)
        if stop:
            self._stop = Interrupted(stop, step, self._previous.get(stop))

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        self.save(trainer)
        if self._stop is not None:  # stopped at the last step: the final evaluations are the re-run's to do
            raise self._stop

    @staticmethod
    def _agree(trainer: L.Trainer, signum: int, due: bool) -> tuple[int, bool]:
        """Every rank takes the same decision: stop if any rank got a signal, save if any rank says it is due."""
        if trainer.world_size == 1:
            return signum, due
        flags = torch.tensor([signum, int(due)], device=trainer.strategy.root_device)
        flags = trainer.strategy.reduce(flags, reduce_op="max")
        return int(flags[0]), bool(flags[1])

    def save(self, trainer: L.Trainer) -> None:
        """Collective (every rank calls it; rank 0 writes). Full state: weights, optimizer, LR schedule, loops."""
        step = trainer.global_step
        if step in (self._saved_step, 0):
            return
        if trainer.is_global_zero:
            try:
                write_atomic(self.path, lambda tmp: self._write(trainer, tmp), previous=self.previous)
            except DiskFull as full:  # a checkpoint is as large as the last one (or its weights and AdamW's state)
                full.needed = self.path.stat().st_size if self.path.is_file() else state_bytes(trainer)
                raise
        else:
            trainer.save_checkpoint(self.path, weights_only=False)  # joins the collective parts; only rank 0 writes
        self._saved_step, self._saved_at = step, time.monotonic()

    def _write(self, trainer: L.Trainer, tmp: Path) -> None:
        trainer.save_checkpoint(tmp, weights_only=False)
        if self._test_pause:
            time.sleep(self._test_pause)


def state_bytes(trainer: L.Trainer) -> int:
    """About what a checkpoint of this model holds: its weights and AdamW's two moments, in their dtypes."""
    return sum(3 * p.numel() * p.element_size() for p in trainer.lightning_module.parameters())


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _parse_test_signal(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    step, name = value.split(":")
    return int(step), int(getattr(signal, name))
