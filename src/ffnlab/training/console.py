"""What a training process prints: each fact once (issue 25).

`quiet_third_parties()` runs at the start of every run (ffnlab.training.run.run), the one function every training process
calls: a single run, a multirun's joblib or submitit job, a spawned DDP worker (`python -m ffnlab.distributed.worker`), each
rank under torchrun or srun.

- Lightning's log records belong to the root logger's handlers. `import lightning` gives the "lightning" logger a
  stderr handler of its own, and, when the root logger has no handler yet, "lightning.pytorch" and
  "lightning.fabric" one each as well, and stops them propagating. Under Hydra the root logger holds the console
  handler and the file handler that writes <run dir>/train.log, so every Lightning record was printed twice (once
  without time or logger name), or, depending on what was imported first, never reached train.log. The root's
  handlers give every record one format and keep train.log complete; Lightning's are dropped, but only when the
  root has a handler to print them (a bare `python -c` keeps Lightning's).
- Lightning's "Tip" about litlogger (at every Trainer construction), torch's deprecations that Lightning 2.6 still
  calls, and Lightning's advice about metrics ffnlab already gathers across ranks are not the user's to act on.
  Each is dropped by logger or module and by message (IGNORED_WARNINGS); every other warning and record shows.
"""

from __future__ import annotations

import logging
import warnings

import lightning  # noqa: F401 - its import adds the handlers that quiet_third_parties() removes
from lightning.fabric.utilities.warnings import PossibleUserWarning

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
# lightning_utilities' rank_zero_info logs through one of these, whichever Lightning package was imported last.
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


NO_TIPS = _NoTips()  # one instance: addFilter adds it once however many runs a process makes


# (message, category, module where it is raised): each is about Lightning's own code, which ffnlab cannot change.
IGNORED_WARNINGS = (
    # torch (2.13 here) deprecates LeafSpec; Lightning 2.6's pytree helpers still use it.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities\._pytree"),
    # Lightning's all_gather (LanguageModel gathers its evaluation sums with it) uses torch's deprecated one.
    (r"torch\.distributed\.nn\.functional\.all_gather is deprecated", FutureWarning,
     r"lightning\.fabric\.utilities\.distributed"),
    # Advice to sync epoch-level metrics across ranks: the evaluation losses are already gathered over every rank's
    # token-weighted sums (LanguageModel._eval_epoch_end); a sync_dist mean on top would be a second collective.
    (r"It is recommended to use `self\.log\('(val|test)/(loss|ppl)', \.\.\., sync_dist=True\)`", PossibleUserWarning,
     r"lightning\.pytorch\.trainer\.connectors\.logger_connector\.result"),
)


def quiet_third_parties() -> None:
    for message, category, module in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name in RANK_ZERO_LOGGERS:
        logging.getLogger(name).addFilter(NO_TIPS)
    if not logging.getLogger().handlers:
        return
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:  # Lightning's own, exactly
            logger.removeHandler(handler)
        logger.propagate = True


def summary(metrics: dict, out_dir) -> str:
    """The one line a finished run ends with, from its record."""
    return (
        f"ffn={metrics['variant']} seed={metrics['seed']} finished: val_loss {metrics['val_loss']:.4f}  "
        f"val_ppl {metrics['val_ppl']:.2f}  test_loss {metrics['test_loss']:.4f}  "
        f"{metrics['tokens_per_s']:,.0f} tokens/s  {metrics['wall_s']:.1f} s wall  ({out_dir})"
    )
