"""Exact resume, signals and preemption, with real processes (`python train.py` as a user or a scheduler runs it).

A test-only hook (ffnlab.checkpoint.TEST_SIGNAL_AT_STEP) makes a run signal itself at a chosen step of a run that did
not resume, so the interruption lands at the same place every time; another pauses a checkpoint between writing and
renaming. The tiny runs take 6 steps and checkpoint every 3 (conftest.TINY_SETTINGS)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ffnlab.checkpoint import TEST_PAUSE_BEFORE_RENAME, TEST_SIGNAL_AT_STEP

pytestmark = pytest.mark.slow


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def checkpoints(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def uninterrupted(train_cli, tmp_path_factory) -> dict:
    """relu, seed 0, never interrupted: the record every interrupted-and-resumed run must end with."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    return record(run_dir)


def test_a_killed_run_resumes_exactly(train_cli, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    killed = train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}", env={TEST_SIGNAL_AT_STEP: "4:SIGKILL"})
    assert killed.returncode == -signal.SIGKILL
    assert record(run_dir)["status"] == "running" and checkpoints(run_dir) == ["last.ckpt"]

    resumed = train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step 3" in resumed.stdout + resumed.stderr
    finished = record(run_dir)
    assert finished["status"] == "finished"
    assert abs(finished["val_loss"] - uninterrupted["val_loss"]) <= 1e-6
    assert abs(finished["test_loss"] - uninterrupted["test_loss"]) <= 1e-6
    assert finished["tokens_seen"] == uninterrupted["tokens_seen"]
    assert checkpoints(run_dir) == ["last.ckpt"]


def test_resume_false_starts_over(train_cli, tmp_path):
    run_dir = tmp_path / "run"
    train_cli("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}", env={TEST_SIGNAL_AT_STEP: "4:SIGKILL"})
    again = train_cli("ffn=relu", "seed=0", "resume=false", f"hydra.run.dir={run_dir}")
    assert again.returncode == 0 and "resuming" not in again.stdout + again.stderr
    assert record(run_dir)["status"] == "finished"


def test_sigterm_stops_the_whole_sweep_and_a_rerun_resumes(train_cli, uninterrupted, tmp_path):
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


def test_submitit_preemption_requeues_and_resumes(train_cli, uninterrupted, tmp_path):
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
