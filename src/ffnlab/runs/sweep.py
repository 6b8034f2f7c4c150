"""A multirun's outcome from its run records, right under any Hydra launcher (issue 9).

Counting failures in the process that runs the sweep is wrong as soon as the jobs run elsewhere (submitit, joblib):
the parent then exits 0 whatever happened. Instead:
  - `SweepOutcome.on_multirun_start` (the parent) gives the sweep an id, in the environment every launcher passes on
    to its jobs (submitit's local and SLURM executors, joblib's workers);
  - each job, in `note_job`, leaves a one-line note in `<sweep dir>/.sweep/<id>/`: its run dir, and its error if it
    raised one (a point that refused to reuse another run's finished record leaves that record as it is, so only
    the note can say it failed);
  - `on_multirun_end` (the parent again) reads each noted run dir's `metrics.json`: a point failed unless its record
    says finished, and exits non-zero through `failed_points`.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ffnlab.runs.atomic import write_atomic
from ffnlab.runs.record import read_metrics

log = logging.getLogger("ffnlab")

SWEEP_ID = "FFNLAB_SWEEP_ID"
NOTES_DIR = ".sweep"

failed_points: list[str] = []  # set by on_multirun_end in the process that ran the sweep


def _notes(sweep_dir: str | Path, sweep_id: str) -> Path:
    return Path(sweep_dir) / NOTES_DIR / sweep_id


def note_job(sweep_dir: str | Path, job_num: int, run_dir: str | Path, error: str | None = None) -> None:
    """One job's note (rank 0 of the point only): where its record is, and the error it raised, if any."""
    sweep_id = os.environ.get(SWEEP_ID)
    if not sweep_id:
        return
    note = {"run_dir": str(run_dir), "error": error}
    path = _notes(sweep_dir, sweep_id) / f"{job_num}.json"
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(note)))


def outcome(sweep_dir: str | Path, sweep_id: str) -> tuple[int, list[str]]:
    """(points noted, failed points as 'run dir: reason') of one sweep, from its notes and run records."""
    failed, notes = [], sorted(_notes(sweep_dir, sweep_id).glob("*.json"), key=lambda p: int(p.stem))
    for path in notes:
        note = json.loads(path.read_text())
        name = Path(note["run_dir"]).name
        record = read_metrics(Path(note["run_dir"])) or {}
        if record.get("status") != "finished":
            reason = record.get("error") or note["error"] or f"status {record.get('status', 'missing')}"
            failed.append(f"{name}: {reason}")
        elif note["error"]:  # refused: the finished record is another run's
            failed.append(f"{name}: {note['error']}")
    return len(notes), failed


class SweepOutcome(Callback):
    """conf/train.yaml's `hydra.callbacks.sweep_outcome`."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        os.environ[SWEEP_ID] = uuid.uuid4().hex[:12]

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_id = os.environ.pop(SWEEP_ID, None)
        if not sweep_id or int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0))) != 0:
            return  # under torchrun/srun every rank runs the sweep; rank 0's notes and exit status are the sweep's
        n_points, failed = outcome(config.hydra.sweep.dir, sweep_id)
        failed_points.extend(failed)
        if failed:
            log.error("%d of %d point(s) failed:\n  %s", len(failed), n_points, "\n  ".join(failed))


def unswept_study(argv: list[str]) -> str | None:
    """One line when `python train.py experiment=<a sweep>` is run without -m: Hydra would silently run a single
    point (the first value of nothing: the config's defaults) of a study that sweeps. None when -m is given, no
    experiment is named, the command pins every swept key itself (one point of the study, on purpose), or the
    command does not compose (Hydra then says why, as usual)."""
    if any(a in ("-m", "--multirun") for a in argv) or not any(a.startswith("experiment=") for a in argv):
        return None
    from ffnlab.config.compose import compose_config

    overrides = [a for a in argv if not a.startswith("-")]
    try:
        swept = compose_config(overrides, with_hydra=True).hydra.sweeper.params or {}
    except Exception:  # noqa: BLE001 - a command that does not compose is Hydra's to report
        return None
    given = {a.partition("=")[0].lstrip("+~") for a in overrides}
    unpinned = [key for key in swept if key not in given]
    if not unpinned:
        return None
    experiment = next(a for a in argv if a.startswith("experiment="))
    return (f"{experiment} is a sweep over {', '.join(unpinned)}: run it with -m (python train.py -m {experiment} "
            f"...), or pin {', '.join(unpinned)} on the command line to run one point")
