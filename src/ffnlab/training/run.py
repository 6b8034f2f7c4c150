"""run(cfg): reuse a finished identical run, or build -> fit -> record. Every run leaves a record in its run dir.
Whether a run trains, resumes or is reused is decided in ffnlab.runs.start; here it is built, fitted and recorded."""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ffnlab.config.errors import ConfigError
from ffnlab.config.schemas import to_dataclass
from ffnlab.config.validate import validate
from ffnlab.distributed import launch
from ffnlab.distributed.budget import apply_budget, world_size
from ffnlab.model.decoder import ModelConfig
from ffnlab.model.ffn import FFNConfig, get_variant, variant_label
from ffnlab.model.sizes import model_stats
from ffnlab.runs.diskfull import DiskFull
from ffnlab.runs.record import SETTING_FORMAT, comparison_setting, read_metrics, write_metrics
from ffnlab.runs.resume import CHECKPOINT_DIR, HISTORY_DIR
from ffnlab.runs.runlock import RunLock
from ffnlab.runs.stack import software_stack
from ffnlab.runs.start import Start, lock_and_reuse, prepare_start, record_bad_setting
from ffnlab.training.allocator import apply_allocator
from ffnlab.training.checkpoint import Interrupted, LastCheckpoint
from ffnlab.training.console import quiet_third_parties, summary
from ffnlab.training.divergence import Diverged, DivergenceCheck
from ffnlab.training.history import History, skip_replayed
from ffnlab.training.module import LanguageModel
from ffnlab.training.optim import OptimConfig
from ffnlab.training.progress import StepProgressBar
from ffnlab.training.threads import apply_threads
from ffnlab.training.throughput import TrainClock

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


def instantiate_data(data_cfg: DictConfig, **given):
    """The data module; its own ConfigError (a missing or empty file...) is raised as itself, not inside
    Hydra's InstantiationException, so train.py can report it in one line."""
    try:
        return instantiate(data_cfg, **given)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


@dataclass
class Built:
    """Everything one run trains and records, built from its config."""

    datamodule: object
    model_cfg: ModelConfig
    ffn_cfg: FFNConfig
    optim_cfg: OptimConfig
    stats: dict
    module: LanguageModel
    trainer: L.Trainer
    loggers: list
    clock: TrainClock
    init: object | None = None  # a fine-tune's pre-training run (ffnlab.downstream.finetune.InitRun)


def build(cfg: DictConfig, out_dir: Path, start: Start) -> Built:
    L.seed_everything(cfg.seed, workers=True)
    ffn_cfg = to_dataclass(FFNConfig, cfg.ffn)
    optim_cfg = to_dataclass(OptimConfig, cfg.optim)
    init = checkpoint = None
    if cfg.get("finetune") is not None:  # the pre-training run's tokenizer and weights (ffnlab.downstream.finetune)
        from ffnlab.downstream import finetune

        init = finetune.init_run(cfg)
        checkpoint = finetune.load(init)
    datamodule = instantiate_data(cfg.data, **({"tokenizer_json": checkpoint["ffnlab_tokenizer"]} if init else {}))
    datamodule.prepare_data()
    datamodule.setup("fit")
    accumulate = int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
    datamodule.check_budget(cfg.trainer.max_steps * datamodule.batch_size * world_size(cfg.trainer) * accumulate)
    model_cfg = build_model_config(cfg, datamodule.vocab_size)
    if init is not None:
        finetune.check_same_model(checkpoint, model_cfg, ffn_cfg)
    stats = model_stats(model_cfg, ffn_cfg)
    log.info("ffn=%s seed=%s %s", variant_label(ffn_cfg), cfg.seed, " ".join(f"{k}={v:,}" for k, v in stats.items()))

    module = LanguageModel(model_cfg, ffn_cfg, optim_cfg, seed=cfg.seed, max_steps=cfg.trainer.max_steps,
                           loss_chunk_tokens=cfg.get("loss_chunk_tokens"), compile_blocks=bool(cfg.torch_compile))
    if init is not None and start.resume_from is None:  # a resumed fine-tune's weights come from its own checkpoint
        from ffnlab.generate import model_weights

        module.model.load_state_dict(model_weights(checkpoint))
        log.info("fine-tuning from %s", init.path)
    module.extra_checkpoint_state = {  # a checkpoint is self-contained: scripts/sample.py needs nothing else
        "ffnlab_config": OmegaConf.to_container(cfg, resolve=True),
        "ffnlab_model_config": dataclasses.asdict(model_cfg),
        "ffnlab_ffn_config": dataclasses.asdict(ffn_cfg),
        "ffnlab_tokenizer": datamodule.tokenizer_json(),
        "ffnlab_identity": start.identity,  # which run it holds, whatever becomes of metrics.json (ffnlab.runs.resume)
    }

    # A resumed run continues its history: the CSV's earlier rows and its wandb run (by the id in the run record),
    # each step once (ffnlab.training.history).
    history = History(out_dir, HISTORY_DIR, start.resume_step)
    replayed = history.replayed()
    loggers = [history]
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        if name == "wandb":
            loggers.append(instantiate(logger_cfg, id=start.wandb_id, resume="allow"))
            skip_replayed(loggers[-1], replayed)
        else:
            loggers.append(instantiate(logger_cfg))
    checkpoint = LastCheckpoint(out_dir / CHECKPOINT_DIR, **cfg.checkpoint)
    # Divergence first: a non-finite loss stops the run before a checkpoint of its weights is saved.
    clock = TrainClock(stats["flops_per_token"], cfg.trainer.log_every_n_steps, cfg.get("peak_flops"))
    callbacks = [DivergenceCheck(cfg.trainer.log_every_n_steps), clock, checkpoint]
    if cfg.trainer.get("enable_progress_bar") is not False:  # Lightning's default (null) is a bar too
        callbacks.append(StepProgressBar())
    # trainer.val_check_interval counts optimizer steps; Lightning counts training batches, which are micro-batches
    # under gradient accumulation (it validated mid-step, `accumulate` times too often).
    trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks, default_root_dir=out_dir,
                          val_check_interval=cfg.trainer.val_check_interval * accumulate)
    return Built(datamodule, model_cfg, ffn_cfg, optim_cfg, stats, module, trainer, loggers, clock, init)


def fit(cfg: DictConfig, built: Built, start: Start) -> tuple[float, float]:
    """Train to max_steps (from the checkpoint `start` names, when it names one); returns the final (validation,
    test) loss."""
    trainer, module, datamodule = built.trainer, built.module, built.datamodule
    # After the Trainer exists: it sets the global rank that keeps non-zero ranks from logging.
    for logger in built.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True) | {"stats": built.stats})
    resume_from, step = start.resume_from, start.resume_step
    if resume_from is not None:
        # Weights, optimizer, LR schedule and loop counters come from the checkpoint; the data position from the
        # step: the training stream is a pure function of (seed, global sample index).
        datamodule.start_sample = step * datamodule.batch_size * trainer.world_size * trainer.accumulate_grad_batches
        log.info("resuming from step %d (%s)", step, resume_from)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if trainer.interrupted or trainer.global_step < cfg.trainer.max_steps:
        raise RuntimeError(f"training stopped at step {trainer.global_step} of {cfg.trainer.max_steps}")
    # Fit's last validation is of the final weights when it ran at the last step over the whole split (a pass costs
    # seconds on a CPU); with data.fit_val_windows, fit's validations score a subset and the final one runs here.
    whole_split = datamodule.fit_val_windows is None
    if whole_split and trainer.global_step % cfg.trainer.val_check_interval == 0 and "val/loss" in trainer.callback_metrics:
        val_loss = trainer.callback_metrics["val/loss"].item()
    else:
        val_loss = trainer.validate(module, datamodule=datamodule, verbose=False)[0]["val/loss"]
    test_loss = trainer.test(module, datamodule=datamodule, verbose=False)[0]["test/loss"]
    return val_loss, test_loss


def downstream(built: Built) -> dict:
    """A fine-tune's record field: its evaluation sets decoded and scored (every rank decodes alike: under FSDP each
    forward is a collective), with the run it started from."""
    from ffnlab.downstream import finetune

    context = built.trainer.precision_plugin.forward_context()
    return finetune.downstream_record(built.init, finetune.score(built.module.model, built.datamodule, context))


def launch_settings(trainer: L.Trainer) -> dict:
    """What the Trainer resolved (`devices: auto` becomes a number): the global batch depends on it."""
    return {
        "devices": trainer.num_devices,
        "num_nodes": trainer.num_nodes,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
    }


def final_record(cfg: DictConfig, built: Built, identity: dict, losses: tuple[float, float], wall_s: float) -> dict:
    val_loss, test_loss = losses
    module, trainer, datamodule = built.module, built.trainer, built.datamodule
    tokens_per_s = module.tokens_seen / max(module.train_time_s, 1e-9)  # training wall time: data and loop included
    return {
        "status": "finished",
        **identity,
        "experiment": cfg.experiment_name,
        "run_name": Path(cfg.paths.output_dir).name,
        "ffn": built.ffn_cfg.name,
        "variant": variant_label(built.ffn_cfg),
        "ffn_config": dataclasses.asdict(built.ffn_cfg),
        "ffn_variant": get_variant(built.ffn_cfg.name).as_record(),  # the report's families come from here
        "seed": cfg.seed,
        "lr": built.optim_cfg.lr,
        "val_loss": val_loss,
        "val_ppl": math.exp(val_loss),
        "test_loss": test_loss,
        "test_ppl": math.exp(test_loss),
        "unigram_entropy": datamodule.unigram_entropy,
        "steps": trainer.global_step,
        "tokens_seen": module.tokens_seen,
        "tokens_per_s": tokens_per_s,
        "mfu": built.clock.mfu(tokens_per_s, trainer.world_size),
        "wall_s": wall_s,
        "timing": {  # ffnlab.training.throughput: fit's training and the evaluation passes, device-synchronised
            "train_s": module.train_time_s,
            "eval_s": module.eval_time_s,
            "between_steps_s": module.between_steps_s,
        },
        **built.stats,
        "data_hash": datamodule.data_hash,
        "stack": software_stack(module.device),
        "setting": comparison_setting(
            cfg, dataclasses.asdict(built.model_cfg), datamodule.data_hash, launch_settings(trainer)
        ) | ({"init_setting": built.init.setting_digest()} if built.init is not None else {}),
        "setting_format": SETTING_FORMAT,
    }


def run(cfg: DictConfig) -> float:
    """Train one run and write its record; returns the final validation loss (what sweepers minimise).
    Every rank of the point calls it (ffnlab.distributed.launch); rank 0 decides and writes, the others follow."""
    quiet_third_parties()  # every training process comes through here (ffnlab.training.console)
    try:
        validate(cfg)
        if cfg.get("finetune") is not None:  # the run it starts from is finished (one line otherwise), before any work
            from ffnlab.downstream.finetune import init_run

            init_run(cfg)
        apply_budget(cfg)
        apply_threads(cfg)
        apply_allocator(cfg)
    except ConfigError as error:
        record_bad_setting(cfg, error)
        raise
    with launch.point(cfg.trainer) as point:
        return _run(cfg, point)


def _run(cfg: DictConfig, point: launch.Point) -> float:
    out_dir = Path(cfg.paths.output_dir)
    lock = RunLock(out_dir) if point.rank == 0 else None  # one run per run dir; rank 0 holds it for all ranks
    try:
        return _locked_run(cfg, point, out_dir, lock)
    finally:
        if lock is not None:
            lock.release()


def _locked_run(cfg: DictConfig, point: launch.Point, out_dir: Path, lock: RunLock | None) -> float:
    reused = point.decide("reuse", lambda: lock_and_reuse(cfg, out_dir, lock))
    if reused is not None:
        return reused

    started = time.perf_counter()
    finished = False
    who = {"ffn": cfg.ffn.name, "seed": cfg.seed}
    start = None
    try:  # whatever fails from here on, a bad setting included, leaves a record the report lists
        start = point.decide("start", lambda: prepare_start(cfg, out_dir, read_metrics(out_dir)))
        point.start(OmegaConf.to_container(cfg, resolve=True))
        built = build(cfg, out_dir, start)
        built.module.attempt_started = started  # wall time counts this attempt whole, data preparation included
        losses = fit(cfg, built, start)
        scores = downstream(built) if built.init is not None else None
        metrics = final_record(cfg, built, start.identity, losses, built.module.wall_s())
        if scores is not None:
            metrics["downstream"] = scores
        metrics["wandb_id"] = start.wandb_id
        if point.rank == 0:
            write_metrics(out_dir, metrics)
            log.info("%s", summary(metrics, out_dir))
            for logger in built.loggers[1:]:
                if hasattr(logger, "experiment") and hasattr(logger.experiment, "summary"):
                    logger.experiment.summary.update({k: v for k, v in metrics.items() if k != "setting"})
        finished = True
        return metrics["val_loss"]
    except Diverged as diverged:
        if point.rank == 0:
            metrics = final_record(cfg, built, start.identity, (math.nan, math.nan), built.module.wall_s())
            metrics |= {"status": "diverged", "diverged_step": diverged.step, "wandb_id": start.wandb_id,
                        "last_finite_loss": diverged.last_finite_loss, "val_loss": None, "val_ppl": None,
                        "test_loss": None, "test_ppl": None}
            write_metrics(out_dir, metrics)
        raise
    except Interrupted as stop:
        if point.rank == 0:
            write_metrics(out_dir, {"status": "interrupted", **start.identity, **who, "wandb_id": start.wandb_id,
                                    "step": stop.step, "signal": signal.Signals(stop.signum).name})
        raise
    except Exception as error:
        cause = point.fail(error)  # this rank's error, or the peer's that broke this rank's collectives
        # A bad setting fails alike on every rank: say it as itself. Otherwise name the rank that failed first.
        own = isinstance(error, ConfigError) or cause.startswith(f"rank {point.rank}: ") or not point.world.distributed
        if point.rank == 0:
            said = f"{type(error).__name__}: {error}" if isinstance(error, ConfigError) else cause
            try:
                write_metrics(out_dir, {"status": "failed", **who, "error": said})
            except DiskFull:  # the record stays as it was (running: a re-run resumes), the error is the one said
                pass
        if own:
            raise
        raise launch.PeerFailed(cause) from error
    finally:
        _finish_wandb(exit_code=0 if finished else 1)


def _finish_wandb(exit_code: int) -> None:
    """Close any wandb run so the next multirun job starts clean; a failed run is marked failed."""
    import sys

    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish(exit_code=exit_code)
