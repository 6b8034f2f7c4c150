"""Find a sweep's run records, sort them into usable runs and problems, and group them by setting.

A run record is what training leaves in a run dir: config.yaml (at start), metrics.json (at the end,
written atomically) and csv/metrics.csv. Only these files are read, so a sweep done on a cluster can
be compared on a laptop, without torch.

A diverged run is both a Run (its LR counts it as the worst loss there, issue 8: dropping it would flatter
unstable LRs) and a Problem (so the report lists it with its reason).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ffnlab.runs.record import upgrade_setting
from ffnlab.report.variants import family_of_record

SKIP_DIRS = {".hydra", "wandb"}  # Hydra's own config copies and wandb's local files are not runs


@dataclass
class Run:
    run_dir: str  # relative to the sweep dir; how the report names a run
    path: Path
    variant: str  # the label: name + the options that change its function, e.g. gelu[gelu_approximate=tanh]
    seed: int
    lr: float | None
    val_loss: float
    test_loss: float | None
    setting: dict
    metrics: dict
    experiment: str | None = None
    wandb_project: str | None = None
    ffn: str | None = None  # the bare registry name (family, paper lookups); == variant when options are default
    diverged: str | None = None  # why, when the run diverged; its val_loss is then inf and test_loss None
    family: str | None = None  # gated | ungated | maxout, as its record states (ffnlab.report.variants)
    finetune: bool = False  # a fine-tuning run: its record has `downstream` (scores; ffnlab.report.studies.finetune)


@dataclass
class Problem:
    run_dir: str
    kind: str  # unfinished | failed | corrupt | diverged | duplicate
    reason: str


@dataclass
class Group:
    """Runs whose `setting` dicts are equal, all pre-training or all fine-tuning; the only runs that may be compared
    with each other."""

    index: int  # 1-based, as the report names it
    setting: dict
    runs: list[Run]
    finetune: bool = False


def find_run_dirs(sweep_dir: Path, exclude: Path | None = None) -> list[Path]:
    """Every dir below sweep_dir holding config.yaml or metrics.json (run dirs are not searched further)."""
    found = []
    for root, dirnames, filenames in os.walk(sweep_dir):
        here = Path(root)
        if "config.yaml" in filenames or "metrics.json" in filenames:
            found.append(here)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and (exclude is None or (here / d).resolve() != exclude)
        )
    return sorted(found)


def _read_yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def dig(tree: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def load_run(path: Path, run_dir: str) -> Run | Problem:
    """One run dir -> a usable Run, or a Problem saying why it cannot be used."""
    config = _read_yaml(path / "config.yaml")
    metrics_path = path / "metrics.json"
    if not metrics_path.exists():
        who = f"ffn={dig(config, 'ffn.name')}, seed={config.get('seed')}"
        return Problem(run_dir, "unfinished", f"config.yaml but no metrics.json ({who}): running, killed or preempted")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return Problem(run_dir, "corrupt", f"metrics.json cannot be parsed: {err}")
    if not isinstance(metrics, dict):
        return Problem(run_dir, "corrupt", "metrics.json is not a JSON object")
    status = metrics.get("status")
    if status == "failed":
        return Problem(run_dir, "failed", str(metrics.get("error") or "status 'failed' without an error message"))
    if status not in ("finished", "diverged"):
        return Problem(run_dir, "unfinished", f"metrics.json has status {status!r}, not 'finished'")

    ffn = metrics.get("ffn") or dig(config, "ffn.name")
    # Records before labels existed carry only the name: it was also their label.
    variant = metrics.get("variant") or ffn
    seed = metrics.get("seed", config.get("seed"))
    lr = _number(metrics["lr"] if "lr" in metrics else dig(config, "optim.lr"))
    val_loss, test_loss = _number(metrics.get("val_loss")), _number(metrics.get("test_loss"))
    setting = upgrade_setting(metrics, config)  # a record from before the derived setting: today's keys
    required = (("ffn", variant), ("seed", seed)) + ((("val_loss", val_loss),) if status == "finished" else ())
    missing = [name for name, v in required if v is None]
    if not isinstance(setting, dict):
        missing.append("setting")  # without it, runs could be pooled across settings
    if missing:
        return Problem(run_dir, "corrupt", f"{status}, but metrics.json lacks {', '.join(missing)}")
    diverged = None
    if status == "diverged":
        last = _number(metrics.get("last_finite_loss"))
        diverged = f"diverged at step {metrics.get('diverged_step')}"
        diverged += f" (last finite loss {last:.4f})" if last is not None else ""
    elif not math.isfinite(val_loss):
        diverged = f"val_loss is {val_loss}"
    if diverged:
        diverged += f" ({variant}, seed {seed}, lr {lr}): counted as the worst loss at its LR"
        val_loss, test_loss = math.inf, None
    return Run(
        run_dir=run_dir,
        path=path,
        variant=str(variant),
        seed=int(seed),
        lr=lr,
        val_loss=val_loss,
        test_loss=test_loss if test_loss is not None and math.isfinite(test_loss) else None,
        setting=setting,
        metrics=metrics,
        experiment=metrics.get("experiment") or config.get("experiment_name"),
        wandb_project=dig(config, "logger.wandb.project"),
        ffn=str(ffn),
        diverged=diverged,
        family=family_of_record(metrics, str(ffn)),
        finetune="downstream" in metrics,
    )


def setting_key(setting: dict) -> str:
    return json.dumps(setting, sort_keys=True, default=str)


def load_sweep(sweep_dir: Path, exclude: Path | None = None) -> tuple[list[Run], list[Problem]]:
    """All run dirs below sweep_dir -> (usable runs, problems); a second run of the same point is a problem.

    A diverged run is in both lists.
    """
    runs, problems, seen = [], [], {}
    for path in find_run_dirs(sweep_dir, exclude):
        loaded = load_run(path, path.relative_to(sweep_dir).as_posix() or ".")
        if isinstance(loaded, Problem):
            problems.append(loaded)
            continue
        point = (loaded.finetune, setting_key(loaded.setting), loaded.variant, loaded.lr, loaded.seed)
        if point in seen:
            # Counting one point twice would shrink the std and break seed pairing; keep the first.
            reason = f"same setting, variant, lr and seed as {seen[point]}"
            problems.append(Problem(loaded.run_dir, "duplicate", reason))
            continue
        seen[point] = loaded.run_dir
        runs.append(loaded)
        if loaded.diverged:
            problems.append(Problem(loaded.run_dir, "diverged", loaded.diverged))
    return runs, problems


def group_by_setting(runs: list[Run]) -> list[Group]:
    """Pre-training groups first, then fine-tuning ones. The stage is part of the key even where a setting is the
    same: a fine-tune's loss is on another objective and data, never pooled with a pre-training loss."""
    by_key: dict[tuple[bool, str], list[Run]] = {}
    for run in runs:
        by_key.setdefault((run.finetune, setting_key(run.setting)), []).append(run)
    return [Group(i, group_runs[0].setting, group_runs, finetune)
            for i, ((finetune, _), group_runs) in enumerate(sorted(by_key.items()), 1)]


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


ABSENT = "<absent>"

# The setting keys that make a compute ladder: how long a run trains (its warmup is a fixed fraction of it; a token
# budget sets the steps).
# Step cadences (validation, logging) are bookkeeping, kept out of the setting, so they never split a group.
BUDGET_KEYS = ("trainer.max_steps", "optim.warmup_steps", "train_tokens")


def differing_keys(a: dict, b: dict) -> list[str]:
    """Setting keys (dotted) whose values differ between two settings; a key one of them lacks differs."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    return sorted(k for k in set(flat_a) | set(flat_b) if flat_a.get(k, ABSENT) != flat_b.get(k, ABSENT))


def setting_differences(groups: list[Group]) -> dict[str, list]:
    """Setting keys (dotted) whose values are not the same in every group -> the value in each group; first `stage`
    (pre-training | fine-tuning) when groups of both stages are there."""
    flats = [_flatten(g.setting) for g in groups]
    keys = sorted(set().union(*flats)) if flats else []
    stages = ["fine-tuning" if g.finetune else "pre-training" for g in groups]
    diffs = {"stage": stages} if len(set(stages)) > 1 else {}
    for key in keys:
        values = [flat.get(key, ABSENT) for flat in flats]
        if any(v != values[0] for v in values):
            diffs[key] = values
    return diffs
