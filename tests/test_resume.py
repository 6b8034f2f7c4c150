"""Exact resume, signals and preemption, with real processes (`python train.py` as a user or a scheduler runs it).

A test-only hook (ffnlab.training.checkpoint.TEST_SIGNAL_AT_STEP) makes a run signal itself at a chosen step of a run that did
not resume, so the interruption lands at the same place every time; another pauses a checkpoint between writing and
renaming. The tiny runs take 6 steps and checkpoint every 3 (conftest.TINY_SETTINGS)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ffnlab.training.checkpoint import TEST_PAUSE_BEFORE_RENAME, TEST_SIGNAL_AT_STEP

pytestmark = pytest.mark.slow


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def history(run_dir: Path) -> list[dict]:
    """metrics.csv's rows as {name: value} of the names each row sets, without the one wall-clock column."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        return [{k: v for k, v in row.items() if v != "" and k != "tokens_per_s"} for row in csv.DictReader(file)]


def assert_same_history(resumed: Path, whole: Path) -> None:
    """The resumed run's history equals the uninterrupted run's: the same rows (every step once, every validation
    at its step) with the same values (an exact resume on one CPU thread count)."""
    assert history(resumed) == history(whole)
    timing = record(resumed)["timing"]
    assert timing["train_s"] + timing["eval_s"] <= record(resumed)["wall_s"]


@pytest.fixture(scope="module")
def uninterrupted_dir(train_cli, tmp_path_factory) -> Path:
    """relu, seed 0, never interrupted: the run every interrupted-and-resumed run must end as."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_dir) -> dict:
    return record(uninterrupted_dir)


def test_a_killed_run_resumes_exactly(train_cli, uninterrupted, uninterrupted_dir, tmp_path):
    run_dir = tmp_path / "run"
    killed = train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}", env={TEST_SIGNAL_AT_STEP: "4:SIGKILL"})
    assert killed.returncode == -signal.SIGKILL
    assert record(run_dir)["status"] == "running" and checkpoints(run_dir) == ["last.ckpt"]
    assert "test/loss" not in history(run_dir)[-1]

    resumed = train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step 3" in resumed.stdout + resumed.stderr
    finished = record(run_dir)
    assert finished["status"] == "finished"
    assert abs(finished["val_loss"] - uninterrupted["val_loss"]) <= 1e-6
    assert abs(finished["test_loss"] - uninterrupted["test_loss"]) <= 1e-6
    assert finished["tokens_seen"] == uninterrupted["tokens_seen"]
    assert checkpoints(run_dir) == ["last.ckpt", "previous.ckpt"]  # steps 6 and 3
    assert_same_history(run_dir, uninterrupted_dir)


def test_resume_false_starts_over(train_cli, tmp_path):
    run_dir = tmp_path / "run"
    train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}", env={TEST_SIGNAL_AT_STEP: "4:SIGKILL"})
    again = train_cli("ffn=relu", "seed=0", "resume=false", f"hydra.run.dir={run_dir}")
    assert again.returncode == 0 and "resuming" not in again.stdout + again.stderr
    assert record(run_dir)["status"] == "finished"


def test_sigterm_stops_the_whole_sweep_and_a_rerun_resumes(train_cli, uninterrupted, uninterrupted_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    stopped = train_cli("-m", "ffn=relu", "seed=0,1", f"hydra.sweep.dir={sweep_dir}",
                        env={TEST_SIGNAL_AT_STEP: "4:SIGTERM"})
    assert stopped.returncode == 128 + signal.SIGTERM
    interrupted = record(sweep_dir / "ffn=relu,seed=0")
    # signalled while step 5 trained (global step 4 -> 5): saved and stopped at the end of that step
    assert (interrupted["status"], interrupted["step"], interrupted["signal"]) == ("interrupted", 5, "SIGTERM")
    assert not (sweep_dir / "ffn=relu,seed=1").exists()  # the sweep stopped with its point

    again = train_cli("-m", "ffn=relu", "seed=0,1", f"hydra.sweep.dir={sweep_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from step 5" in again.stdout + again.stderr
    assert abs(record(sweep_dir / "ffn=relu,seed=0")["val_loss"] - uninterrupted["val_loss"]) <= 1e-6
    assert record(sweep_dir / "ffn=relu,seed=1")["status"] == "finished"
    assert_same_history(sweep_dir / "ffn=relu,seed=0", uninterrupted_dir)


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one(tiny_experiment_dir, cache_dir, tmp_path):
    """The second save (at the end, step 6) pauses between writing and renaming; SIGKILL in that window."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "FFNLAB_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled", TEST_PAUSE_BEFORE_RENAME: "4"}
    repo = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "train.py", "--config-dir", str(tiny_experiment_dir), "experiment=tiny", "ffn=relu",
         f"hydra.run.dir={run_dir}"], cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not ((run_dir / "checkpoints" / "last.ckpt").exists() and list((run_dir / "checkpoints").glob(".*.tmp"))):
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before the second save"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    previous = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert previous["global_step"] == 3 and "state_dict" in previous and "optimizer_states" in previous


def test_submitit_preemption_requeues_and_resumes(train_cli, uninterrupted, uninterrupted_dir, tmp_path):
    """hydra/launcher=submitit_local: each job gets SIGUSR2 (submitit's preemption signal) in step 5, saves, exits
    144 through submitit's own handler, is requeued, resumes and ends as if never interrupted."""
    sweep_dir = tmp_path / "sweep"
    done = train_cli("-m", "hydra/launcher=submitit_local", "ffn=relu", "seed=0,1", f"hydra.sweep.dir={sweep_dir}",
                     env={TEST_SIGNAL_AT_STEP: "4:SIGUSR2"}, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    logs = "".join(p.read_text() for p in (sweep_dir / ".submitit").rglob("*_log.*"))
    assert logs.count("resuming from step 5") == 2
    assert abs(record(sweep_dir / "ffn=relu,seed=0")["val_loss"] - uninterrupted["val_loss"]) <= 1e-6
    assert record(sweep_dir / "ffn=relu,seed=1")["status"] == "finished"
    assert_same_history(sweep_dir / "ffn=relu,seed=0", uninterrupted_dir)


def test_a_resumed_run_continues_its_wandb_run(train_cli, tmp_path):
    """Offline wandb: the killed attempt and the resumed one log to one run id (offline-run-<time>-<id>)."""
    run_dir = tmp_path / "run"
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
           "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    train_cli("ffn=relu", "logger=wandb", f"hydra.run.dir={run_dir}", env={**env, TEST_SIGNAL_AT_STEP: "4:SIGKILL"})
    resumed = train_cli("ffn=relu", "logger=wandb", f"hydra.run.dir={run_dir}", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ids = {p.name.rsplit("-", 1)[1] for p in (run_dir / "wandb").glob("offline-run-*")}
    assert ids == {record(run_dir)["wandb_id"]}
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2  # two attempts, one run


def test_resume_under_gradient_accumulation_is_exact(train_cli, tmp_path):
    """Two micro-batches per step: the checkpoint falls on a step boundary and the data position counts both."""
    args = ("ffn=relu", "+trainer.accumulate_grad_batches=2")
    whole = train_cli(*args, f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-3000:]
    train_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", env={TEST_SIGNAL_AT_STEP: "4:SIGKILL"})
    resumed = train_cli(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert "resuming from step 3" in resumed.stdout + resumed.stderr
    assert abs(record(tmp_path / "run")["val_loss"] - record(tmp_path / "whole")["val_loss"]) <= 1e-6


def wandb_history(run_dir: Path) -> list[dict]:
    """The rows of every offline attempt of the run's wandb run, in order, as the CSV names them."""
    from wandb_reader import OfflineRun

    rows = []
    for attempt in sorted((run_dir / "wandb").glob("offline-run-*")):  # named by start time
        rows += OfflineRun.read(next(attempt.glob("*.wandb"))).history
    return [{("step" if k == "trainer/global_step" else k): v for k, v in row.items()
             if not k.startswith("_") and k != "tokens_per_s"} for row in rows]


def test_a_stop_at_a_validation_step_keeps_that_validation_and_wandb_logs_each_step_once(
        train_cli, uninterrupted_dir, tmp_path):
    """SIGINT while step 3 trains: the stop comes after step 3's row and the validation due after it (a resume does
    not validate at its checkpoint's step again: before issue 23.1 that row and step 3's training row were lost, and
    the CSV held only the resumed steps). The wandb run, resumed by id, gets each row once."""
    run_dir = tmp_path / "run"
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
           "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    stopped = train_cli("ffn=relu", "seed=0", "logger=wandb", f"hydra.run.dir={run_dir}",
                        env={**env, TEST_SIGNAL_AT_STEP: "2:SIGINT"})
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr[-3000:]
    assert (record(run_dir)["status"], record(run_dir)["step"]) == ("interrupted", 3)
    resumed = train_cli("ffn=relu", "seed=0", "logger=wandb", f"hydra.run.dir={run_dir}", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step 3" in resumed.stdout + resumed.stderr
    assert_same_history(run_dir, uninterrupted_dir)
    sent = wandb_history(run_dir)
    as_csv = [{k: float(v) if k not in ("step", "epoch") else int(v) for k, v in row.items()}
              for row in history(run_dir)]
    assert [{k: float(v) if k not in ("step", "epoch") else int(v) for k, v in row.items()} for row in sent] == as_csv


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one(train_cli, uninterrupted, uninterrupted_dir,
                                                                  tmp_path):
    """Checkpoints every 2 steps; killed in step 5: last.ckpt (step 4) truncated, previous.ckpt (step 2) whole. The
    re-run says so in one line, resumes from step 2 and ends as the uninterrupted run, history included. Before
    issue 23.2 there was one generation: a 25-line traceback, then a silent restart from step 0."""
    run_dir = tmp_path / "run"
    args = ("ffn=relu", "seed=0", "checkpoint.every_n_steps=2", f"hydra.run.dir={run_dir}")
    train_cli(*args, env={TEST_SIGNAL_AT_STEP: "5:SIGKILL"})
    assert checkpoints(run_dir) == ["last.ckpt", "previous.ckpt"]
    truncate(run_dir / "checkpoints" / "last.ckpt")
    resumed = train_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = [line for line in (resumed.stdout + resumed.stderr).splitlines() if "last.ckpt is unreadable" in line]
    assert len(said) == 1 and "resuming from previous.ckpt (step 2)" in said[0], resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert abs(record(run_dir)["val_loss"] - uninterrupted["val_loss"]) <= 1e-6
    assert_same_history(run_dir, uninterrupted_dir)


def test_a_run_whose_record_was_deleted_resumes_from_its_checkpoint(train_cli, uninterrupted, uninterrupted_dir,
                                                                    tmp_path):
    """Issue 23.4: the checkpoint says which run it holds, so losing metrics.json costs nothing (before: a silent
    retrain from step 0)."""
    run_dir = tmp_path / "run"
    train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}", env={TEST_SIGNAL_AT_STEP: "4:SIGKILL"})
    (run_dir / "metrics.json").unlink()
    resumed = train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert "no metrics.json" in out and "resuming from step 3" in out
    assert abs(record(run_dir)["val_loss"] - uninterrupted["val_loss"]) <= 1e-6
    assert_same_history(run_dir, uninterrupted_dir)
