"""The fine-tuning stage's parts (ffnlab.downstream.mixture and .finetune) and the model's dropout: fast, in-process.
The whole stage, pre-training run to scored record, is tests/test_finetune_stage.py."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from ffnlab.downstream import finetune
from ffnlab.downstream.mixture import Encoded, MixtureStream, mixing_rates, to_row
from ffnlab.config.errors import ConfigError
from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import ModelConfig, Transformer
from ffnlab.data.windows import IGNORE_INDEX


def tiny_model(dropout=None, ffn="swiglu", seed=0) -> Transformer:
    return Transformer(ModelConfig(d_model=32, n_layers=2, n_heads=2, seq_len=24, vocab_size=50, dropout=dropout),
                       FFNConfig(name=ffn), seed=seed)


# ------------------------------------------------------------------------------------------------ the rows


def test_a_row_scores_the_target_tokens_only():
    x, y = to_row([5, 6, 7], [8, 9, 1], seq_len=8)
    assert x.tolist() == [5, 6, 7, 8, 9, 0, 0, 0]  # the sequence less its last token, then padding
    # position 2 (the separator 7) predicts the target's first token; the prompt's own tokens are never targets
    assert y.tolist() == [IGNORE_INDEX, IGNORE_INDEX, 8, 9, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]


def test_a_row_that_fills_the_sequence():
    x, y = to_row([5, 6], [8, 1], seq_len=3)
    assert x.tolist() == [5, 6, 8] and y.tolist() == [IGNORE_INDEX, 8, 1]


def test_examples_proportional_rates_with_and_without_a_limit():
    assert mixing_rates([100, 300], None).tolist() == [0.25, 0.75]
    assert mixing_rates([100, 300, 50], 100).tolist() == pytest.approx([0.4, 0.4, 0.2])


def _stream_samples(batch_size, rank, world, start=0, batches=3):
    tasks = [Encoded([[i, 1] for i in range(2, 12)], [[i, 0] for i in range(2, 12)]),
             Encoded([[i, 1] for i in range(20, 40)], [[i, 0] for i in range(20, 40)])]
    stream = MixtureStream(tasks, mixing_rates([10, 20], None), seq_len=4, batch_size=batch_size, seed=3,
                           start_sample=start)
    stream.rank, stream.world_size = rank, world
    rows = []
    for _, (x, _) in zip(range(batches), stream):
        rows.extend(x[:, 0].tolist())
    return rows


def test_the_stream_is_a_function_of_the_sample_index():
    one = _stream_samples(batch_size=4, rank=0, world=1)  # 12 samples
    rank0, rank1 = _stream_samples(2, 0, 2), _stream_samples(2, 1, 2)
    assert [one[i] for i in range(0, 12, 2)] == rank0 and [one[i] for i in range(1, 12, 2)] == rank1
    assert _stream_samples(4, 0, 1, start=4, batches=2) == one[4:]  # an exact resume
    assert one != _stream_samples(4, 0, 1, batches=3)[::-1]
    assert set(one) & set(range(2, 12)) and set(one) & set(range(20, 40))  # both tasks drawn


def test_the_stream_depends_on_the_seed():
    tasks = [Encoded([[i, 1] for i in range(50)], [[i, 0] for i in range(50)])]
    first = [MixtureStream(tasks, np.array([1.0]), 4, 8, seed).pick(s) for seed in (0, 1) for s in range(8)]
    assert first[:8] != first[8:]


# ------------------------------------------------------------------------------------------------ decoding


def _one_at_a_time(model, prompt, max_new, end):
    ids, out = list(prompt), []
    for _ in range(max_new):
        token = int(model(torch.tensor([ids]))[0, -1].argmax())
        if token == end:
            break
        out.append(token)
        ids.append(token)
    return out


def test_batched_greedy_decoding_equals_decoding_each_prompt_alone():
    model = tiny_model().eval()
    rng = np.random.default_rng(0)
    prompts = [rng.integers(2, 50, size=n).tolist() for n in (3, 9, 1, 15, 6, 20, 22)]
    with torch.no_grad():
        alone = [_one_at_a_time(model, p[: 24 + 1 - 5], 5, end=7) for p in prompts]
    batched = finetune.greedy(model, prompts, max_new=5, end=7, batch_size=3)
    assert batched == alone
    assert any(len(a) == 5 for a in alone)  # some prompts ran to max_new


def test_decoding_stops_at_the_end_token():
    model = tiny_model().eval()
    prompt = [3, 4, 5]
    with torch.no_grad():
        first = int(model(torch.tensor([prompt]))[0, -1].argmax())
    assert finetune.greedy(model, [prompt], max_new=6, end=first) == [[]]


# ------------------------------------------------------------------------------------------------ dropout


def test_no_dropout_is_bit_identical_to_a_zero_rate_and_dropout_acts_only_in_training():
    ids = torch.randint(0, 50, (2, 24), generator=torch.Generator().manual_seed(0))
    plain, zero, dropped = tiny_model(None).train(), tiny_model(0.0).train(), tiny_model(0.1).train()
    assert torch.equal(plain(ids), zero(ids))
    torch.manual_seed(0)
    assert not torch.allclose(plain(ids), dropped(ids))
    assert torch.equal(plain.eval()(ids), dropped.eval()(ids))  # same weights: the rate changes nothing in eval


def test_dropout_reaches_the_ffn_hidden_and_the_attention_probabilities(monkeypatch):
    calls = []
    real = torch.nn.functional.dropout
    monkeypatch.setattr(torch.nn.functional, "dropout", lambda x, p, training=True, *a, **k: (
        calls.append(tuple(x.shape)), real(x, p, training))[1])
    sdpa = torch.nn.functional.scaled_dot_product_attention
    rates = []
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, dropout_p=0.0, **k: (rates.append(dropout_p), sdpa(*a, dropout_p=dropout_p, **k))[1])
    model = tiny_model(0.1).train()
    model(torch.zeros(1, 24, dtype=torch.long))
    hidden = model.ffn_hidden
    assert calls.count((1, 24, hidden)) == 2  # each layer's FFN hidden
    assert calls.count((1, 24, 32)) == 2 + 2 * 2  # embedding, final norm, and two sublayer outputs per layer
    assert rates == [0.1, 0.1]


def test_a_dropout_rate_outside_zero_to_one_is_one_line():
    with pytest.raises(ConfigError, match=r"model.dropout=1.5 .* \[0, 1\)"):
        ModelConfig(dropout=1.5)


# ------------------------------------------------------------------------------------------------ the run it starts from


def _cfg(init_from):
    from omegaconf import OmegaConf

    return OmegaConf.create({"finetune": {"init_from": str(init_from) if init_from else None}})


def test_init_from_unset_missing_or_unfinished_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="finetune.init_from is not set"):
        finetune.init_run(_cfg(None))
    with pytest.raises(ConfigError, match="holds no run record"):
        finetune.init_run(_cfg(tmp_path / "nowhere"))
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(ConfigError, match=r"is not a finished run \(status: running\)"):
        finetune.init_run(_cfg(tmp_path))
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "finished", "config_hash": "abc", "seed": 1}))
    run = finetune.init_run(_cfg(tmp_path))
    assert run.identity()["config_hash"] == "abc" and run.provenance()["seed"] == 1
    with pytest.raises(ConfigError, match="no checkpoint at"):  # finished, but its checkpoint is gone
        finetune.load(run)


def test_a_model_that_differs_from_the_pretrained_one_is_refused_dropout_aside():
    model_cfg, ffn_cfg = ModelConfig(vocab_size=50), FFNConfig(name="swiglu")
    checkpoint = {"ffnlab_model_config": dataclasses.asdict(model_cfg), "ffnlab_ffn_config": dataclasses.asdict(ffn_cfg)}
    finetune.check_same_model(checkpoint, dataclasses.replace(model_cfg, dropout=0.1), ffn_cfg)  # dropout may differ
    with pytest.raises(ConfigError, match=r"model.d_model: 128 \(pre-trained\) vs 64"):
        finetune.check_same_model(checkpoint, dataclasses.replace(model_cfg, d_model=64), ffn_cfg)
    with pytest.raises(ConfigError, match=r"ffn.name: swiglu \(pre-trained\) vs relu"):
        finetune.check_same_model(checkpoint, model_cfg, FFNConfig(name="relu"))
