"""The committed run records stay reusable by today's code: a re-run of a study's sweep skips them (the brief:
sweeps skip finished points). A key added to the config since must leave them matching, or bump RESULTS_FORMAT."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import REPO
from ffnlab.config.compose import compose_config
from ffnlab.config.schemas import schema_defaults
from ffnlab.data.module import data_identity
from ffnlab.model.decoder import ModelConfig
from ffnlab.runs.record import (
    comparison_setting,
    identity_differences,
    read_config,
    read_metrics,
    run_identity,
    upgrade_setting,
)

RESULTS = REPO / "docs" / "results"
# The study each committed records directory was swept by (the quick study's records were made before it pinned
# its launcher settings; ffnlab.runs.record.RECORDED_BEFORE and the null rule keep them matching).
POINTS = [(study, run) for study in ("init_compare", "lr_sweep", "compute_ladder")
          for run in sorted((RESULTS / study / "runs").iterdir())[:2]]


@pytest.mark.parametrize("study, run_dir", POINTS, ids=[f"{s}/{r.name}" for s, r in POINTS])
def test_a_committed_record_is_the_run_its_study_would_make_today(study, run_dir: Path):
    record = read_metrics(run_dir)
    experiment = "compute_ladder_lr" if study == "compute_ladder" and "optim.lr" in run_dir.name else study
    threads = record["setting"]["cpu_threads"]  # this machine's default need not be the record's
    overrides = [f"experiment={experiment}", *run_dir.name.split(","), f"cpu_threads={threads}",
                 "paths.output_dir=unused"]  # bookkeeping
    cfg = compose_config(overrides)
    identity = run_identity(cfg, data_identity(cfg.data))
    assert identity_differences(record, identity, read_config(run_dir), cfg, schema_defaults()) == []


@pytest.mark.parametrize("study, run_dir", POINTS, ids=[f"{s}/{r.name}" for s, r in POINTS])
def test_a_run_made_today_pools_with_the_committed_records(study, run_dir: Path):
    """The report pools runs by their exact setting: the committed records (setting format 1, upgraded on reading)
    must give the setting a run of the same point made today records, or a study continued today would split."""
    record = read_metrics(run_dir)
    upgraded = upgrade_setting(record, read_config(run_dir))
    experiment = "compute_ladder_lr" if study == "compute_ladder" and "optim.lr" in run_dir.name else study
    cfg = compose_config([f"experiment={experiment}", *run_dir.name.split(","),
                          f"cpu_threads={record['setting']['cpu_threads']}", "paths.output_dir=unused"])
    # vocab: the tokenizer's; a field at null (dropout, added later) is left out of settings
    model = {f.name: upgraded.get(f"model.{f.name}") for f in dataclasses.fields(ModelConfig)}
    launch = {"devices": 1, "num_nodes": 1, "accumulate_grad_batches": 1}  # what trainer=cpu resolves to
    assert comparison_setting(cfg, model, record["setting"]["data_hash"], launch) == upgraded
    assert {"trainer.deterministic", "data.tokenizer", "optim.schedule"} <= upgraded.keys()  # derived, not listed


FINETUNED = sorted((RESULTS / "glu_variants_finetune" / "runs").iterdir())[:2]


@pytest.mark.parametrize("run_dir", FINETUNED, ids=[r.name for r in FINETUNED])
def test_a_committed_finetune_is_the_run_finetune_quick_would_make_today(run_dir: Path):
    """A fine-tune's identity holds the identity of the run it started from, not its path: the committed pre-training
    records of glu_variants_downstream stand in for the checkpoints' run dirs."""
    from ffnlab.runs.start import input_identity

    record = read_metrics(run_dir)
    init_from = RESULTS / "glu_variants_downstream" / "runs" / run_dir.name
    cfg = compose_config(["experiment=finetune_quick", *run_dir.name.split(","), f"finetune.init_from='{init_from}'",
                          "paths.output_dir=unused"])  # quoted: a run dir's name holds = and ,
    identity = run_identity(cfg, input_identity(cfg))
    assert identity_differences(record, identity, read_config(run_dir), cfg, schema_defaults()) == []


def test_the_committed_finetune_report_regenerates(tmp_path):
    import subprocess
    import sys

    import shutil

    study = RESULTS / "glu_variants_finetune"
    shutil.copytree(study / "runs", tmp_path / "runs")  # laid out as docs/results/<study>: the header names `runs`
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "compare.py"), str(tmp_path / "runs"), "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("comparison.md", "comparison.csv", "report.json"):
        assert (tmp_path / name).read_bytes() == (study / name).read_bytes(), name
