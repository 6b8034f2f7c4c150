"""run(cfg): seed -> data -> model -> loggers -> trainer -> fit -> final val/test -> run record."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from ffnlab.config import to_dataclass
from ffnlab.errors import ConfigError
from ffnlab.ffn import FFNConfig
from ffnlab.model import ModelConfig
from ffnlab.module import LanguageModel
from ffnlab.optim import OptimConfig
from ffnlab.record import clear_metrics, is_finished, read_metrics, write_config, write_metrics
from ffnlab.sizes import model_stats

log = logging.getLogger("ffnlab")


def build_model_config(cfg: DictConfig, vocab_size: int) -> ModelConfig:
    fields = OmegaConf.to_container(cfg.model, resolve=True)
    if fields["vocab_size"] is None:
        fields["vocab_size"] = vocab_size
    elif fields["vocab_size"] < vocab_size:
        raise ConfigError(
            f"model.vocab_size={fields['vocab_size']} is smaller than the tokenizer's {vocab_size} tokens; "
            "set model.vocab_size=null to take it from the tokenizer"
        )
    return ModelConfig(**fields)


def final_val_loss(trainer: L.Trainer, module: LanguageModel, datamodule) -> float:
    """The validation loss of the final weights; reuses fit's last validation when it ran at the last step
    (a full pass over the split costs seconds on a CPU)."""
    if trainer.global_step % trainer.val_check_interval == 0 and "val/loss" in trainer.callback_metrics:
        return trainer.callback_metrics["val/loss"].item()
    return trainer.validate(module, datamodule=datamodule, verbose=False)[0]["val/loss"]


def comparison_setting(cfg: DictConfig, model_cfg: ModelConfig, data_hash: str) -> dict:
    """Everything that defines a comparison other than variant, seed and LR: the report never pools
    runs whose settings differ (a different corpus, tokenizer, size, budget, schedule or precision)."""
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    optim.pop("lr")
    return {
        "data": cfg.data.name,
        "data_hash": data_hash,  # text + tokenizer identity
        "tokenizer": cfg.data.tokenizer,
        **dataclasses.asdict(model_cfg),
        "max_steps": cfg.trainer.max_steps,
        "batch_size": cfg.data.batch_size,
        "devices": str(cfg.trainer.devices),  # the global batch is devices x batch_size
        "precision": str(cfg.trainer.precision),
        "gradient_clip_val": cfg.trainer.gradient_clip_val,
        "ffn_match": cfg.ffn.match,
        "ffn_budget_mult": cfg.ffn.budget_mult,
        "ffn_multiple_of": cfg.ffn.multiple_of,
        **{f"optim_{key}": value for key, value in optim.items()},
    }


def instantiate_data(data_cfg: DictConfig):
    """The data module; its own ConfigError (a missing or empty file...) is raised as itself, not inside
    Hydra's InstantiationException, so train.py can report it in one line."""
    try:
        return instantiate(data_cfg)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


def run(cfg: DictConfig) -> float:
    """Train one run and write its record; returns the final validation loss (what sweepers minimise)."""
    out_dir = Path(cfg.paths.output_dir)
    if is_finished(out_dir) and not cfg.force:
        record = read_metrics(out_dir)
        log.info("%s already finished (val_loss %.4f): skipping; force=true re-runs it", out_dir, record["val_loss"])
        return record["val_loss"]

    started = time.perf_counter()
    finished = False
    try:  # whatever fails from here on, a bad setting included, leaves a failed record the report lists
        L.seed_everything(cfg.seed, workers=True)
        ffn_cfg = to_dataclass(FFNConfig, cfg.ffn)
        optim_cfg = to_dataclass(OptimConfig, cfg.optim)
        datamodule = instantiate_data(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        model_cfg = build_model_config(cfg, datamodule.vocab_size)
        stats = model_stats(model_cfg, ffn_cfg)
        log.info("ffn=%s seed=%s %s", ffn_cfg.name, cfg.seed, " ".join(f"{k}={v:,}" for k, v in stats.items()))

        clear_metrics(out_dir)
        write_config(out_dir, cfg)
        resolved_cfg = OmegaConf.to_container(cfg, resolve=True)
        module = LanguageModel(model_cfg, ffn_cfg, optim_cfg, seed=cfg.seed, max_steps=cfg.trainer.max_steps)
        module.extra_checkpoint_state = {  # a checkpoint is self-contained: scripts/sample.py needs nothing else
            "ffnlab_config": resolved_cfg,
            "ffnlab_model_config": dataclasses.asdict(model_cfg),
            "ffnlab_ffn_config": dataclasses.asdict(ffn_cfg),
            "ffnlab_tokenizer": datamodule.tokenizer_json(),
        }
        if cfg.torch_compile:
            module.model = torch.compile(module.model)

        loggers = [CSVLogger(out_dir, name="", version="csv")]
        loggers += [instantiate(c) for c in (cfg.get("logger") or {}).values()]
        checkpoint = ModelCheckpoint(
            dirpath=out_dir / "checkpoints", save_last=True, save_top_k=0,
            every_n_train_steps=cfg.trainer.val_check_interval,
        )
        trainer = instantiate(cfg.trainer, logger=loggers, callbacks=[checkpoint], default_root_dir=out_dir)
        # After the Trainer exists: it sets the global rank that keeps non-zero ranks from logging.
        for logger in loggers:
            logger.log_hyperparams(resolved_cfg | {"stats": stats})
        trainer.fit(module, datamodule=datamodule)
        if trainer.interrupted or trainer.global_step < cfg.trainer.max_steps:
            raise RuntimeError(f"training stopped at step {trainer.global_step} of {cfg.trainer.max_steps}")
        val_loss = final_val_loss(trainer, module, datamodule)
        test_loss = trainer.test(module, datamodule=datamodule, verbose=False)[0]["test/loss"]
        metrics = {
            "status": "finished",
            "experiment": cfg.experiment_name,
            "run_name": out_dir.name,
            "ffn": ffn_cfg.name,
            "seed": cfg.seed,
            "lr": optim_cfg.lr,
            "val_loss": val_loss,
            "val_ppl": math.exp(val_loss),
            "test_loss": test_loss,
            "test_ppl": math.exp(test_loss),
            "unigram_entropy": datamodule.unigram_entropy,
            "steps": trainer.global_step,
            "tokens_seen": module.tokens_seen,
            "tokens_per_s": module.tokens_seen / max(module.train_time_s, 1e-9),
            "wall_s": time.perf_counter() - started,
            **stats,
            "data_hash": datamodule.data_hash,
            "setting": comparison_setting(cfg, model_cfg, datamodule.data_hash),
        }
        if trainer.is_global_zero:
            write_metrics(out_dir, metrics)
            for logger in loggers[1:]:
                if hasattr(logger, "experiment") and hasattr(logger.experiment, "summary"):
                    logger.experiment.summary.update({k: v for k, v in metrics.items() if k != "setting"})
        log.info("val_loss %.4f  val_ppl %.2f  test_loss %.4f  (%s)", val_loss, metrics["val_ppl"], test_loss, out_dir)
        finished = True
        return val_loss
    except Exception as error:
        if rank_zero_only.rank == 0:
            write_metrics(out_dir, {"status": "failed", "ffn": cfg.ffn.name, "seed": cfg.seed,
                                    "error": f"{type(error).__name__}: {error}"})
        raise
    finally:
        _finish_wandb(exit_code=0 if finished else 1)


def _finish_wandb(exit_code: int) -> None:
    """Close any wandb run so the next multirun job starts clean; a failed run is marked failed."""
    import sys

    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish(exit_code=exit_code)
