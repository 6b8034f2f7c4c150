"""A study fixes the global batch and the token budget; the hardware decides how they are met (issue 13).

  - `data.global_batch_size` (sequences per optimizer step, null: `data.batch_size` per device as before) is split
    over the world (devices x nodes): each rank takes global / world sequences, in micro-batches of at most
    `data.batch_size`, with `trainer.accumulate_grad_batches` making up the rest. A global batch the world cannot
    split evenly is one line.
  - `train_tokens` (top level, null: `trainer.max_steps` as given) sets max_steps = train_tokens / (global batch x
    seq_len), rounded down.
Both are resolved before a run's identity is taken, so the record holds what the run did.
"""

from __future__ import annotations

from omegaconf import DictConfig, open_dict

from ffnlab.config.errors import ConfigError
from ffnlab.distributed.launch import local_process_count


def world_size(trainer_cfg) -> int:
    return local_process_count(trainer_cfg) * int(trainer_cfg.get("num_nodes", 1) or 1)


def apply_budget(cfg: DictConfig) -> None:
    """Resolve `data.global_batch_size` and `train_tokens` into the per-device batch, accumulation and max_steps."""
    world = world_size(cfg.trainer)
    global_batch = cfg.data.get("global_batch_size")
    if global_batch is not None:
        global_batch, micro = int(global_batch), int(cfg.data.batch_size)
        if global_batch < 1 or global_batch % world:
            raise ConfigError(
                f"data.global_batch_size={global_batch} cannot be split evenly over {world} process(es) "
                f"(devices x num_nodes); use a multiple of {world}"
            )
        per_rank = global_batch // world
        micro = min(micro, per_rank)
        if per_rank % micro:
            raise ConfigError(
                f"data.global_batch_size={global_batch} gives {per_rank} sequences per process, not a multiple of "
                f"data.batch_size={micro} (the micro-batch); use a data.batch_size that divides {per_rank}"
            )
        with open_dict(cfg):
            cfg.data.batch_size = micro
            cfg.trainer.accumulate_grad_batches = per_rank // micro
    else:
        global_batch = int(cfg.data.batch_size) * world * int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
    if cfg.get("train_tokens") is not None:
        tokens_per_step = global_batch * int(cfg.model.seq_len)
        steps = int(cfg.train_tokens) // tokens_per_step
        if steps < 1:
            raise ConfigError(f"train_tokens={cfg.train_tokens} is less than one step ({tokens_per_step:,} tokens: "
                              "global batch x seq_len)")
        with open_dict(cfg):
            cfg.trainer.max_steps = steps
