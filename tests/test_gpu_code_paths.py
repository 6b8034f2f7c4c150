"""The GPU code paths, exercised on CPU (slow: `make test-slow`): torch.compile (per block, under DDP and FSDP, and
resumed) and bf16 autocast.

This CPU has no bf16 units (a bf16 matmul runs ~100x slower than fp32), so these runs are tiny; they
check that the paths work end to end, not that they are fast.
"""

import json
import math
import signal

import pytest
import torch

from ffnlab.training.checkpoint import TEST_SIGNAL_AT_STEP
from ffnlab.generate import load_checkpoint
from ffnlab.training.run import run

pytestmark = pytest.mark.slow


def test_compiled_run_finishes_and_its_checkpoint_loads_uncompiled(compose_tiny, tmp_path):
    """With fused AdamW too: the fast setting for long CPU runs at larger shapes (docs/throughput.md)."""
    out = tmp_path / "compiled"
    run(compose_tiny(out, "torch_compile=true", "optim.fused=true", "trainer.max_steps=4",
                     "trainer.val_check_interval=2"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and math.isfinite(metrics["val_loss"])
    model, tokenizer = load_checkpoint(out / "checkpoints" / "last.ckpt")  # compile's `_orig_mod.` keys stripped
    logits = model(torch.tensor([tokenizer.encode("ROMEO:")]))
    assert torch.isfinite(logits).all()


def test_bf16_mixed_run_finishes_with_a_finite_loss(compose_tiny, tmp_path):
    """With the loss in chunks too (the GPU setting for large vocabularies): recomputation under autocast."""
    out = tmp_path / "bf16"
    run(compose_tiny(out, "trainer.precision=bf16-mixed", "trainer.max_steps=4", "trainer.val_check_interval=2",
                     "loss_chunk_tokens=48"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and math.isfinite(metrics["val_loss"])
    assert json.loads((out / "metrics.json").read_text())["setting"]["trainer.precision"] == "bf16-mixed"


FOUR_STEPS = ("trainer.max_steps=4", "trainer.val_check_interval=2")  # validated and checkpointed every 2
FSDP_ON_CPU = ("trainer=fsdp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true")


def losses(run_dir) -> tuple[float, float]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished", metrics
    return metrics["val_loss"], metrics["test_loss"]


@pytest.fixture(scope="module")
def eager_ddp_losses(train_cli, tmp_path_factory) -> tuple[float, float]:
    """(val, test) loss of the eager trainer=ddp_cpu run every compiled run below must give."""
    run_dir = tmp_path_factory.mktemp("eager") / "run"
    done = train_cli("trainer=ddp_cpu", *FOUR_STEPS, f"hydra.run.dir={run_dir}", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return losses(run_dir)


def test_blocks_compiled_before_ddp_train_and_give_the_eager_loss(train_cli, eager_ddp_losses, tmp_path):
    """torch_compile=true under trainer=ddp_cpu (2 processes, gloo): each block is compiled before DDP wraps the
    model (issue 22.8, torchtitan's order) and the run gives the eager run's losses to fp32 tolerance (the compiled
    kernels sum in another order). The overlap of DDP's gradient buckets with the compiled blocks' backward is a
    GPU effect: reviewed, not run."""
    run_dir = tmp_path / "compiled"
    done = train_cli("trainer=ddp_cpu", "torch_compile=true", *FOUR_STEPS, f"hydra.run.dir={run_dir}",
                     timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert not any("_orig_mod" in key for key in state["state_dict"])  # eager names
    assert losses(run_dir) == pytest.approx(eager_ddp_losses, abs=1e-4)


def test_blocks_compiled_under_fsdp_resume_from_their_checkpoint(train_cli, eager_ddp_losses, tmp_path):
    """torch_compile=true under trainer=fsdp (2 CPU processes): stopped by SIGTERM after step 3 and re-run, the run
    resumes from its own checkpoint (Lightning's FSDP loader looks each of the model's parameter names up in it),
    ends with the eager DDP run's losses, and scripts/sample.py's loader reads the checkpoint."""
    run_dir = tmp_path / "fsdp"
    args = (*FSDP_ON_CPU, "torch_compile=true", *FOUR_STEPS, f"hydra.run.dir={run_dir}")
    stopped = train_cli(*args, env={TEST_SIGNAL_AT_STEP: "2:SIGTERM"}, timeout=400)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stdout[-3000:] + stopped.stderr[-3000:]
    resumed = train_cli(*args, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming from step 3" in resumed.stdout + resumed.stderr
    assert losses(run_dir) == pytest.approx(eager_ddp_losses, abs=1e-4)
    model, _ = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert torch.isfinite(model(torch.zeros(1, 8, dtype=torch.long))).all()
