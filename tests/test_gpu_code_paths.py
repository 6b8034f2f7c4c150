"""The GPU code paths, exercised on CPU (slow: `make test-slow`): torch.compile and bf16 autocast.

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
