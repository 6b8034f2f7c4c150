"""The GPU code paths, exercised on CPU (slow: `make test-slow`): torch.compile (per block, under DDP too) and bf16
autocast.

This CPU has no bf16 units (a bf16 matmul runs ~100x slower than fp32), so these runs are tiny; they
check that the paths work end to end, not that they are fast.
"""

import json
import math

import pytest
import torch

from ffnlab.sampling import load_checkpoint
from ffnlab.train import run

pytestmark = pytest.mark.slow


def test_compiled_run_finishes_and_its_checkpoint_loads_uncompiled(compose_tiny, tmp_path):
    """With fused AdamW too: the fast setting for long CPU runs at larger shapes (README, Throughput)."""
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


def test_blocks_compiled_before_ddp_train_and_give_the_eager_loss(train_cli, tmp_path):
    """torch_compile=true under trainer=ddp_cpu (2 processes, gloo): each block is compiled before DDP wraps the
    model (issue 22.8, torchtitan's order) and the run gives the eager run's losses to fp32 tolerance (the compiled
    kernels sum in another order)."""
    losses = {}
    for compiled in ("false", "true"):
        run_dir = tmp_path / f"compile_{compiled}"
        done = train_cli("trainer=ddp_cpu", f"torch_compile={compiled}", "trainer.max_steps=4",
                         "trainer.val_check_interval=2", f"hydra.run.dir={run_dir}", timeout=400)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        losses[compiled] = (metrics["val_loss"], metrics["test_loss"])
        state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert not any("_orig_mod" in key for key in state["state_dict"])  # eager names, compiled or not
    assert losses["true"] == pytest.approx(losses["false"], abs=1e-4)
