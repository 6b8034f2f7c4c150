"""Where an unfinished run continues from: the resume decision in one place (issue 23).

A run dir may hold two checkpoint generations (ffnlab.training.checkpoint: `last.ckpt`, `previous.ckpt`). A re-run of the
same command resumes from the newest one that loads and is this run, and says in one line when it had to pass over a
damaged one. A run starts from step 0 only for a reason it states in one line (no checkpoint, force/resume, a run
that differs, none loads), and then moves the earlier checkpoints aside rather than deleting them.

"This run" is decided by the checkpoint itself: since issue 23 every checkpoint carries the run's identity
(config hash, data identity, results format) and resolved config, so a run whose `metrics.json` was deleted, or
whose attempt failed (a full disk, a crash), resumes as one that was interrupted does. Older checkpoints, without
an identity, are judged by the run record, as before.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from ffnlab.config.schemas import schema_defaults
from ffnlab.runs.record import clear_metrics, identity_differences, read_config, write_config

log = logging.getLogger("ffnlab")

CHECKPOINT_DIR = "checkpoints"
HISTORY_DIR = "csv"
LAST = "last.ckpt"  # the checkpoint generations ffnlab.training.checkpoint writes
PREVIOUS = "previous.ckpt"  # the generation before last.ckpt
GENERATIONS = (LAST, PREVIOUS)  # newest first
# Records whose run may continue: killed (the record still says running), stopped by a signal, or failed mid-run
# (a full disk, a crash: the checkpoint before it is good). A diverged run would diverge again from its checkpoint.
RESUMABLE = ("running", "interrupted", "failed")


def resumable_checkpoint(cfg: DictConfig, out_dir: Path, record: dict | None, identity: dict
                         ) -> tuple[Path | None, int | None, str]:
    """(the newest checkpoint of this unfinished run that loads, its step, "") or (None, None, why the run starts
    from step 0). Passing over a damaged generation is said in one warning line."""
    checkpoints = Path(out_dir) / CHECKPOINT_DIR
    present = [checkpoints / name for name in GENERATIONS if (checkpoints / name).is_file()]
    if not present:
        return None, None, "no checkpoint"
    if cfg.force or not cfg.resume:
        return None, None, "force=true" if cfg.force else "resume=false"
    status = (record or {}).get("status")
    if record is not None and status not in RESUMABLE:
        return None, None, f"the earlier attempt's record says {status}, not {' or '.join(RESUMABLE)}"
    damaged = []
    for path in present:
        try:
            header = read_header(path)
        except ValueError as error:
            damaged.append(f"{path.name} is {error}")
            continue
        why_not = _not_this_run(cfg, out_dir, record, identity, header)
        if why_not:
            return None, None, why_not
        if damaged:
            log.warning("%s: %s; resuming from %s (step %d)", out_dir, "; ".join(damaged), path.name, header["step"])
        elif record is None:
            log.warning("%s: no metrics.json; %s holds this run (its identity matches): resuming from step %d",
                        out_dir, path.name, header["step"])
        return path, header["step"], ""
    return None, None, "; ".join(damaged) + ": no checkpoint loads"


def _not_this_run(cfg: DictConfig, out_dir: Path, record: dict | None, identity: dict, header: dict) -> str:
    """Why the checkpoint is not of the run asked for ("" when it is)."""
    recorded = header["identity"] or (record if record is not None and "config_hash" in record else None)
    if recorded is None:
        return "neither the checkpoint (written before issue 23) nor a run record says which run it holds"
    differences = identity_differences(recorded, identity, header["config"] or read_config(out_dir), cfg,
                                       schema_defaults())
    return f"it holds an unfinished run that differs in {'; '.join(differences)}" if differences else ""


def start_fresh(cfg: DictConfig, out_dir: Path, why: str) -> None:
    """A run that starts from step 0 clears what an earlier attempt left (its record and history), so `last.ckpt` is
    always this run's newest and the history is this run's alone. The earlier checkpoints are moved aside, never
    deleted: a run that cannot continue them exactly (another config, thread count, force=true) may still be what
    someone paid for."""
    clear_metrics(out_dir)
    stale = set_aside(out_dir / CHECKPOINT_DIR)
    if stale is not None:
        log.warning("%s: %s; starting from step 0, its checkpoints kept in %s", out_dir, why, stale.name)
    shutil.rmtree(out_dir / HISTORY_DIR, ignore_errors=True)
    write_config(out_dir, cfg)


def set_aside(checkpoints: Path) -> Path | None:
    """Rename a non-empty checkpoints dir to `checkpoints.stale-<UTC time>` beside it; returns the new path."""
    if not checkpoints.is_dir() or not any(checkpoints.iterdir()):
        shutil.rmtree(checkpoints, ignore_errors=True)
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stale = checkpoints.with_name(f"{checkpoints.name}.stale-{stamp}")
    for n in itertools.count(2):  # twice in one second: a suffix keeps both
        if not stale.exists():
            break
        stale = checkpoints.with_name(f"{checkpoints.name}.stale-{stamp}-{n}")
    checkpoints.rename(stale)
    return stale


def read_header(path: Path) -> dict:
    """A checkpoint's step and what ffnlab stored beside the weights (`ffnlab_identity`, `ffnlab_config`), read
    without reading its tensors into memory; ValueError, in a few words, when the file cannot be a checkpoint that
    resumes (truncated, empty, not a checkpoint, no training state)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)  # plain types only
    except Exception as error:  # noqa: BLE001 - truncated, empty, garbage: all say "cannot be read"
        raise ValueError(f"unreadable: {type(error).__name__}: {first_line(error)}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("global_step"), int):
        raise ValueError("not a training checkpoint (no global_step)")
    if "optimizer_states" not in checkpoint or "loops" not in checkpoint:
        raise ValueError("holds no training state (optimizer, loops) to resume from")
    return {"step": checkpoint["global_step"], "identity": checkpoint.get("ffnlab_identity"),
            "config": checkpoint.get("ffnlab_config")}


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else "no detail"
