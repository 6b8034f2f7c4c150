"""Parameter counts and training FLOPs of a model config, computed without allocating weights."""

from __future__ import annotations

import torch

from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import ModelConfig, Transformer

STAT_KEYS = ("ffn_hidden", "params_ffn", "params_total", "params_non_embedding", "flops_per_token")


def model_stats(model_cfg: ModelConfig, ffn_cfg: FFNConfig) -> dict[str, int]:
    """ffn_hidden, params_ffn, params_total, params_non_embedding and flops_per_token.

    params_ffn sums the FFNs of all layers (weights plus trainable activation parameters).
    params_non_embedding = params_total minus the token embedding (and minus the LM head when untied).

    flops_per_token is the training cost (forward + backward = 3 x forward) of one token at seq_len:

        flops_per_token = 6 * (P_matmul + d_model * vocab_size) + 12 * n_layers * seq_len * d_model

    where P_matmul counts the weights of every matmul in the blocks (attention wqkv and wo, FFN w_in
    and w_out), d_model * vocab_size is the LM head, and the last term is attention's QK^T and AV
    (2 * seq_len * d_model multiply-adds per token and layer, counted over the full window as in
    PaLM's appendix B, i.e. without crediting the causal mask). Norms, activations, softmax and the
    embedding lookup are not counted. MFU = flops_per_token * tokens_per_s / peak_flops.
    """
    with torch.device("meta"):
        model = Transformer(model_cfg, ffn_cfg)
    params_total = sum(p.numel() for p in model.parameters())
    params_ffn = sum(p.numel() for b in model.blocks for p in b.ffn.parameters())
    embedding = model.embed.weight.numel() + (0 if model_cfg.tie_embeddings else model.head.weight.numel())
    matmul = sum(
        m.weight.numel() for b in model.blocks for m in b.modules() if isinstance(m, torch.nn.Linear)
    )
    d, L, T, V = model_cfg.d_model, model_cfg.n_layers, model_cfg.seq_len, model_cfg.vocab_size
    return {
        "ffn_hidden": model.ffn_hidden,
        "params_ffn": params_ffn,
        "params_total": params_total,
        "params_non_embedding": params_total - embedding,
        "flops_per_token": 6 * (matmul + d * V) + 12 * L * T * d,
    }
