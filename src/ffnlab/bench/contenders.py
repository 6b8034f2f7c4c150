"""What the benchmark times: one training step of ffnlab's model or of HF Llama at the same shapes, and the kernel
floor of that shape.

A training step is the same for every model: forward, token cross-entropy, backward, gradient clipping at 1.0 (the
trainer's default), AdamW over ffnlab's decay groups as train.py makes it (ffnlab.training.optim.adamw, so `optim.fused`
applies to both), zero_grad. So the step ratio compares the models alone.

The kernel floor is the time of the step's irreducible kernels, each timed alone on its own tensors: every
matmul's forward, dX and dW products (attention's wqkv and wo, the FFN's w_in and w_out, the head), causal SDPA
forward and backward, and the cross-entropy's forward and backward. A model's step can only approach it: norms,
RoPE, activations, the residual adds, the embedding and the optimizer come on top. A kernel that runs once per
layer gets one set of operands per layer and cycles through them, as the step does: the step never finds the
previous layer's operands in cache, and a floor timed on one cache-hot set would be one no step can reach.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ffnlab.model.decoder import ModelConfig, Transformer, compile_blocks
from ffnlab.model.ffn import FFNConfig
from ffnlab.training.optim import OptimConfig, adamw, decay_groups


def training_step(
    model: torch.nn.Module, logits_of: Callable, x: torch.Tensor, y: torch.Tensor, optim: OptimConfig
) -> Callable[[], None]:
    optimizer = adamw(decay_groups(model, optim.weight_decay), optim, x.device)

    def step() -> None:
        logits = logits_of(x)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def batch(model_cfg: ModelConfig, batch_size: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model_cfg.vocab_size, (batch_size, model_cfg.seq_len + 1), generator=gen)
    return ids[:, :-1].to(device), ids[:, 1:].to(device)


def ffnlab_step(model_cfg: ModelConfig, ffn_cfg: FFNConfig, optim: OptimConfig, batch_size: int,
                device: torch.device, compiled: bool = False) -> Callable[[], None]:
    """compiled: each block under torch.compile and the optimizer eager, as train.py's `torch_compile=true` runs."""
    model = Transformer(model_cfg, ffn_cfg, seed=0).to(device)
    if compiled:
        compile_blocks(model)
    x, y = batch(model_cfg, batch_size, device)
    return training_step(model, model, x, y, optim)


def hf_step(model_cfg: ModelConfig, ffn_cfg: FFNConfig, optim: OptimConfig, batch_size: int,
            device: torch.device, compiled: bool = False) -> Callable[[], None]:
    from ffnlab.bench.hf import hf_llama

    hf = hf_llama(Transformer(model_cfg, ffn_cfg, seed=0)).to(device)
    if compiled:  # per decoder layer, as ffnlab's blocks (nn.Module.compile): compiled against compiled alike
        for layer in hf.model.layers:
            layer.compile()
    x, y = batch(model_cfg, batch_size, device)
    return training_step(hf, lambda ids: hf(input_ids=ids).logits, x, y, optim)


# ------------------------------------------------------------------------------------------- the kernel floor


@dataclass(frozen=True)
class Kernel:
    """One kernel of the step, `count` times per step."""

    name: str
    count: int
    run: Callable[[], None]


def _cycling(make_operands: Callable[[], tuple], copies: int, kernel: Callable) -> Callable[[], None]:
    """A kernel over `copies` operand sets, one set per call in turn."""
    sets = itertools.cycle([make_operands() for _ in range(copies)])

    def run() -> None:
        kernel(*next(sets))

    return run


def _matmul(rows: int, fan_in: int, fan_out: int, copies: int, device: torch.device) -> Callable[[], None]:
    """The three GEMMs of a linear layer y = x W^T: forward, dX = dY W, dW = dY^T x."""

    def operands():
        return (torch.randn(rows, fan_in, device=device), torch.randn(fan_out, fan_in, device=device),
                torch.randn(rows, fan_out, device=device))

    def kernel(x, w, dy) -> None:
        x @ w.T
        dy @ w
        dy.T @ x

    return _cycling(operands, copies, kernel)


def _attention(model_cfg: ModelConfig, batch_size: int, copies: int, device: torch.device) -> Callable[[], None]:
    shape = (batch_size, model_cfg.n_heads, model_cfg.seq_len, model_cfg.head_dim)
    kv_shape = (batch_size, model_cfg.n_kv_heads, model_cfg.seq_len, model_cfg.head_dim)
    gqa = model_cfg.n_kv_heads != model_cfg.n_heads

    def operands():
        return (torch.randn(shape, device=device, requires_grad=True),
                torch.randn(kv_shape, device=device, requires_grad=True),
                torch.randn(kv_shape, device=device, requires_grad=True), torch.randn(shape, device=device))

    def kernel(q, k, v, grad) -> None:
        F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa).backward(grad)
        q.grad = k.grad = v.grad = None

    return _cycling(operands, copies, kernel)


def _cross_entropy(rows: int, vocab: int, device: torch.device) -> Callable[[], None]:
    logits = torch.randn(rows, vocab, device=device, requires_grad=True)
    targets = torch.randint(0, vocab, (rows,), device=device)

    def run() -> None:
        F.cross_entropy(logits, targets).backward()
        logits.grad = None

    return run


def floor_kernels(model_cfg: ModelConfig, ffn_hidden: int, ffn_inputs: int, batch_size: int,
                  device: torch.device) -> list[Kernel]:
    """The kernels of one step of this shape (ffn_inputs: 1 plain, 2 gated, k maxout)."""
    d, L, V = model_cfg.d_model, model_cfg.n_layers, model_cfg.vocab_size
    rows = batch_size * model_cfg.seq_len
    qkv = (model_cfg.n_heads + 2 * model_cfg.n_kv_heads) * model_cfg.head_dim
    return [
        Kernel("matmul wqkv", L, _matmul(rows, d, qkv, L, device)),
        Kernel("matmul wo", L, _matmul(rows, d, d, L, device)),
        Kernel(f"matmul w_in ({ffn_inputs}x{ffn_hidden})", L, _matmul(rows, d, ffn_inputs * ffn_hidden, L, device)),
        Kernel(f"matmul w_out ({ffn_hidden})", L, _matmul(rows, ffn_hidden, d, L, device)),
        Kernel("matmul head", 1, _matmul(rows, d, V, 1, device)),
        Kernel("attention (SDPA fwd+bwd)", L, _attention(model_cfg, batch_size, L, device)),
        Kernel("cross-entropy (fwd+bwd)", 1, _cross_entropy(rows, V, device)),
    ]
