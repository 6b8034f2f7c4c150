"""Property-based (issue 14): for random valid (variant, d_model, heads, kv heads, multiple_of, budget, pieces), the
built model has exactly the parameters scripts/params.py predicts (ffnlab.model.sizes.model_stats) and runs forward."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffnlab.model.ffn import VARIANTS, FFNConfig
from ffnlab.model.decoder import ModelConfig, Transformer
from ffnlab.model.sizes import model_stats


@st.composite
def configs(draw):
    n_heads = draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([2, 4, 8, 16]))  # even: RoPE rotates pairs
    n_kv_heads = draw(st.sampled_from([h for h in (1, 2, 4) if n_heads % h == 0]))
    model = ModelConfig(d_model=n_heads * head_dim, n_layers=draw(st.integers(1, 2)), n_heads=n_heads,
                        n_kv_heads=n_kv_heads, seq_len=8, vocab_size=draw(st.integers(5, 40)),
                        tie_embeddings=draw(st.booleans()))
    ffn = FFNConfig(name=draw(st.sampled_from(sorted(VARIANTS))), match=draw(st.sampled_from(["params", "none"])),
                    budget_mult=draw(st.sampled_from([1.0, 2.0, 4.0])), multiple_of=draw(st.sampled_from([1, 4, 8])),
                    pieces=draw(st.integers(2, 4)), swish_beta_trainable=draw(st.booleans()))
    return model, ffn


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_the_built_model_has_the_predicted_parameters_and_runs(cfg):
    model_cfg, ffn_cfg = cfg
    model = Transformer(model_cfg, ffn_cfg, seed=0)
    predicted = model_stats(model_cfg, ffn_cfg)
    assert sum(p.numel() for p in model.parameters()) == predicted["params_total"]
    assert model.ffn_hidden == predicted["ffn_hidden"]
    logits = model(torch.randint(0, model_cfg.vocab_size, (2, model_cfg.seq_len)))
    assert logits.shape == (2, model_cfg.seq_len, model_cfg.vocab_size) and torch.isfinite(logits).all()
