"""The run record: `config.yaml` written when a run starts, `metrics.json` when it ends.

A directory with `config.yaml` and no finished `metrics.json` is an unfinished run. Both files are
written to a temporary name and renamed, so a reader (the report, a re-run of the sweep) never sees a
half-written file, and a crash never damages a finished run's results.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metrics(run_dir: Path) -> dict | None:
    """The run's metrics.json, or None when absent or unreadable (an unreadable one is not 'finished')."""
    try:
        return json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_finished(run_dir: Path) -> bool:
    record = read_metrics(run_dir)
    return isinstance(record, dict) and record.get("status") == "finished"


def write_config(run_dir: Path, cfg: DictConfig) -> None:
    atomic_write_text(Path(run_dir) / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))


def write_metrics(run_dir: Path, metrics: dict) -> None:
    atomic_write_text(Path(run_dir) / METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def clear_metrics(run_dir: Path) -> None:
    """Drop a stale (failed, or forced-over) record before a run starts again."""
    (Path(run_dir) / METRICS_FILE).unlink(missing_ok=True)
