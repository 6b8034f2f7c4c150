"""The report's downstream half (issue 24.4): lm-evaluation-harness scores of each run (`<run dir>/eval/**/results_*.json`,
written by scripts/evaluate.py), per variant over seeds, and each variant against the baseline seed by seed (one
Holm family per task and metric, as for the loss: ffnlab.report.stats.comparisons). Scores are higher-is-better, so
Δ = variant − baseline, and a positive Δ is a gain.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ffnlab.report.stats.comparisons import judged, paired_by_seed
from ffnlab.report.records import Group, Run
from ffnlab.report.stats.paired import sample_std
from ffnlab.report.variants import BASELINE

EVAL_DIR = "eval"

Scores = dict[str, dict[str, float]]  # task -> metric -> score
Column = tuple[str, str, Callable[[dict], str]]  # an extra table column: title, alignment (---: or ---), cell text
PAIRED_NOTE = (f"Δ vs {BASELINE} = variant − {BASELINE} paired by seed (higher is better), 95% interval, Holm-adjusted "
               "p over the variants of each table (alpha 0.05).")


def scores_of(run_path: Path) -> Scores:
    """task -> metric -> score from the newest lm-eval results file per task under the run's eval/ (lm-eval's
    `<metric>,<filter>` entries; stderrs, aliases and counts such as sample_len left out)."""
    found: dict[str, tuple[str, dict]] = {}
    for path in sorted((Path(run_path) / EVAL_DIR).rglob("results_*.json")):
        try:
            results = json.loads(path.read_text()).get("results", {})
        except (OSError, ValueError):
            continue
        for task, metrics in results.items():
            if task not in found or path.name > found[task][0]:  # results_<ISO time>.json: the name orders them
                found[task] = (path.name, metrics)
    return {task: {key.split(",")[0]: float(value) for key, value in metrics.items()  # "<metric>,<filter>" keys only
                   if "," in key and isinstance(value, (int, float)) and "stderr" not in key}
            for task, (_, metrics) in sorted(found.items())}


def analyse_downstream(group: Group, order: list[str]) -> list[dict]:
    """Per (task, metric): a row per variant (mean and std over seeds) and its paired test against the baseline.
    [] when no run of the group has eval results."""
    return score_sections(group, order, lambda run: scores_of(run.path))


def score_sections(group: Group, order: list[str], scores_of_run: Callable[[Run], Scores]) -> list[dict]:
    """Per (task, metric) any run has: a row per variant that has it (its n seeds, mean, std) and its paired test
    against the baseline, one Holm family per (task, metric). Shared by lm-eval and fine-tuning scores."""
    scores = {id(run): scores_of_run(run) for run in group.runs if not run.diverged}
    keys = sorted({(task, metric) for s in scores.values() for task, metrics in s.items() for metric in metrics})
    sections = []
    for task, metric in keys:
        by_variant: dict[str, dict[int, float]] = {}
        for run in group.runs:
            value = scores.get(id(run), {}).get(task, {}).get(metric)
            if value is not None:
                by_variant.setdefault(run.variant, {})[run.seed] = value
        variants = [v for v in order if v in by_variant] + sorted(set(by_variant) - set(order))
        tests = []
        if BASELINE in by_variant:
            tests = judged([{"variant": v, **paired_by_seed(by_variant[v], by_variant[BASELINE])}
                            for v in variants if v != BASELINE], "holm", [None] * (len(variants) - 1))
        rows = [_row(v, by_variant[v], next((t for t in tests if t["variant"] == v), None)) for v in variants]
        sections.append({"task": task, "metric": metric, "rows": rows})
    return sections


def _row(variant: str, seeds: dict[int, float], test: dict | None) -> dict:
    values = [seeds[s] for s in sorted(seeds)]
    row = {"variant": variant, "n_seeds": len(values), "mean": float(np.mean(values)), "std": sample_std(values)}
    if test is not None:
        row |= {"delta": test["mean"], "ci_low": test["ci_low"], "ci_high": test["ci_high"], "p": test["p"],
                "p_holm": test["p_holm"], "beyond_noise": test["beyond_noise"]}
    return row


def _number(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def downstream_markdown(sections: list[dict]) -> list[str]:
    if not sections:
        return []
    lines = ["### Downstream (lm-evaluation-harness)", "",
             "Scores of each run's checkpoint (scripts/evaluate.py, `eval/` in the run dir), mean and std over seeds; "
             + PAIRED_NOTE, ""]
    for section in sections:
        lines += score_table(section)
    return lines


def score_table(section: dict, digits: int = 4, extra: list[Column] = ()) -> list[str]:
    """One (task, metric) as a markdown table, scores shown to `digits` places, `extra` columns at the right."""
    d = digits
    lines = [f"**{section['task']}**, {section['metric']}:", "",
             f"| variant | seeds | mean | std | Δ vs {BASELINE} | 95% CI | p (Holm) | beyond noise |"
             + "".join(f" {title} |" for title, _, _ in extra),
             "|---|---:|---:|---:|---:|---|---:|---|" + "".join(f"{align}|" for _, align, _ in extra)]
    for row in section["rows"]:
        ci = ("n/a" if row.get("ci_low") is None else
              f"[{row['ci_low']:+.{d}f}, {row['ci_high']:+.{d}f}]") if "delta" in row else ""
        delta = f"{row['delta']:+.{d}f}" if row.get("delta") is not None else ("" if "delta" not in row else "n/a")
        verdict = {True: "yes", False: "no", None: "n/a"}[row.get("beyond_noise")] if "delta" in row else ""
        lines.append(f"| {row['variant']} | {row['n_seeds']} | {row['mean']:.{d}f} | {_number(row['std'], d)} | "
                     f"{delta} | {ci} | {_number(row.get('p_holm'), 3) if 'delta' in row else ''} | {verdict} |"
                     + "".join(f" {cell(row)} |" for _, _, cell in extra))
    return lines + [""]
