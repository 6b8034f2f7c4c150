"""Log a written report to wandb: one run of job_type "report" in the sweep's group."""

from __future__ import annotations

from pathlib import Path

from ffnlab.report.render.tables import raw_frames

DEFAULT_PROJECT = "ffnlab"


def log_report(report: dict, out_dir: Path) -> None:
    """Tables as wandb.Table and plots as wandb.Image; WANDB_MODE (e.g. offline) is left to the environment."""
    import wandb

    experiment = "+".join(report["experiments"]) or None
    run = wandb.init(
        project=report["wandb_project"] or DEFAULT_PROJECT,
        group=experiment,
        job_type="report",
        name=f"report-{experiment}" if experiment else "report",
        dir=str(out_dir),
        config={"sweep_dir": report["sweep_dir"], "n_groups": len(report["groups"])},
    )
    try:
        logged = {}
        for g in report["groups"]:
            for table, df in raw_frames(g).items():
                logged[f"group{g['index']}/{table}"] = wandb.Table(dataframe=df)
            for kind, name in g["plots"].items():
                logged[f"group{g['index']}/{kind}"] = wandb.Image(str(out_dir / name))
        run.log(logged)
        run.summary["problems"] = len(report["problems"])
    finally:
        run.finish()
