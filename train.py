"""Train one FFN variant: `python train.py ffn=geglu model=small seed=1`.

A whole study: `python train.py -m experiment=glu_variants`.
"""

import logging
import math
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ffnlab.config import schemas as config

from ffnlab.runs import sweep
from ffnlab.config.errors import ConfigError

config.register()
log = logging.getLogger("ffnlab")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from ffnlab.training.checkpoint import Interrupted  # after Hydra parsed the command line: `--help` stays fast
    from ffnlab.runs.diskfull import disk_full_in
    from ffnlab.training.divergence import Diverged
    from ffnlab.distributed.launch import resolve_world
    from ffnlab.training.run import run

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    error = None
    try:
        if cfg.get("train_tokens") is not None and any(o.startswith("trainer.max_steps=") for o in
                                                       hydra_cfg.overrides.task):
            raise ConfigError("train_tokens and trainer.max_steps both set a run's length; give one of them")
        return run(cfg)
    except Interrupted as stop:
        # A scheduler's signal stops the whole sweep, not just this point: the record says `interrupted`, and
        # re-running the command resumes. A handler installed before ours (submitit's requeue) gets the signal next.
        log.error("Interrupted: %s (%s)", stop, hydra_cfg.runtime.output_dir)
        error = str(stop)
        stop.hand_on()
        sys.exit(stop.exit_code)
    except Exception as failure:
        # A config or data error is the user's to fix: say what and stop, without a traceback wall.
        # In a sweep, one failed point must not cost the others: its record says so, the sweep goes on and exits
        # non-zero at the end (ffnlab.runs.sweep reads the records, so that holds under any launcher).
        full = disk_full_in(failure)  # a full disk: one line naming the file, not a traceback (ffnlab.runs.diskfull)
        error = f"DiskFull: {full}" if full else f"{type(failure).__name__}: {failure}"
        if not (isinstance(failure, (ConfigError, Diverged)) or full) and not multirun:
            raise
        log.error("%s", error)
        if multirun:
            return math.nan
        sys.exit(1)
    finally:
        if multirun and _rank(cfg, resolve_world) == 0:
            sweep.note_job(hydra_cfg.sweep.dir, hydra_cfg.job.num, hydra_cfg.runtime.output_dir, error)


def _rank(cfg: DictConfig, resolve_world) -> int:
    try:
        return resolve_world(cfg.trainer).rank
    except Exception:  # noqa: BLE001 - a trainer config too broken to say: the point failed, note it
        return 0


if __name__ == "__main__":
    from ffnlab.runs import diskfull
    from ffnlab.runs import locations
    from ffnlab.runs import secrets

    try:
        sys.argv[1:] = secrets.take(sys.argv[1:])  # before Hydra records the command line anywhere
    except ConfigError as refused:
        print(f"error: {refused}", file=sys.stderr)
        sys.exit(1)
    problem = locations.check(sys.argv[1:]) or sweep.unswept_study(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(1)
    diskfull.guard_hydra_files()  # a disk full before the run starts: one line too
    main()
    if sweep.failed_points:
        sys.exit(1)
