"""`cpu_threads`: torch's intra-op threads for a run. CPU float results depend on the count (a GEMM's sums are split
by thread), so on a CPU the resolved number is part of the run's config hash and its comparison setting (on a GPU it
moves no result: ffnlab.runs.record leaves it out there).

null means the process's share of its default: the count the process started with (one per core, or what
OMP_NUM_THREADS or a launcher such as joblib's set) divided by the processes this point runs on this node, at least 1
(Lightning's own rule for DDP on CPUs). It is resolved to a number before the run is hashed, so a record made on 2
cores is not reused on 8. A sweep's points run in one process, so a point at null restores the default that an
earlier point's explicit count replaced.

Lightning's DDP launcher lowers torch's count to cores / processes itself, but only while OMP_NUM_THREADS is unset,
and sets it when it does: so it did so for a sweep's first point only, and the first point ran (and recorded)
another count than the rest (issue 22). ffnlab sets both first, so Lightning leaves them alone at every point.
"""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig, open_dict

from ffnlab.distributed.launch import local_process_count

_STARTED_WITH: int | None = None


def default_threads() -> int:
    global _STARTED_WITH
    if _STARTED_WITH is None:
        _STARTED_WITH = torch.get_num_threads()
    return _STARTED_WITH


def apply_threads(cfg: DictConfig) -> int:
    """Set torch's thread count from `cfg.cpu_threads` (null: this process's share of the default), write the
    number into cfg, and return it."""
    share = max(1, default_threads() // local_process_count(cfg.trainer))
    threads = int(cfg.get("cpu_threads") or share)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # what Lightning's launcher checks before changing the count
    with open_dict(cfg):
        cfg.cpu_threads = threads
    return threads
