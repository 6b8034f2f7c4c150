"""Run records of a sweep -> comparison tables, paired tests and plots (+ a wandb table).

Runs are analysed per group of identical setting; across groups, two that differ in one key are a paired
factor (ffnlab.report.studies.factors) and groups that differ only in budget are a compute ladder (ffnlab.report.studies.ladder).

Reads only what training leaves in each run dir (config.yaml, metrics.json, csv/metrics.csv) and
imports nothing from ffnlab's training code, so it runs without torch.

    from ffnlab.report import write_report
    report = write_report(Path("outputs/glu_variants_quick"))   # -> outputs/glu_variants_quick/report/
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from ffnlab.report.analysis import analyse_group
from ffnlab.report.studies.factors import analyse_factor, find_factors
from ffnlab.report.studies.histories import fit_windows
from ffnlab.report.studies.ladder import analyse_ladder, find_ladders
from ffnlab.report.render.plots import plot_group, plot_ladder
from ffnlab.report.records import group_by_setting, load_sweep, setting_differences
from ffnlab.report.render.document import render_markdown
from ffnlab.report.render.tables import write_csv

DEFAULT_OUT = "report"  # inside the sweep dir


def build_report(sweep_dir: Path, out_dir: Path | None = None) -> dict:
    """The report as plain data: what report.json holds, minus the plots.

    It names the sweep dir relative to out_dir (its own name without one, or when out_dir lies inside it) and holds
    nothing else of the machine, so the same run records regenerate the same report anywhere (issue 8).
    """
    sweep_dir = Path(sweep_dir)
    exclude = Path(out_dir).resolve() if out_dir is not None else None
    runs, problems = load_sweep(sweep_dir, exclude)
    groups = group_by_setting(runs)
    projects = sorted({r.wandb_project for r in runs if r.wandb_project})
    where = Path(os.path.relpath(sweep_dir.resolve(), exclude)) if exclude is not None else Path(sweep_dir.name)
    # A report inside its records (the default SWEEP_DIR/report) would call them `..`: it gives their own name.
    holds_report = exclude is not None and where.name in ("", "..")
    where = Path(sweep_dir.resolve().name) if holds_report else where
    analyses = [analyse_group(g) for g in groups]
    report = {
        "sweep_dir": where.as_posix(),
        "sweep_dir_holds_report": holds_report,
        "n_run_dirs": len({r.run_dir for r in runs} | {p.run_dir for p in problems}),  # a diverged run is in both
        "experiments": sorted({r.experiment for r in runs if r.experiment}),
        "wandb_project": projects[0] if projects else None,
        "group_differences": setting_differences(groups),
        "groups": analyses,
        "problems": [asdict(p) for p in problems],
    }
    # Across groups, only when a sweep has them (a one-group report stays as it was).
    spearman = {a["index"]: {"rho": a["spearman_vs_paper"], "variants": a["spearman_variants"]} for a in analyses}
    # A pre-training and a fine-tuning group are never linked: their losses are of different objectives.
    stages = [[g for g in groups if g.finetune == finetune] for finetune in (False, True)]
    pairs = [pair for same in stages for pair in find_factors(same)]
    factors = [f for f in (analyse_factor(key, a, b, spearman) for key, a, b in pairs) if f]
    if factors:
        report["factors"] = factors
    ladders = [analyse_ladder(rungs) for same in stages for rungs in find_ladders(same)]
    if ladders:
        report["ladders"] = ladders
    return report


def write_report(sweep_dir: Path, out_dir: Path | None = None, use_wandb: bool = False) -> dict:
    """Write comparison.md, comparison.csv, report.json and PNG plots to out_dir; return the report."""
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir / DEFAULT_OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(sweep_dir, out_dir)
    several = len(report["groups"]) > 1
    for g in report["groups"]:
        g["plots"] = plot_group(g, sweep_dir, out_dir, prefix=f"group{g['index']}_" if several else "")
        g["val_curve_windows"] = fit_windows(g["rows"], sweep_dir)  # what the curves' caption says they scored
    for i, ladder in enumerate(report.get("ladders", []), 1):
        ladder["plot"] = plot_ladder(ladder, out_dir / f"ladder{i if len(report['ladders']) > 1 else ''}.png")
    (out_dir / "comparison.md").write_text(render_markdown(report), encoding="utf-8", newline="\n")
    write_csv(report, out_dir / "comparison.csv")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", newline="\n")
    if use_wandb:
        from ffnlab.report.wandb_log import log_report  # wandb is imported only when asked for

        log_report(report, out_dir)
    return report
