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

from ffnlab import config
from ffnlab.errors import ConfigError

config.register()
log = logging.getLogger("ffnlab")
failed_runs: list[str] = []


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from ffnlab.checkpoint import Interrupted  # after Hydra parsed the command line: `--help` stays fast
    from ffnlab.train import run

    try:
        return run(cfg)
    except Interrupted as stop:
        # A scheduler's signal stops the whole sweep, not just this point: the record says `interrupted`, and
        # re-running the command resumes. A handler installed before ours (submitit's requeue) gets the signal next.
        log.error("Interrupted: %s (%s)", stop, HydraConfig.get().runtime.output_dir)
        stop.hand_on()
        sys.exit(stop.exit_code)
    except Exception as error:
        # A config or data error is the user's to fix: say what and stop, without a traceback wall.
        # In a sweep, one failed point must not cost the others: record it, go on, exit non-zero at the end.
        if not isinstance(error, ConfigError) and HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        log.error("%s: %s", type(error).__name__, error)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            failed_runs.append(f"{HydraConfig.get().job.override_dirname}: {error}")
            return math.nan
        sys.exit(1)


if __name__ == "__main__":
    main()
    if failed_runs:
        log.error("%d run(s) failed:\n  %s", len(failed_runs), "\n  ".join(failed_runs))
        sys.exit(1)
