"""What a run logged along the way: one column of its Lightning CSVLogger file (csv/metrics.csv), by step, and its
validation scores apart by what they scored."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ffnlab.runs.record import read_config, read_metrics
from ffnlab.report.records import dig

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


def val_scores(run_path: Path) -> dict[int | None, pd.Series] | None:
    """A run's validation losses by optimizer steps done, apart by what they scored: {fit_val_windows: fit's
    validations on the first that many windows of the split, None: validations of the whole split}.

    With `data.fit_val_windows`, fit scores a fixed subset and the final validation, after fit at step `steps`,
    the whole split (ffnlab.training.run.fit): joined in one curve they made a step at its end that no training did.
    Fit's rows say one step less than the steps done (ffnlab.training.history), so they are moved to the step they scored:
    the last subset score and the whole-split one then stand at the same step, their gap the subset's own bias.
    """
    values = read_history(run_path, "val/loss")
    if values is None:
        return None
    windows = dig(read_config(run_path) or {}, "data.fit_val_windows")
    steps = (read_metrics(run_path) or {}).get("steps")
    after_fit = values.index >= steps if isinstance(steps, int) else values.index < 0
    during = values[~after_fit].set_axis(values.index[~after_fit] + 1)
    scores = {windows: during, None: values[after_fit]} if windows else {None: pd.concat([during, values[after_fit]])}
    return {k: v for k, v in scores.items() if not v.empty}


def val_curves(rows: list[dict], sweep_dir: Path) -> list[dict]:
    """Per variant and kind of score (fit_val_windows, or None for the whole split): the mean, min and max over
    seeds at the steps every seed of that kind logged, so a point never mixes seeds, or a subset with the whole."""
    curves = []
    for row in rows:
        runs = [s for s in (val_scores(sweep_dir / d) for d in row["run_dirs"]) if s is not None]
        for windows in sorted({w for s in runs for w in s}, key=lambda w: (w is None, w or 0)):
            table = pd.concat([s[windows] for s in runs if windows in s], axis=1).dropna()
            if not table.empty:
                curves.append({"variant": row["variant"], "windows": windows, "n": table.shape[1],
                               "steps": table.index.tolist(), "mean": table.mean(axis=1).tolist(),
                               "low": table.min(axis=1).tolist(), "high": table.max(axis=1).tolist()})
    return curves


def fit_windows(rows: list[dict], sweep_dir: Path) -> list[int]:
    """The subsets (`data.fit_val_windows`) fit's validations scored in these rows' runs; [] when all whole splits."""
    found = {dig(read_config(sweep_dir / d) or {}, "data.fit_val_windows") for row in rows for d in row["run_dirs"]}
    return sorted(w for w in found if w)
