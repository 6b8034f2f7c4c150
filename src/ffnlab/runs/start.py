"""A run's start, decided on rank 0 before any training: reuse a finished identical run, resume an unfinished one
from its checkpoint, or start over; and a refused setting's `failed` record. The identity and setting it keys on are
ffnlab.runs.record's; which checkpoint resumes is ffnlab.runs.resume's."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from ffnlab.config.errors import ConfigError
from ffnlab.config.schemas import schema_defaults
from ffnlab.data.module import data_identity
from ffnlab.distributed import launch
from ffnlab.runs.record import check_same_run, is_finished, read_metrics, run_identity, write_metrics
from ffnlab.runs.resume import resumable_checkpoint, start_fresh
from ffnlab.runs.runlock import RunLock

log = logging.getLogger("ffnlab")


def input_identity(cfg: DictConfig) -> dict:
    """The identity of what a run reads: its data, or for a fine-tune its tasks and the run it starts from."""
    if cfg.get("finetune") is not None:
        from ffnlab.downstream import finetune  # fine-tune runs only

        return finetune.input_identity(cfg)
    return data_identity(cfg.data)


def reuse_finished(cfg: DictConfig, out_dir: Path, record: dict) -> float:
    """A finished run is returned only when it is this run (config hash, data identity, results format);
    otherwise the point refuses in one line and leaves the record as it is."""
    check_same_run(out_dir, record, run_identity(cfg, input_identity(cfg)), cfg, schema_defaults())
    log.info("%s already finished (val_loss %.4f): skipping; force=true re-runs it", out_dir, record["val_loss"])
    return record["val_loss"]


@dataclass
class Start:
    """Rank 0's decision for a run that trains, read by every rank: resume from a checkpoint or from step 0."""

    identity: dict
    resume_from: Path | None
    wandb_id: str
    resume_step: int | None = None  # the optimizer step resume_from holds (read once, by ffnlab.runs.resume)


def prepare_start(cfg: DictConfig, out_dir: Path, previous: dict | None) -> Start:
    """On rank 0 only: resume an unfinished identical run, or clear the run dir; the record says `running`."""
    identity = run_identity(cfg, input_identity(cfg))
    resume_from, resume_step, why_not = resumable_checkpoint(cfg, out_dir, previous, identity)
    wandb_id = (previous or {}).get("wandb_id") if resume_from else uuid.uuid4().hex[:12]
    if resume_from is None:
        start_fresh(cfg, out_dir, why_not)
    write_metrics(out_dir, {"status": "running", **identity, "ffn": cfg.ffn.name, "seed": cfg.seed,
                            "wandb_id": wandb_id})
    return Start(identity, resume_from, wandb_id, resume_step)


def record_bad_setting(cfg: DictConfig, error: ConfigError) -> None:
    """A setting refused before any work still leaves a `failed` record, so a sweep's report lists the point; but
    never over a finished record (that run's results are not this command's to lose)."""
    try:
        is_rank_zero = launch.resolve_world(cfg.trainer).rank == 0
    except Exception:  # noqa: BLE001 - a trainer config too broken to say: only one process reads it then
        is_rank_zero = True
    out_dir = Path(cfg.paths.output_dir)
    if is_rank_zero and not is_finished(read_metrics(out_dir)):
        write_metrics(out_dir, {"status": "failed", "ffn": cfg.ffn.get("name"), "seed": cfg.get("seed"),
                                "error": f"{type(error).__name__}: {error}"})


def lock_and_reuse(cfg: DictConfig, out_dir: Path, lock: RunLock) -> float | None:
    """On rank 0: take the run dir's lock, then return a finished identical run's validation loss (None: train)."""
    lock.acquire()
    previous = read_metrics(out_dir)
    return reuse_finished(cfg, out_dir, previous) if is_finished(previous) and not cfg.force else None
