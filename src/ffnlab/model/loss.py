"""The training loss: summed next-token cross-entropy over scored tokens, optionally in chunks of tokens.

Whole, the head's logits (tokens x vocab) exist twice in fp32 under bf16 autocast: the cast for the loss and
log-softmax's saved output (plus the bf16 logits). At the paper's vocabulary (32k) and a GPU batch of 64k tokens
that is 2 x 8 GiB. With `loss_chunk_tokens`, each chunk's logits are made, scored and dropped, and recomputed from
the chunk's hidden states in the backward pass (activation checkpointing), so at most one chunk's logits exist:
one more head matmul forward for a memory bound that no longer grows with the vocabulary.
Chunks sum the same losses in another order: equal to the whole loss to float rounding, not bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ffnlab.data.windows import IGNORE_INDEX


def _scored(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")


def loss_sum(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
             chunk_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, number of scored tokens) of hidden (B, T, d) -> head -> targets (B, T)."""
    hidden, targets = hidden.flatten(0, 1), targets.flatten()
    count = (targets != IGNORE_INDEX).sum()
    if not chunk_tokens or hidden.shape[0] <= chunk_tokens:
        return _scored(head, hidden, targets), count
    total = hidden.new_zeros((), dtype=torch.float32)
    for h, y in zip(hidden.split(chunk_tokens), targets.split(chunk_tokens)):
        if torch.is_grad_enabled():
            total = total + checkpoint(_scored, head, h, y, use_reentrant=False)
        else:
            total = total + _scored(head, h, y)
    return total, count
