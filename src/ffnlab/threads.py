"""`cpu_threads`: torch's intra-op threads for a run. CPU float results depend on the count (a GEMM's sums are split
by thread), so the resolved number is part of the run's config hash and its comparison setting.

null means torch's default, the count the process started with (one per core, or what OMP_NUM_THREADS or a
launcher such as joblib's set), resolved to a number before the run is hashed: a record made on 2 cores is not
reused on 8. A sweep's points run in one process, so a point at null restores the default that an earlier
point's explicit count replaced.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, open_dict

_STARTED_WITH: int | None = None


def default_threads() -> int:
    global _STARTED_WITH
    if _STARTED_WITH is None:
        _STARTED_WITH = torch.get_num_threads()
    return _STARTED_WITH


def apply_threads(cfg: DictConfig) -> int:
    """Set torch's thread count from `cfg.cpu_threads` (null: the process's default), write the number into cfg,
    and return it."""
    default = default_threads()
    threads = int(cfg.get("cpu_threads") or default)
    torch.set_num_threads(threads)
    with open_dict(cfg):
        cfg.cpu_threads = threads
    return threads
