"""What a run logged along the way: one column of its Lightning CSVLogger file (csv/metrics.csv), by step."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

TRAIN_TAIL = 0.1  # the training loss of a run = its mean over the last 10% of logged training steps


def read_history(run_path: Path, column: str) -> pd.Series | None:
    """`column` by step from a run's csv/metrics.csv; None if the run has no such values."""
    csv_path = run_path / "csv" / "metrics.csv"
    try:
        history = pd.read_csv(csv_path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if "step" not in history or column not in history:
        return None
    values = history[["step", column]].dropna()
    if values.empty:
        return None
    # A resumed run can log the same step twice; the later row is the one that continued.
    return values.groupby("step")[column].last()


def train_tail_loss(run_path: Path) -> float | None:
    """Mean train/loss over the last 10% of the logged training steps (at least one).

    One logged batch is noisy and the last LR steps are tiny, so a window of the run's end says more about the
    model the final validation loss measured than the last logged batch would.
    """
    train = read_history(run_path, "train/loss")
    if train is None:
        return None
    tail = train.iloc[-max(1, math.ceil(TRAIN_TAIL * len(train))):]
    return float(tail.mean())
