"""The training progress bar: optimizer steps of max_steps, the train loss and tokens/s (issue 25).

Lightning's TQDMProgressBar counts an epoch's batches: "Epoch 0", 0 of the *remaining* steps after a resume, and
micro-batches under gradient accumulation. It also shows the logger's version (`v_num=csv`, the name of our CSV
history's folder, not of the run). A run here is one endless epoch measured in optimizer steps, so the bar is too.
tokens/s is the figure TrainClock logs (ffnlab.training.throughput), read back rather than measured twice.

While the bar is drawn, log records go through tqdm.write (tqdm's logging_redirect_tqdm): a record printed straight
to the terminal lands at the end of the bar's line, and the bar is redrawn below it, so the bar was shown twice.
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, convert_inf
from lightning.pytorch.trainer.states import TrainerFn
from tqdm.contrib.logging import logging_redirect_tqdm


def _prints_to_console(logger: logging.Logger) -> bool:
    return any(isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr) for h in logger.handlers)


class StepProgressBar(TQDMProgressBar):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._redirect = ExitStack()

    def init_train_tqdm(self) -> Tqdm:
        # The step count and total from the start: a bar reset after it is drawn prints a "0/?" frame first.
        return Tqdm(
            desc="train",
            total=self.trainer.max_steps,
            initial=self.trainer.global_step,  # a resumed run continues its count
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        if self.is_enabled and _prints_to_console(logging.getLogger()):  # else tqdm would add a console handler
            self._redirect.enter_context(logging_redirect_tqdm(tqdm_class=Tqdm))

    def on_train_epoch_start(self, trainer, *_):
        pass  # one endless epoch: Lightning's per-epoch reset would count batches again

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar, step = self.train_progress_bar, trainer.global_step
        if bar.n != step and self._should_update(step, bar.total):  # a step, not a micro-batch
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.n = step
            bar.refresh()  # one frame per update: the postfix and the count together

    def on_train_epoch_end(self, trainer, pl_module):
        pass  # the last step's frame already shows the last metrics

    def on_train_end(self, trainer, pl_module):
        self._redirect.close()
        super().on_train_end(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception):
        self._redirect.close()

    # Evaluation bars are made with their name and total too; the loaders are one per split, so Lightning's reset
    # when the loader changes (drawing a "0/?" frame and a "DataLoader 0" name) has nothing to do.
    def init_validation_tqdm(self) -> Tqdm:
        return self._eval_tqdm("validation", self.trainer.num_val_batches)

    def init_test_tqdm(self) -> Tqdm:
        return self._eval_tqdm("test", self.trainer.num_test_batches)

    def _eval_tqdm(self, desc: str, batches: list) -> Tqdm:
        below_train = self.trainer.state.fn == TrainerFn.FITTING  # fit's validations: under the train bar, then gone
        return Tqdm(
            desc=desc,
            total=convert_inf(sum(batches)),
            position=2 * self.process_position + below_train,
            disable=self.is_disabled,
            leave=not below_train,
            dynamic_ncols=True,
            file=sys.stdout,
            bar_format=self.BAR_FORMAT,
        )

    def on_validation_batch_start(self, trainer, *args, **kwargs):
        if trainer.sanity_checking:  # the sanity bar is Lightning's
            super().on_validation_batch_start(trainer, *args, **kwargs)

    def on_test_batch_start(self, *_, **__):
        pass

    def get_metrics(self, trainer, pl_module) -> dict:
        shown = dict(trainer.progress_bar_metrics)  # what the module logs with prog_bar=True: train/loss
        tokens_per_s = trainer.callback_metrics.get("tokens_per_s")
        if tokens_per_s is not None:
            shown["tokens/s"] = f"{tokens_per_s.item():,.0f}"
        return shown
