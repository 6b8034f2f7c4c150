"""Launch modes (issue 9), with real processes over gloo: each sweep point trains exactly once per rank into one run
dir, a failure on any rank fails its point on every rank without hanging, a multirun's exit status comes from the
run records, and 2-process DDP, 2-node torchrun and 2-process FSDP runs match a 1-process run at the same global
batch."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

STEPS_20 = ["trainer.max_steps=20", "trainer.val_check_interval=10", "optim.warmup_steps=4"]


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def train_rows(run_dir: Path) -> list[int]:
    """The steps of the csv history's train/loss rows: one per optimizer step if the point trained once."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single_dir(compose_tiny, tmp_path_factory) -> Path:
    """The 1-process reference at the global batch of 2 ranks x 4: batch 8, 20 steps."""
    from ffnlab.training.run import run

    run_dir = tmp_path_factory.mktemp("single") / "run"
    run(compose_tiny(run_dir, "data.batch_size=8", *STEPS_20))
    return run_dir


@pytest.fixture(scope="module")
def single_20(single_dir) -> float:
    return record(single_dir)["val_loss"]


def decay_group_sizes(checkpoint: Path) -> list[tuple[float, int]]:
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return [(group["weight_decay"], len(group["params"])) for group in state["optimizer_states"][0]["param_groups"]]


def torchrun(*args: str, nproc: int, nnodes: int = 1, node_rank: int = 0, port: int, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--node-rank", str(node_rank),
               "--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1", "--master-port", str(port)]
    return subprocess.Popen([*command, str(REPO / "train.py"), *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_multirun_on_two_processes_runs_each_point_once_and_lists_failures(train_cli, tmp_path):
    """The issue's bar: `trainer=ddp_cpu seed=0,1 optim.lr=3e-3,-1` writes 4 records (2 finished, 2 failed), exits
    non-zero with the failed points named, does not hang, and no point trained twice (no doubled csv rows). The two
    seeds pool in one group of the report (issue 22.2: Lightning lowered the thread count for the first point only)."""
    from ffnlab.report import write_report

    sweep_dir = tmp_path / "sweep"
    started = time.monotonic()
    done = train_cli("-m", "trainer=ddp_cpu", "seed=0,1", "optim.lr=3e-3,-1", f"hydra.sweep.dir={sweep_dir}",
                     timeout=400)
    assert done.returncode != 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert time.monotonic() - started < 300
    runs = {d.name.removesuffix(",trainer=ddp_cpu"): d for d in sweep_dir.iterdir() if (d / "metrics.json").is_file()}
    finished_points = ["optim.lr=0.003,seed=0", "optim.lr=0.003,seed=1"]
    assert sorted(runs) == ["optim.lr=-1,seed=0", "optim.lr=-1,seed=1", *finished_points], sorted(runs)
    for seed in (0, 1):
        failed = record(runs[f"optim.lr=-1,seed={seed}"])
        assert failed["status"] == "failed" and "optim.lr=-1" in failed["error"]
    for name in finished_points:
        finished = record(runs[name])
        assert finished["status"] == "finished" and finished["setting"]["trainer.devices"] == 2
        assert train_rows(runs[name]) == list(range(6))
        assert finished["tokens_seen"] == 6 * 2 * 4 * 32
    output = done.stdout + done.stderr
    assert "2 of 4 point(s) failed" in output and "optim.lr=-1,seed=0,trainer=ddp_cpu: " in output
    assert "Traceback" not in output
    report = write_report(sweep_dir, tmp_path / "report")
    assert [len(g["rows"][0]["seeds"]) for g in report["groups"]] == [2], report["group_differences"]


def test_a_rank_that_fails_mid_training_fails_its_point_on_every_rank_and_the_next_point_runs(train_cli, tmp_path):
    """Rank 1 raises at step 3 of the 6-step point (the test hook); the 2-step point never reaches step 3. Rank 0
    must not wait for the collective timeout (30 min): the point fails on both ranks within seconds, its record
    names rank 1's error, and the next point trains on fresh processes."""
    sweep_dir = tmp_path / "sweep"
    started = time.monotonic()
    done = train_cli("-m", "trainer=ddp_cpu", "trainer.max_steps=6,2", f"hydra.sweep.dir={sweep_dir}", timeout=400,
                     env={"FFNLAB_TEST_FAIL_RANK_AT_STEP": "1:3"})
    assert done.returncode != 0
    assert time.monotonic() - started < 200, "a surviving rank waited for the collective timeout"
    failed = record(sweep_dir / "trainer.max_steps=6,trainer=ddp_cpu")
    finished = record(sweep_dir / "trainer.max_steps=2,trainer=ddp_cpu")
    assert failed["status"] == "failed"
    assert failed["error"].startswith("rank 1: RuntimeError: test hook: rank 1 fails at step 3"), failed["error"]
    assert finished["status"] == "finished" and train_rows(sweep_dir / "trainer.max_steps=2,trainer=ddp_cpu") == [0, 1]


def test_a_single_run_whose_rank_zero_fails_stops_its_workers(train_cli, tmp_path):
    started = time.monotonic()
    done = train_cli("trainer=ddp_cpu", f"hydra.run.dir={tmp_path}/run", timeout=300,
                     env={"FFNLAB_TEST_FAIL_RANK_AT_STEP": "0:2"})
    assert done.returncode != 0
    assert time.monotonic() - started < 150
    assert record(tmp_path / "run")["error"].startswith("rank 0: RuntimeError: test hook")


def test_two_processes_match_one_at_the_same_global_batch(train_cli, tmp_path, single_20):
    from ffnlab.report.records import find_run_dirs

    done = train_cli("trainer=ddp_cpu", *STEPS_20, f"hydra.run.dir={tmp_path}/ddp/run", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert find_run_dirs(tmp_path / "ddp") == [tmp_path / "ddp" / "run"]  # the worker left no run dir of its own
    assert abs(record(tmp_path / "ddp" / "run")["val_loss"] - single_20) <= 1e-5


def test_two_nodes_under_torchrun_match_one_process(tiny_experiment_dir, cache_dir, tmp_path, single_20):
    """`torchrun --nnodes 2 --node-rank 0|1` on one machine (localhost rendezvous, gloo), one process per node."""
    port = free_port()
    env = {**os.environ, "FFNLAB_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled"}
    args = ["--config-dir", str(tiny_experiment_dir), "experiment=tiny", "trainer=multinode", "trainer.accelerator=cpu",
            "trainer.devices=1", "trainer.precision=32-true", "trainer.deterministic=true", *STEPS_20,
            f"hydra.run.dir={tmp_path}/nodes"]
    nodes = [torchrun(*args, nproc=1, nnodes=2, node_rank=rank, port=port, env=env) for rank in (0, 1)]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    two_nodes = record(tmp_path / "nodes")
    assert two_nodes["setting"]["trainer.num_nodes"] == 2 and two_nodes["setting"]["global_tokens_per_step"] == 8 * 32
    assert abs(two_nodes["val_loss"] - single_20) <= 1e-5


def test_a_multirun_under_torchrun_runs_in_lockstep_and_a_failed_point_does_not_stop_it(
    tiny_experiment_dir, cache_dir, tmp_path
):
    """Every rank runs the sweep; rank 1 fails the first point mid-training: both ranks fail it, the second point
    trains on both, rank 0's records and exit status say so."""
    env = {**os.environ, "FFNLAB_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled",
           "FFNLAB_TEST_FAIL_RANK_AT_STEP": "1:3"}
    sweep_dir = tmp_path / "sweep"
    started = time.monotonic()
    job = torchrun("-m", "--config-dir", str(tiny_experiment_dir), "experiment=tiny", "trainer=ddp_cpu",
                   "trainer.max_steps=6,2", f"hydra.sweep.dir={sweep_dir}", nproc=2, port=free_port(), env=env)
    output = job.communicate(timeout=300)[0]
    assert job.returncode != 0 and time.monotonic() - started < 200, output[-3000:]
    failed = record(sweep_dir / "trainer.max_steps=6,trainer=ddp_cpu")
    assert failed["status"] == "failed" and failed["error"].startswith("rank 1: RuntimeError: test hook"), failed
    assert record(sweep_dir / "trainer.max_steps=2,trainer=ddp_cpu")["status"] == "finished"
    assert train_rows(sweep_dir / "trainer.max_steps=2,trainer=ddp_cpu") == [0, 1]


def test_fsdp_on_two_processes_matches_one_and_its_checkpoint_samples(train_cli, tmp_path, single_dir, single_20):
    """Same loss as one process, the same tensors decay (counted per group in the gathered optimizer state), one
    last.ckpt that scripts/sample.py loads."""
    done = train_cli("trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
                     "trainer.deterministic=true", *STEPS_20, f"hydra.run.dir={tmp_path}/fsdp", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert abs(record(tmp_path / "fsdp")["val_loss"] - single_20) <= 1e-5
    checkpoint = tmp_path / "fsdp" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    assert decay_group_sizes(checkpoint) == decay_group_sizes(single_dir / "checkpoints" / "last.ckpt")
    assert record(tmp_path / "fsdp")["params_total"] == record(single_dir)["params_total"]
    sampled = subprocess.run([sys.executable, str(REPO / "scripts" / "sample.py"), str(checkpoint), "--tokens", "20",
                              "--prompt", "ROMEO:"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert sampled.stdout.startswith("ROMEO:") and len(sampled.stdout) > len("ROMEO:")


def test_a_failed_point_under_submitit_makes_the_sweep_exit_non_zero(train_cli, tmp_path):
    """The jobs run in other processes (submitit's local executor), so counting failures in the process that ran
    the sweep saw none and exited 0; the outcome now comes from the run records."""
    sweep_dir = tmp_path / "sweep"
    done = train_cli("-m", "hydra/launcher=submitit_local", "trainer.max_steps=2", "optim.lr=3e-3,-1",
                     f"hydra.sweep.dir={sweep_dir}", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "1 of 2 point(s) failed" in output and "optim.lr=-1,trainer.max_steps=2: ConfigError: optim.lr" in output
    assert record(sweep_dir / "optim.lr=0.003,trainer.max_steps=2")["status"] == "finished"
