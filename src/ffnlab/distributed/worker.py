"""A spawned worker of a multi-process point (`python -m ffnlab.distributed.worker`, started by ffnlab.distributed.launch): run the point's
resolved config as this rank, then exit. A module of its own so that ffnlab.distributed.launch, which ffnlab.training.run uses, never
imports ffnlab.training.run (no import circle)."""

from __future__ import annotations

import json
import logging
import os
import sys

from ffnlab.distributed.launch import WORKER_CONFIG

log = logging.getLogger("ffnlab")


def main() -> int:
    """A spawned worker: run the point's resolved config as this rank, then exit."""
    from omegaconf import OmegaConf

    from ffnlab.training.checkpoint import Interrupted
    from ffnlab.training.run import run

    # Rank 0 says each fact of the point; a worker would repeat them, so it speaks only of its warnings and errors.
    # (The handler's level: Lightning's loggers set their own INFO level, which a root level would not hold back.)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format=f"[rank {os.environ['RANK']}] %(levelname)s %(message)s",
                        handlers=[console])
    cfg = OmegaConf.create(json.loads(os.environ.pop(WORKER_CONFIG)))
    try:
        run(cfg)
    except Interrupted as stop:
        return stop.exit_code
    except Exception as error:  # noqa: BLE001 - rank 0 records it; here one line is enough
        log.error("%s: %s", type(error).__name__, error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
