"""ffnlab.model.loss: the whole loss is today's formula bit for bit; chunks give the same loss and gradients to float
rounding and never hold more than one chunk's logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import ModelConfig, Transformer
from ffnlab.data.windows import IGNORE_INDEX


def _model_and_batch():
    model = Transformer(ModelConfig(d_model=32, n_layers=1, n_heads=2, seq_len=16, vocab_size=97),
                        FFNConfig(name="swiglu"), seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 97, (3, 16), generator=gen)
    y = torch.randint(0, 97, (3, 16), generator=gen)
    y[0, :5] = IGNORE_INDEX
    return model, x, y


def test_the_unchunked_loss_is_the_logits_formula_bit_for_bit():
    model, x, y = _model_and_batch()
    expected = F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE_INDEX,
                               reduction="sum")
    total, count = model(x, y)
    assert torch.equal(total, expected) and count.item() == 3 * 16 - 5


def test_chunks_give_the_same_loss_and_gradients():
    model, x, y = _model_and_batch()
    whole, _ = model(x, y)
    whole.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    chunked, count = model(x, y, loss_chunk_tokens=7)  # 48 tokens: 7 chunks, the last one short
    chunked.backward()
    torch.testing.assert_close(chunked, whole)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], msg=name)
    with torch.no_grad():
        torch.testing.assert_close(model(x, y, loss_chunk_tokens=7)[0], whole.detach())


def test_a_chunked_loss_holds_one_chunks_logits(monkeypatch):
    """The largest logits tensor the head makes is one chunk's, in the forward pass and the recomputation."""
    model, x, y = _model_and_batch()
    shapes = []
    model.head.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(output.shape)))
    total, _ = model(x, y, loss_chunk_tokens=16)
    total.backward()
    assert set(shapes) == {(16, 97)} and len(shapes) == 6  # 3 chunks forward, 3 recomputed in backward
