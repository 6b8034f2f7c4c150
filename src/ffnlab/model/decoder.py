"""LLaMA-style decoder: embedding -> N x [RMSNorm -> attention(RoPE) -> RMSNorm -> FFN] -> RMSNorm -> head.

No biases anywhere. Two initialisations (`model.init`, see `init_weights`): `gpt2` (the default) and `t5`, the
paper's. Every parameter is initialised from its own generator seeded by (seed, parameter name), so for a given
seed two FFN variants start from identical embedding, attention, norm and head weights: runs of different variants
are paired.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ffnlab.config.errors import ConfigError
from ffnlab.model.ffn import FeedForward, FFNConfig, solve_ffn_hidden
from ffnlab.model.loss import loss_sum


INITS = ("gpt2", "t5")


@dataclass
class ModelConfig:
    """The `model` config group: keys map 1:1 onto these fields (see conf/model/*.yaml)."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: = n_heads (multi-head); fewer: grouped-query attention
    seq_len: int = 128
    vocab_size: int | None = None  # None: taken from the tokenizer
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    init: str = "gpt2"  # gpt2 | t5 (init_weights)
    init_std: float = 0.02  # gpt2 only
    # Fine-tuning's regularisation (the paper's 0.1; ffnlab.downstream.finetune): dropped at this rate while training
    # are the embedding's output, each sublayer's output before its residual add, the FFN hidden, the attention
    # probabilities and the final norm's output, where Mesh-TF T5 drops them. null (pre-training): no dropout, and the
    # key stays out of identities and settings (setting_of leaves null keys out).
    dropout: float | None = None

    def __post_init__(self):
        if self.init not in INITS:
            raise ConfigError(f"model.init={self.init!r} is not accepted; use one of: {', '.join(INITS)}")
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout={self.dropout} is not accepted; give null (none) or a rate in [0, 1)")
        for key in ("d_model", "n_layers", "n_heads", "n_kv_heads", "seq_len"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"model.{key}={getattr(self, key)} must be a positive integer")
        if self.d_model % self.n_heads:
            divisors = [h for h in range(1, self.d_model + 1) if self.d_model % h == 0 and h <= 64]
            raise ConfigError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}; "
                f"pick n_heads from {divisors} or change d_model"
            )
        if self.head_dim % 2:
            raise ConfigError(f"head size d_model/n_heads={self.head_dim} must be even for RoPE")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"model.n_kv_heads={self.n_kv_heads} must divide model.n_heads={self.n_heads} (grouped-query attention)"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def rope_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of angle pos·theta^(-2i/head_dim) for each position and channel pair (Su et al. 2021)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x[..., :d/2], x[..., d/2:]) of x (B, H, T, D) by the position's angles, in fp32 whatever
    x's dtype: under bf16 autocast q and k are bf16, whose 8-bit mantissa would round cos/sin at far positions to
    another angle (an fp32 run is unchanged: the casts are no-ops)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    cos, sin = cos[: x.shape[-2]].float(), sin[: x.shape[-2]].float()
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).to(x.dtype)


def dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """F.dropout, skipped at rate 0: a pre-training run's numbers stay bit-identical to before dropout existed."""
    return F.dropout(x, rate, training) if rate and training else x


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.wqkv = nn.Linear(cfg.d_model, (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout or 0.0

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.wqkv(x).split(
            [self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim, self.n_kv_heads * self.head_dim], dim=-1
        )
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv_heads != self.n_heads,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, ffn_cfg: FFNConfig, ffn_hidden: int):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ffn = FeedForward(ffn_cfg, cfg.d_model, ffn_hidden, dropout=cfg.dropout or 0.0)
        self.dropout = cfg.dropout or 0.0

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + dropout(self.attn(self.attn_norm(x), cos, sin), self.dropout, self.training)
        return x + dropout(self.ffn(self.ffn_norm(x)), self.dropout, self.training)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, ffn_cfg: FFNConfig, seed: int = 0):
        super().__init__()
        if cfg.vocab_size is None:
            raise ConfigError("model.vocab_size is unset: set it, or build the model after the tokenizer")
        self.cfg, self.ffn_cfg = cfg, ffn_cfg
        self.ffn_hidden = solve_ffn_hidden(ffn_cfg, cfg.d_model)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, ffn_cfg, self.ffn_hidden) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        # Mesh-TF T5 scales the head input by d_model^-0.5 when the head is the (std 1) embedding, so the first
        # logits are not sqrt(d_model) too large.
        self.head_input_scale = cfg.d_model**-0.5 if cfg.init == "t5" and cfg.tie_embeddings else 1.0
        cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        if not any(p.is_meta for p in self.parameters()):
            init_weights(self, seed)

    def _apply(self, fn, recurse=True):
        """`.to(dtype)` (precision=bf16-true, `.half()`) casts buffers too: the RoPE tables are put back in fp32."""
        super()._apply(fn, recurse)
        if self.rope_cos.dtype != torch.float32 and not self.rope_cos.is_meta:
            self.rope_cos, self.rope_sin = (t.to(self.rope_cos.device) for t in rope_tables(
                self.cfg.seq_len, self.cfg.head_dim, self.cfg.rope_theta))
        return self

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                loss_chunk_tokens: int | None = None):
        """Token ids (B, T) -> logits (B, T, vocab); with targets (B, T), (summed cross-entropy, scored tokens)
        instead, the logits made in chunks of `loss_chunk_tokens` when given (ffnlab.model.loss). The loss is computed
        here, inside the model's forward, so a sharded (FSDP) head is gathered while it is used."""
        if idx.shape[1] > self.cfg.seq_len:
            raise ValueError(f"sequence of {idx.shape[1]} tokens exceeds model.seq_len={self.cfg.seq_len}")
        rate = self.cfg.dropout or 0.0
        x = dropout(self.embed(idx), rate, self.training)
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        x = dropout(self.norm(x), rate, self.training)
        x = x * self.head_input_scale if self.head_input_scale != 1.0 else x
        if targets is None:
            return self.head(x)
        return loss_sum(self.head, x, targets, loss_chunk_tokens)


def compile_blocks(model: Transformer) -> None:
    """torch.compile each block in its place (torchtitan's pattern), before DDP or FSDP wraps the model: the blocks
    share one shape, so one compilation serves them all, and DDP's gradient buckets and FSDP's per-block all-gathers
    stay outside the compiled code, free to overlap the next block's compute on a GPU (reviewed, not run); compiling
    the wrapped whole model instead leaves the communication to dynamo's graph splitting. `nn.Module.compile`, not a
    `torch.compile(block)` wrapper: parameters keep their eager names (no `_orig_mod.`), which Lightning's FSDP loader
    needs to find them in a checkpoint, and FSDP2's hooks on a block still run eagerly (torch marks them
    dynamo-disabled)."""
    for block in model.blocks:
        if block._compiled_call_impl is None:  # configure_model runs again for validate and test: compile once
            block.compile()


RESIDUAL_OUTPUTS = ("attn.wo.weight", "ffn.w_out.weight")


def _param_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63


def gpt2_std(model: Transformer, name: str, p: torch.Tensor) -> tuple[float, bool]:
    """GPT-2 / nanoGPT: every matrix at init_std, the residual outputs (attention `wo`, FFN `w_out`) at
    init_std/sqrt(2·n_layers). Plain normals."""
    std = model.cfg.init_std
    return (std / math.sqrt(2 * model.cfg.n_layers) if name.endswith(RESIDUAL_OUTPUTS) else std), False


def t5_std(model: Transformer, name: str, p: torch.Tensor) -> tuple[float, bool]:
    """Mesh-TensorFlow T5, as the paper trained it (tensorflow/mesh: transformer/attention.py
    AttentionParams.init_weights, layers.py VarianceScalingInitializer and embedding_weights,
    transformer/transformer.py VocabEmbedding):
      - the embedding: a plain normal with std 1;
      - attention: plain normals, k and v at d_model^-0.5, o at (n_heads·head_dim)^-0.5. T5's q is at
        (d_model·head_dim)^-0.5 because T5 folds the 1/sqrt(head_dim) of attention into it; our SDPA applies
        that factor itself, so q starts at d_model^-0.5 and the attention logits start at T5's scale;
      - FFN matrices and an untied head: `dense`'s default fan-in variance scaling, a normal truncated at two
        standard deviations (tf.truncated_normal_initializer, without variance correction, as torch's
        trunc_normal_) with std fan_in^-0.5;
      - with tied embeddings the head is the embedding, and the forward pass scales its input by d_model^-0.5.
    With fused matrices every part has the same fan-in (d_model), so one std serves wqkv and w_in."""
    fan_in = p.shape[1]
    if name == "embed.weight":
        return 1.0, False
    if ".attn." in name:
        return fan_in**-0.5, False
    return fan_in**-0.5, True  # ffn.w_in, ffn.w_out, head


INIT_STD = {"gpt2": gpt2_std, "t5": t5_std}


@torch.no_grad()
def init_weights(model: Transformer, seed: int) -> None:
    """Initialise each parameter from a generator keyed by (seed, name): variant-independent, so paired."""
    scheme = INIT_STD[model.cfg.init]
    for name, p in model.named_parameters():
        gen = torch.Generator().manual_seed(_param_seed(seed, name))
        if name.endswith("norm.weight"):
            p.fill_(1.0)
        elif p.ndim < 2:  # activation parameters (PReLU slope, Swish beta) keep their configured value
            continue
        else:
            std, truncated = scheme(model, name, p)
            if truncated:
                torch.nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std, generator=gen)
            else:
                p.copy_(torch.normal(0.0, std, p.shape, generator=gen))
