"""scripts/benchmark.py's parts: HF Llama at ffnlab's shapes computes the same function, the kernel floor holds the
step's kernels, and the script runs end to end on a tiny shape."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

from ffnlab.bench import contenders, timing
from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import ModelConfig, Transformer
from conftest import REPO

# The HF contender needs the `bench` extra (`make test-bench` installs it in .venv-bench); the rest runs anywhere.
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
needs_transformers = pytest.mark.skipif(not HAS_TRANSFORMERS, reason="the bench extra (make test-bench)")


@needs_transformers
@pytest.mark.parametrize("name", ["swiglu", "geglu", "reglu"])
@pytest.mark.parametrize("tied", [True, False])
def test_hf_llama_is_the_same_function_at_the_same_size(name, tied):
    from ffnlab.bench.hf import hf_llama

    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=32, vocab_size=100,
                      tie_embeddings=tied)
    ours = Transformer(cfg, FFNConfig(name=name), seed=3)
    theirs = hf_llama(ours)
    ids = torch.randint(0, 100, (2, 32), generator=torch.Generator().manual_seed(0))
    assert sum(p.numel() for p in theirs.parameters()) == sum(p.numel() for p in ours.parameters())
    torch.testing.assert_close(theirs(input_ids=ids).logits, ours(ids), atol=2e-5, rtol=1e-5)


@needs_transformers
def test_hf_refuses_what_its_mlp_cannot_express():
    from ffnlab.bench.hf import hf_llama

    with pytest.raises(ValueError, match="cannot express ffn=relu"):
        hf_llama(Transformer(ModelConfig(d_model=32, n_layers=1, n_heads=2, vocab_size=50), FFNConfig(name="relu")))


def test_the_floor_counts_every_matmul_of_the_step_once_per_layer():
    cfg = ModelConfig(d_model=32, n_layers=3, n_heads=2, seq_len=16, vocab_size=50)
    kernels = contenders.floor_kernels(cfg, ffn_hidden=40, ffn_inputs=2, batch_size=2, device=torch.device("cpu"))
    counts = {k.name: k.count for k in kernels}
    assert counts == {"matmul wqkv": 3, "matmul wo": 3, "matmul w_in (2x40)": 3, "matmul w_out (40)": 3,
                      "matmul head": 1, "attention (SDPA fwd+bwd)": 3, "cross-entropy (fwd+bwd)": 1}
    for k in kernels:
        k.run()


def test_interleaved_rounds_alternate_and_ratios_are_paired():
    calls = []
    timed = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               rounds=3, steps=2, warmup=1, device=torch.device("cpu"))
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] + ["b", "b", "a", "a"] + ["a", "a", "b", "b"]
    assert all(len(v) == 3 for v in timed.values())
    assert timing.paired_ratio([2.0, 4.0, 9.0], [1.0, 1.0, 3.0]) == (3.0, 2.0, 4.0)


def test_the_benchmark_runs_end_to_end(tmp_path, tiny_overrides):
    out = tmp_path / "bench.json"
    overrides = [o for o in tiny_overrides if not o.startswith("trainer.max_steps")]
    result = subprocess.run(
        [sys.executable, "scripts/benchmark.py", *overrides, "trainer.max_steps=6", "--variants", "swiglu,relu",
         "--steps", "1", "--rounds", "2", "--warmup", "0", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={"WANDB_MODE": "disabled", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    swiglu, relu = figures["variants"]
    assert swiglu["ffn"] == "swiglu" and ("hf_tokens_per_s" in swiglu) == HAS_TRANSFORMERS
    assert "hf_tokens_per_s" not in relu
    assert 0 < swiglu["ffnlab_of_floor"][0] and swiglu["ffnlab_of_floor"][1] <= swiglu["ffnlab_of_floor"][2]
    if HAS_TRANSFORMERS:
        assert swiglu["ffnlab_over_hf"][1] <= swiglu["ffnlab_over_hf"][2]
    run = figures["train_py"]
    assert run["steps"] == 6 and run["run_tokens_per_s"] > 0 and 0 < run["eval_share_of_run"] < 1
    assert "ffnlab of floor" in result.stdout and "train.py, ffn=swiglu" in result.stdout


def test_a_bad_variant_is_one_line():
    result = subprocess.run([sys.executable, "scripts/benchmark.py", "--variants", "swiglu,nope"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown variant(s) nope" in result.stderr


@needs_transformers
def test_compiled_contenders_are_timed_against_compiled_hf(tmp_path, tiny_overrides):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "scripts/benchmark.py", *tiny_overrides, "--variants", "swiglu", "--compile", "--no-run",
         "--steps", "1", "--rounds", "2", "--warmup", "0", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={"WANDB_MODE": "disabled", "PATH": os.environ["PATH"]},  # inductor finds g++ on the PATH
    )
    assert result.returncode == 0, result.stderr[-2000:]
    eager, compiled = json.loads(out.read_text())["variants"]
    assert not eager["compiled"] and "ffnlab_compile_s" not in eager
    assert compiled["compiled"] and compiled["ffnlab_compile_s"] > 0
    assert compiled["ffnlab_over_hf"][1] <= compiled["ffnlab_over_hf"][2] and "ffnlab_over_eager_hf" in compiled
    assert "swiglu (compiled)" in result.stdout and "swiglu compiled: compilation" in result.stdout
