"""A run's metrics history across attempts: a resumed run's `csv/metrics.csv` and wandb run equal an uninterrupted
run's (issue 23.1), every validation once and every training step once.

Lightning's CSVLogger starts `metrics.csv` anew when it opens a directory that holds one, so a resumed run lost every
row from before its interruption. A resumed run's history keeps the earlier rows of the steps before its checkpoint
(Lightning flushes the file at every logging call, so they are on disk) and drops the rest: the resumed run trains
those steps again from the checkpoint and logs them itself, with the same values (an exact resume). A CSV row's
`step` is Lightning's count of optimizer steps done before the row was logged: the training row of step k+1 and the
validation after step k+1 both say k, so the rows of the steps up to a checkpoint at step S are those below S.

The wandb run is resumed by id (ffnlab.training.run) and already holds the rows of the steps the resumed run trains again:
those are not sent twice (`skip_replayed`), so its history too has each step once.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from ffnlab.runs.atomic import write_atomic
from ffnlab.runs.diskfull import DiskFull, is_full

METRICS_CSV = "metrics.csv"


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """(header, rows) of a metrics.csv; ([], []) when there is none."""
    try:
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            return list(reader.fieldnames or []), list(reader)
    except FileNotFoundError:
        return [], []


def split_at(rows: list[dict], step: int) -> tuple[list[dict], list[dict]]:
    """(rows of the steps up to a checkpoint at `step`, rows of the steps after it, which a resume logs again)."""
    rows = [row for row in rows if str(row.get("step") or "").isdigit()]  # a row cut short by a crash: not a row
    before = [row for row in rows if int(row["step"]) < step]
    return before, [row for row in rows if int(row["step"]) >= step]


def logged(row: dict) -> tuple[int, frozenset]:
    """What a logger was sent for a CSV row: its step and the names it set (CSV leaves the others empty)."""
    return int(row["step"]), frozenset(k for k, v in row.items() if k != "step" and v not in ("", None))


class _ContinuedWriter(ExperimentWriter):
    """Lightning's CSV writer, opening an existing history at `resume_step` instead of deleting it."""

    def __init__(self, log_dir: str, resume_step: int | None):
        self._resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self._resume_step is None:  # a run from step 0 (its run dir's history was cleared: ffnlab.runs.resume)
            super()._check_log_dir_exists()
            return
        path = Path(self.metrics_file_path)
        header, rows = read_rows(path)
        kept, _ = split_at(rows, self._resume_step)
        if header:
            write_atomic(path, lambda tmp: _write_rows(tmp, header, kept))
        self.metrics_keys = sorted(header)  # the writer appends under this header, widening it for new names

    def save(self) -> None:
        """Lightning's append, undone when the disk refuses it: no half-written row is left (a re-run reads the file),
        and the error names the file (ffnlab.runs.diskfull)."""
        path = Path(self.metrics_file_path)
        size = path.stat().st_size if path.is_file() else None
        try:
            super().save()
        except OSError as error:
            if not is_full(error):
                raise
            if size is None:
                path.unlink(missing_ok=True)
            else:
                os.truncate(path, size)
            raise DiskFull(path, error.strerror or "no space left on device") from error

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        """Lightning's rewrite (a new column), made atomic: it truncated the file first, so a full disk lost it."""
        path = Path(self.metrics_file_path)
        _, rows = read_rows(path)
        write_atomic(path, lambda tmp: _write_rows(tmp, fieldnames, rows))


def _write_rows(path: Path, header: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


class History(CSVLogger):
    """`<run dir>/csv/metrics.csv`, continued from `resume_step` when the run resumes (None: a new history)."""

    def __init__(self, run_dir: Path, version: str, resume_step: int | None = None):
        super().__init__(run_dir, name="", version=version)
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuedWriter(self.log_dir, self._resume_step)
        return self._experiment

    def replayed(self) -> set[tuple[int, frozenset]]:
        """What the earlier attempts logged for the steps this resumed run trains again (read before it logs)."""
        if self._resume_step is None:
            return set()
        _, rows = read_rows(Path(self.log_dir) / METRICS_CSV)
        return {logged(row) for row in split_at(rows, self._resume_step)[1]}


def skip_replayed(logger, replayed: set[tuple[int, frozenset]]) -> None:
    """Have `logger` (a resumed wandb run) not send again the rows an earlier attempt sent it: the same step with the
    same names. An instance attribute, so the logger stays the class Lightning and wandb know."""
    if not replayed:
        return
    send = logger.log_metrics

    def log_metrics(metrics: dict, step: int | None = None) -> None:
        if step is not None and (int(step), frozenset(metrics)) in replayed:
            return
        send(metrics, step)

    logger.log_metrics = log_metrics
