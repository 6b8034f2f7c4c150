"""Every key ffnlab reads, checked before any work, each in one line naming the key, the bad value and what
is accepted (issue 14). The ffn, model and optim groups are typed schemas (ffnlab.config.schemas) and check themselves, here,
before the corpus is touched (issue 23.9: the model's checks waited for the tokenized corpus); the data group and the
trainer keys below are checked here. A key that nothing reads (`+model.d_modle=8`, `+logger.wandb.projct=x`: issue
23.7, 23.11) is named with the accepted ones, for the typed groups and for every group built from a `_target_` (data,
trainer, each logger), whose accepted keys are its target's arguments; the trainer's values beyond those below stay
open (strategy objects and Lightning's own arguments go there).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from ffnlab.config.errors import ConfigError


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
    """Raise ConfigError for the first key that nothing reads or whose value ffnlab cannot use (keys a config lacks
    are not checked); the typed groups' own checks (their dataclasses' __post_init__) run here too, before any work."""
    from ffnlab.config.schemas import to_dataclass
    from ffnlab.model.ffn import FFNConfig
    from ffnlab.model.decoder import ModelConfig
    from ffnlab.training.optim import OptimConfig

    to_dataclass(FFNConfig, cfg.ffn)
    to_dataclass(OptimConfig, cfg.optim)
    to_dataclass(ModelConfig, cfg.model)  # vocab_size null: the tokenizer's, known only once the corpus is read
    for group in ("data", "trainer"):
        if isinstance(cfg.get(group), DictConfig):
            check_target_keys(group, cfg[group])
    check_loggers(cfg.get("logger"))
    check_finetune(cfg)
    for key, (check, accepted) in CHECKS.items():
        value = OmegaConf.select(cfg, key, default="<absent>")
        if isinstance(value, str) and value == "<absent>":
            continue
        if isinstance(value, DictConfig) or not check(OmegaConf.to_object(value) if OmegaConf.is_config(value)
                                                      else value):
            raise ConfigError(f"{key}={value!r} is not accepted; give {accepted}")


HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")  # read by hydra.utils.instantiate


def target_keys(target: str) -> list[str] | None:
    """The keys a `_target_` takes: its arguments (the wandb logger's go on to wandb.init); None when it takes any."""
    if target == "ffnlab.training.loggers.wandb_logger":
        from ffnlab.training.loggers import wandb_logger_keys

        return wandb_logger_keys()
    from hydra.utils import get_object

    try:
        parameters = inspect.signature(get_object(target)).parameters.values()
    except Exception:  # noqa: BLE001 - a target that cannot be found or read: instantiate says why, as before
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_target_keys(group: str, node: DictConfig) -> None:
    from ffnlab.config.schemas import check_keys

    target = node.get("_target_")
    accepted = target_keys(target) if isinstance(target, str) else None
    if accepted is not None:
        check_keys(group, [key for key in node.keys() if key not in HYDRA_KEYS], accepted)


FINETUNE_KEYS = ("init_from",)


def check_finetune(cfg: DictConfig) -> None:
    """A fine-tune (the `finetune` block) reads a text-to-text mixture and starts from a finished run; a mixture is
    read by fine-tunes only."""
    from ffnlab.config.schemas import check_keys

    stage, mixture = cfg.get("finetune"), cfg.get("data") is not None and "tasks" in cfg.data
    if stage is None:
        if mixture:
            raise ConfigError("this data config is a fine-tuning mixture (data.tasks): it needs a run to start from; "
                              "use experiment=finetune_quick or experiment=glue_finetune with finetune.init_from=RUN_DIR")
        return
    if not isinstance(stage, DictConfig):
        raise ConfigError(f"finetune={stage!r} is not accepted; give null (pre-training) or finetune.init_from=RUN_DIR")
    check_keys("finetune", stage.keys(), FINETUNE_KEYS)
    if not mixture:
        raise ConfigError("a fine-tune reads a text-to-text mixture (data.tasks), not a text corpus; use "
                          "data=shakespeare_speaker or data=glue_mixture (experiment=finetune_quick / glue_finetune)")


def check_loggers(loggers) -> None:
    """Each entry of the logger group is a chosen logger (`logger=wandb`) taking only its own keys: `+logger.wandb.x`
    without `logger=wandb` makes an entry that is no logger at all."""
    from ffnlab.config.schemas import CONF_DIR

    if loggers is None:
        return
    choices = ", ".join(sorted(path.stem for path in (CONF_DIR / "logger").glob("*.yaml")))
    if not isinstance(loggers, DictConfig):
        raise ConfigError(f"logger={loggers!r} is not accepted; give null (the CSV history only) or one of {choices}")
    for name, node in loggers.items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"logger.{name} is not a logger (it has no _target_); choose a logger with logger=<one "
                              f"of {choices}> before setting its keys (logger=wandb +logger.wandb.notes=...)")
        check_target_keys(f"logger.{name}", node)
