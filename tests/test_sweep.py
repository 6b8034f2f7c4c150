"""`python train.py` as a user runs it (subprocesses from the repo root): one-line errors, a multirun
sweep and its report, re-running a sweep, a failing sweep point, and 2-process DDP on CPU.

The tiny settings come in as a study overlay (conftest.tiny_experiment_dir), so the run dirs are named
by the sweep's own overrides, as in `python train.py -m experiment=glu_variants_quick`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ffnlab.report import build_report, write_report

SWEEP_POINTS = {"ffn=relu,seed=0", "ffn=relu,seed=1", "ffn=swiglu,seed=0", "ffn=swiglu,seed=1"}


def records(sweep_dir: Path) -> dict[str, tuple[bytes, int]]:
    """metrics.json of every run dir below sweep_dir: run dir name -> (bytes, mtime_ns)."""
    return {p.parent.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sweep_dir.rglob("metrics.json")}


# ------------------------------------------------------------------------------------------- errors


def test_unknown_ffn_lists_the_variants_without_traceback(train_cli, tmp_path):
    done = train_cli("ffn=foo", f"hydra.run.dir={tmp_path}/run", tiny=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert "ffn/foo" in done.stderr and "relu" in done.stderr and "swiglu" in done.stderr


def test_config_error_is_one_line_without_traceback(train_cli, tmp_path):
    done = train_cli("model.d_model=100", "model.n_heads=8", f"hydra.run.dir={tmp_path}/run")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in output
    error_lines = [line for line in output.splitlines() if "ConfigError" in line]
    assert len(error_lines) == 1 and "d_model=100" in error_lines[0] and "n_heads=8" in error_lines[0]


# ---------------------------------------------------------------------------------- a sweep and its report


@pytest.fixture(scope="module")
def sweep(train_cli, tmp_path_factory):
    """A 2-variant x 2-seed multirun: (sweep dir, the finished process)."""
    sweep_dir = tmp_path_factory.mktemp("sweep") / "t"
    done = train_cli("-m", "ffn=relu,swiglu", "seed=0,1", f"hydra.sweep.dir={sweep_dir}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return sweep_dir, done


def test_sweep_run_dirs_are_named_by_their_overrides(sweep):
    sweep_dir, _ = sweep
    assert set(records(sweep_dir)) == SWEEP_POINTS
    for name in SWEEP_POINTS:
        metrics = json.loads((sweep_dir / name / "metrics.json").read_text())
        ffn, seed = (kv.split("=")[1] for kv in name.split(","))
        assert (metrics["status"], metrics["ffn"], metrics["seed"]) == ("finished", ffn, int(seed))
        assert (sweep_dir / name / "checkpoints" / "last.ckpt").is_file()


def test_a_sweep_ends_each_point_with_one_summary_line(sweep):
    _, done = sweep
    output = done.stdout + done.stderr
    assert output.count("finished: val_loss") == 4, output[-3000:]
    # Lightning's records are printed by Hydra's handlers only, not a second time by Lightning's ("INFO: ...").
    assert not [line for line in output.splitlines() if line.startswith("INFO: ")], output[-3000:]


def test_report_compares_two_variants_over_two_seeds(sweep):
    sweep_dir, _ = sweep
    report = build_report(sweep_dir)
    assert report["problems"] == [] and report["n_run_dirs"] == 4
    (group,) = report["groups"]
    assert {row["variant"]: row["seeds"] for row in group["rows"]} == {"relu": [0, 1], "swiglu": [0, 1]}
    assert all(row["n_seeds"] == 2 for row in group["rows"])


def test_rerunning_a_finished_sweep_runs_nothing(sweep, train_cli):
    sweep_dir, _ = sweep
    before = records(sweep_dir)
    done = train_cli("-m", "ffn=relu,swiglu", "seed=0,1", f"hydra.sweep.dir={sweep_dir}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert records(sweep_dir) == before  # byte-identical and untouched
    assert (done.stdout + done.stderr).count("skipping") == 4
    assert "Trainer.fit" not in done.stdout + done.stderr


def test_an_edited_experiment_refuses_its_finished_points_and_the_others_go_on(
    sweep, train_cli, tiny_experiment_dir, tmp_path
):
    """Editing the study's config and re-running the same `-m` command never returns the old results: the
    finished point whose config changed fails in one line, untouched; a new point of the sweep still trains."""
    sweep_dir, _ = sweep
    edited = tmp_path / "conf"
    shutil.copytree(tiny_experiment_dir, edited)
    overlay = edited / "experiment" / "tiny.yaml"
    overlay.write_text(overlay.read_text().replace("warmup_steps: 2", "warmup_steps: 1"))
    before = records(sweep_dir)["ffn=relu,seed=0"]
    done = train_cli("-m", "ffn=relu,gelu", "seed=0", f"hydra.sweep.dir={sweep_dir}", config_dir=edited)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output
    refusal = [line for line in output.splitlines() if "RunIdentityError" in line]
    assert refusal and "optim.warmup_steps: 2 -> 1" in refusal[0] and "force=true" in refusal[0]
    assert records(sweep_dir)["ffn=relu,seed=0"] == before
    assert json.loads((sweep_dir / "ffn=gelu,seed=0" / "metrics.json").read_text())["status"] == "finished"


def test_a_sweep_over_a_variant_option_gives_one_row_per_label(train_cli, tmp_path):
    sweep_dir = tmp_path / "gelu"
    done = train_cli("-m", "ffn=gelu", "ffn.gelu_approximate=none,tanh", f"hydra.sweep.dir={sweep_dir}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = write_report(sweep_dir)
    assert report["problems"] == []
    (group,) = report["groups"]
    assert sorted(row["variant"] for row in group["rows"]) == ["gelu", "gelu[gelu_approximate=tanh]"]
    assert "| gelu[gelu_approximate=tanh] |" in (sweep_dir / "report" / "comparison.md").read_text()


def test_runs_land_under_one_root_wherever_train_py_starts(train_cli, tmp_path):
    """From another working directory, a run lands in $FFNLAB_OUTPUT_DIR (default: the repo's outputs/), where a
    re-run of the sweep finds it. A bad ffn name fails fast but still leaves its record there."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = train_cli("ffn.name=foo", cwd=elsewhere, env={"FFNLAB_OUTPUT_DIR": str(tmp_path / "out")})
    assert done.returncode != 0
    assert (tmp_path / "out" / "tiny" / "ffn.name=foo" / "metrics.json").is_file()
    assert not any(elsewhere.iterdir())


@pytest.mark.slow
def test_failing_point_does_not_stop_the_sweep(train_cli, tmp_path):
    """d_model=30 with 2 heads gives head size 15, odd: RoPE refuses it (ConfigError)."""
    sweep_dir = tmp_path / "mixed"
    done = train_cli("-m", "model.d_model=32,30", f"hydra.sweep.dir={sweep_dir}")
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    metrics = {name: json.loads(record[0]) for name, record in records(sweep_dir).items()}
    assert metrics["model.d_model=32"]["status"] == "finished"
    assert metrics["model.d_model=30"]["status"] == "failed"
    report = build_report(sweep_dir)
    assert [(p["run_dir"], p["kind"]) for p in report["problems"]] == [("model.d_model=30", "failed")]
    assert "head size" in report["problems"][0]["reason"]
    assert [row["variant"] for group in report["groups"] for row in group["rows"]] == ["swiglu"]


def test_a_diverging_point_is_recorded_as_diverged_and_the_sweep_goes_on(train_cli, tmp_path):
    """lr 1e30 blows the weights up after one step: the non-finite loss is caught at the logging cadence (every step
    here), the record says diverged with the first bad step and the last finite loss, the run stops there, the other
    point finishes, the sweep exits non-zero, and the report counts the point as the worst at its LR."""
    sweep_dir = tmp_path / "sweep"
    done = train_cli("-m", "optim.lr=1e30,3e-3", f"hydra.sweep.dir={sweep_dir}")
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output[-3000:]
    diverged = json.loads((sweep_dir / "optim.lr=1e+30" / "metrics.json").read_text())
    assert diverged["status"] == "diverged" and 1 <= diverged["diverged_step"] <= 3, diverged
    assert diverged["last_finite_loss"] > 0 and diverged["val_loss"] is None
    assert diverged["steps"] < 6 and not (sweep_dir / "optim.lr=1e+30" / "checkpoints" / "last.ckpt").exists()
    assert json.loads((sweep_dir / "optim.lr=0.003" / "metrics.json").read_text())["status"] == "finished"
    assert "1 of 2 point(s) failed" in output
    report = build_report(sweep_dir)
    assert [(p["run_dir"], p["kind"]) for p in report["problems"]] == [("optim.lr=1e+30", "diverged")]


@pytest.mark.slow
def test_two_identical_commands_started_together_run_once(train_cli, tiny_experiment_dir, cache_dir, tmp_path):
    """The second exits at once naming the holder (pid, host); the first's history has each row once. The first
    pauses 6 s in each checkpoint save (a test hook) so that it is surely still running."""
    import csv
    import os
    import subprocess
    import sys
    import time

    from conftest import REPO

    run_dir = tmp_path / "run"
    env = {**os.environ, "FFNLAB_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled"}
    args = [sys.executable, str(REPO / "train.py"), "--config-dir", str(tiny_experiment_dir), "experiment=tiny",
            f"hydra.run.dir={run_dir}"]
    first = subprocess.Popen(args, cwd=REPO, env={**env, "FFNLAB_TEST_PAUSE_BEFORE_RENAME": "6"},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    first_output = first.communicate(timeout=300)[0]
    assert first.returncode == 0, first_output[-3000:]
    output = second.stdout + second.stderr
    assert second.returncode != 0 and "Traceback" not in output
    assert f"is in use by pid {first.pid} on " in output
    with open(run_dir / "csv" / "metrics.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert steps == list(range(6)) and not (run_dir / ".lock").exists()


def test_a_lock_whose_process_is_gone_is_taken_over(compose_tiny, tmp_path):
    import socket

    from ffnlab.training.run import run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dead = {"host": socket.gethostname(), "pid": 2**22 + 12345, "slurm_job_id": None, "heartbeat": 1e12}
    (run_dir / ".lock").write_text(json.dumps(dead))
    run(compose_tiny(run_dir, "ffn=relu"))
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


def test_a_sweep_experiment_without_m_is_one_line_and_runs_nothing(tmp_path):
    """Issue 23.6: `python train.py experiment=<a sweep>` silently ran one point. It now says so and how to run it;
    a command that pins every swept key runs that one point on purpose."""
    import subprocess
    import sys

    from conftest import REPO
    from ffnlab.runs.sweep import unswept_study

    done = subprocess.run([sys.executable, "train.py", "experiment=glu_variants_quick",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and not (tmp_path / "run").exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a sweep over ffn, seed: run it with -m" in lines[0], done.stderr
    assert unswept_study(["experiment=glu_variants_quick", "ffn=relu", "seed=0"]) is None
    assert unswept_study(["-m", "experiment=glu_variants_quick"]) is None
