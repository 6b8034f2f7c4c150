"""The `optim` group: AdamW settings, which parameters decay, and the LR schedule (no Lightning here)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ffnlab.config.errors import ConfigError

# inverse_sqrt is T5's and the paper's: flat at the peak for the warmup steps, then 1/sqrt(step) (Raffel et al. 2020,
# sec. 3.1.2: lr = 1/sqrt(max(n, k)), k = 10^4). The others warm up linearly: linear_inverse_sqrt is the same decay
# after a linear ramp (the "Noam" schedule's shape, which ffnlab called inverse_sqrt before issue 22).
SCHEDULES = ("cosine", "inverse_sqrt", "linear_inverse_sqrt", "constant")


@dataclass
class OptimConfig:
    """The `optim` config group: keys map 1:1 onto these fields (see conf/optim/adamw.yaml)."""

    lr: float = 3e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = 20
    schedule: str = "cosine"  # one of SCHEDULES
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at max_steps
    fused: bool | None = None  # AdamW's fused kernel: null = on CUDA only (adamw)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule={self.schedule!r} is not accepted; use one of {', '.join(SCHEDULES)}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"optim.lr={self.lr} is not accepted; give a finite number > 0")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps={self.warmup_steps} is not accepted; give an integer >= 0")


def lr_multiplier(step: int, cfg: OptimConfig, max_steps: int) -> float:
    """The LR at optimizer step `step` (0-based) over the peak `cfg.lr`: see SCHEDULES."""
    if cfg.schedule == "inverse_sqrt":  # T5: peak · sqrt(warmup / max(step, warmup)), no ramp
        return math.sqrt(max(cfg.warmup_steps, 1) / max(step, cfg.warmup_steps, 1))
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "linear_inverse_sqrt":  # continuous (1) at the end of the ramp
        return math.sqrt(max(cfg.warmup_steps, 1) / max(step, 1))
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# Modules whose weights never decay, however they are named or wrapped (torch.compile's `_orig_mod.`, DDP's
# `module.`): decaying embeddings and norm gains pulls them toward 0, which nothing in their role asks for.
NO_DECAY_MODULES = (torch.nn.Embedding, torch.nn.RMSNorm, torch.nn.LayerNorm)


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on 2-D matmul weights only: never on norms, embeddings (nor a head tied to the embedding)
    or activation parameters. Chosen by module type and parameter identity, not by name, so the same tensors
    decay in an eager, compiled or wrapped model."""
    exempt = {id(p) for m in model.modules() if isinstance(m, NO_DECAY_MODULES) for p in m.parameters(recurse=False)}
    decay, no_decay = [], []
    for p in model.parameters():  # each tensor once: a tied head is the embedding
        if p.requires_grad:
            (decay if p.ndim >= 2 and id(p) not in exempt else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(groups: list[dict], cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over `groups` (decay_groups). `fused` null: torch's fused kernel on CUDA and its per-tensor loop
    elsewhere, the path every committed CPU result took; true: the fused kernel on a CPU too (AdamW 3x faster at the
    benchmark's reference shape, but its float results differ from the loop's in the last bits, so it is part of
    a run's identity); false: never fused."""
    fused = device.type == "cuda" if cfg.fused is None else cfg.fused
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused)
