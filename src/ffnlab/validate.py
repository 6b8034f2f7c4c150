"""Every untyped key ffnlab reads, checked before any work, each in one line naming the key, the bad value and what
is accepted (issue 14). The ffn, model and optim groups are typed schemas (ffnlab.config) and check themselves; the
data group and the trainer keys below are checked here, and the rest of the trainer group stays open (strategy
objects and Lightning's own arguments go there).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from ffnlab.errors import ConfigError


def _int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def positive_int(value) -> bool:
    return _int(value, 1)


def non_negative_int(value) -> bool:
    return _int(value, 0)


def optional(check: Callable) -> Callable:
    return lambda value: value is None or check(value)


def boolean(value) -> bool:
    return isinstance(value, bool)


def non_negative_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def devices(value) -> bool:
    return value in ("auto", -1) or positive_int(value) or (isinstance(value, (list, tuple)) and len(value) > 0)


# key -> (check, what is accepted)
CHECKS: dict[str, tuple[Callable, str]] = {
    "seed": (non_negative_int, "an integer >= 0"),
    "train_tokens": (optional(positive_int), "null or a positive integer"),
    "loss_chunk_tokens": (optional(positive_int), "null or a positive integer (tokens per loss chunk)"),
    "cpu_threads": (optional(positive_int), "null (torch's default) or a positive integer"),
    "cpu_keep_freed_memory": (boolean, "true or false"),
    "peak_flops": (optional(lambda v: non_negative_number(v) and v > 0), "null or a FLOP/s figure > 0"),
    "data.batch_size": (positive_int, "a positive integer"),
    "data.eval_batch_size": (optional(positive_int), "null or a positive integer"),
    "data.fit_val_windows": (optional(positive_int), "null (the whole split) or a positive number of windows"),
    "data.global_batch_size": (optional(positive_int), "null or a positive integer"),
    "data.vocab_size": (positive_int, "a positive integer"),
    "data.num_workers": (non_negative_int, "an integer >= 0"),
    "data.num_proc": (optional(positive_int), "a positive integer"),
    "data.shard_tokens": (optional(positive_int), "null or a positive integer"),
    "data.eval_documents": (optional(positive_int), "null or a positive integer"),
    "data.max_train_tokens": (optional(positive_int), "null or a positive integer"),
    "data.max_epochs": (optional(positive_int), "null or a positive integer"),
    "data.tokenizer_sample_chars": (optional(positive_int), "null or a positive integer"),
    "data.verify_cache": (optional(boolean), "true or false"),
    "trainer.max_steps": (positive_int, "a positive integer (a run's optimizer steps)"),
    "trainer.val_check_interval": (positive_int, "a positive integer (optimizer steps between validations)"),
    "trainer.log_every_n_steps": (positive_int, "a positive integer"),
    "trainer.num_nodes": (optional(positive_int), "a positive integer"),
    "trainer.devices": (devices, "a positive integer, a list of device ids, auto or -1"),
    "trainer.accumulate_grad_batches": (optional(positive_int), "a positive integer"),
    "trainer.gradient_clip_val": (optional(non_negative_number), "null or a finite number >= 0"),
    "checkpoint.every_n_steps": (optional(positive_int), "null or a positive integer"),
    "checkpoint.every_n_minutes": (optional(non_negative_number), "null or a number >= 0 (0: every step)"),
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first key whose value ffnlab cannot use (keys a config lacks are not checked);
    the typed groups' own checks (their dataclasses' __post_init__) run here too, before any work."""
    from ffnlab.config import to_dataclass
    from ffnlab.ffn import FFNConfig
    from ffnlab.optim import OptimConfig

    to_dataclass(FFNConfig, cfg.ffn)
    to_dataclass(OptimConfig, cfg.optim)
    for key, (check, accepted) in CHECKS.items():
        value = OmegaConf.select(cfg, key, default="<absent>")
        if isinstance(value, str) and value == "<absent>":
            continue
        if isinstance(value, DictConfig) or not check(OmegaConf.to_object(value) if OmegaConf.is_config(value)
                                                      else value):
            raise ConfigError(f"{key}={value!r} is not accepted; give {accepted}")
