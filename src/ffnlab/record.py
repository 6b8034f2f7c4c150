"""The run record: `config.yaml` written when a run starts, `metrics.json` when it ends.

A directory with `config.yaml` and no finished `metrics.json` is an unfinished run. Both files are
written to a temporary name and renamed, so a reader (the report, a re-run of the sweep) never sees a
half-written file, and a crash never damages a finished run's results.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ffnlab.atomic import write_atomic

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"


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
    text = OmegaConf.to_yaml(cfg, resolve=True)
    write_atomic(Path(run_dir) / CONFIG_FILE, lambda tmp: tmp.write_text(text))


def write_metrics(run_dir: Path, metrics: dict) -> None:
    text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    write_atomic(Path(run_dir) / METRICS_FILE, lambda tmp: tmp.write_text(text))


def clear_metrics(run_dir: Path) -> None:
    """Drop a stale (failed, or forced-over) record before a run starts again."""
    (Path(run_dir) / METRICS_FILE).unlink(missing_ok=True)
