"""LightningModule: next-token cross-entropy, token-weighted evaluation, the optimizer of ffnlab.training.optim.
Its wall-time totals are kept by ffnlab.training.throughput.TrainClock."""

from __future__ import annotations

import time

import lightning as L
import torch

from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import ModelConfig, Transformer, compile_blocks
from ffnlab.training.optim import OptimConfig, adamw, decay_groups, lr_multiplier


PROGRESS = ("tokens_seen", "train_time_s", "eval_time_s", "between_steps_s")  # saved in every checkpoint


def eager_name(key: str) -> str:
    """A parameter's name without torch.compile's `_orig_mod.` (per block or of the whole model)."""
    return key.replace("_orig_mod.", "")


def fsdp_mixed_precision(precision: str):
    """FSDP2's policy for a trainer precision. bf16 (bf16-mixed, bf16-true): parameters all-gathered and computed in
    bf16, gradients reduced in fp32 (a sum over ranks in bf16 loses the small gradients). Under bf16-mixed the shards
    stay fp32 master weights for AdamW; under bf16-true Lightning casts the shards themselves to bf16 after
    configure_model, so only the reduction is fp32. Anything else: FSDP2's default (no casts).

    Lightning's precision plugin stays on top of the policy. At bf16-mixed its autocast no longer casts the matmuls
    (FSDP hands them bf16 weights and activations), but it still runs the ops on CUDA autocast's fp32 list (softplus,
    exp, pow, softmax, ...) in fp32, as under trainer=ddp, so an FFN activation is computed at the same precision
    whichever strategy trains the variant.
    `cast_forward_inputs=False`: FSDP2 would cast every floating-point input of a sharded block to bf16, and the
    blocks take the RoPE tables as inputs, which must stay fp32 (ffnlab.model.decoder.apply_rope); the activations are bf16
    already, made by the bf16 embedding. On a GPU, reviewed, not run; built and tested on CPU."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if "bf16" in precision:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False)
    return MixedPrecisionPolicy(cast_forward_inputs=False)


class LanguageModel(L.LightningModule):
    def __init__(self, model: ModelConfig, ffn: FFNConfig, optim: OptimConfig, seed: int, max_steps: int,
                 loss_chunk_tokens: int | None = None, compile_blocks: bool = False):
        super().__init__()
        self.compile_blocks = compile_blocks  # torch_compile: each block, in configure_model (before any wrapping)
        self.loss_chunk_tokens = loss_chunk_tokens  # ffnlab.model.loss: bounds the logits' memory at large vocabularies
        self.model_cfg, self.ffn_cfg, self.optim_cfg, self.max_steps = model, ffn, optim, max_steps
        self.model = Transformer(model, ffn, seed=seed)
        self._eval_sums: torch.Tensor | None = None
        self.tokens_seen = 0
        # Kept by ffnlab.training.throughput.TrainClock, saved in checkpoints: a resumed run counts all its training.
        self.train_time_s = 0.0  # fit's wall time minus its validations
        self.eval_time_s = 0.0  # validation and test passes, in fit and after it
        self.between_steps_s = 0.0  # from one step's end to the next one's start: data loading and the loop
        # Wall time across attempts: the earlier attempts' up to the checkpoint resumed from, plus this attempt's, so a
        # resumed run's wall_s covers its train_s and eval_s (both also restored from the checkpoint).
        self.wall_before_s = 0.0
        self.attempt_started = time.perf_counter()  # ffnlab.training.run sets it to when the attempt began
        self.extra_checkpoint_state: dict = {}  # resolved config + tokenizer, set by ffnlab.training.run

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)

    def _loss_sum(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        return self.model(x, y, self.loss_chunk_tokens)

    # ------------------------------------------------------------------ training
    def on_train_batch_start(self, batch, batch_idx):
        # Counted when the batch is taken, not after it: ffnlab.training.checkpoint saves in on_train_batch_end, which Lightning
        # calls before this module's own hook, and a checkpoint must count the batch its weights have seen.
        self.tokens_seen += batch[0].numel() * self.trainer.world_size

    def training_step(self, batch, batch_idx):
        loss_sum, n_tokens = self._loss_sum(batch)
        loss = loss_sum / n_tokens
        self.log("train/loss", loss, prog_bar=True)
        # Read before optimizer.step(): the LR this step applies (the scheduler steps right after it).
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.log("tokens_seen", float(self.tokens_seen), on_step=True, on_epoch=False)

    # ------------------------------------------------------------------ evaluation (token-weighted)
    def _eval_step(self, batch):
        loss_sum, n_tokens = self._loss_sum(batch)
        sums = torch.stack([loss_sum.detach(), n_tokens.to(loss_sum.dtype)])
        self._eval_sums = sums if self._eval_sums is None else self._eval_sums + sums

    def _eval_epoch_end(self, split: str):
        sums = self._eval_sums if self._eval_sums is not None else torch.zeros(2, device=self.device)
        sums = self.all_gather(sums).reshape(-1, 2).sum(0) if self.trainer.world_size > 1 else sums
        self._eval_sums = None
        loss = sums[0] / sums[1].clamp(min=1)
        self.log(f"{split}/loss", loss)
        self.log(f"{split}/ppl", torch.exp(loss))

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_validation_epoch_end(self):
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_test_epoch_end(self):
        self._eval_epoch_end("test")

    # ------------------------------------------------------------------ sharding (trainer=fsdp)
    def configure_model(self):
        """Lightning calls it before the strategy wraps the model (DDP) and before configure_optimizers: the place
        to compile each block (torch_compile) and then to shard.

        FSDP2 under ModelParallelStrategy (the only strategy that gives a device mesh): each block is one
        all-gather unit, the root holds the embedding, the (tied) head and the final norm, in the trainer's mixed
        precision (fsdp_mixed_precision). Parameters become DTensors before configure_optimizers runs, so the decay
        groups are chosen on the sharded model."""
        if self.compile_blocks:
            compile_blocks(self.model)
        mesh = self.device_mesh
        if mesh is None or any(hasattr(p, "device_mesh") for p in self.model.parameters()):
            return  # not sharded, or already sharded (configure_model runs again for validate/test)
        from torch.distributed.fsdp import fully_shard

        policy = fsdp_mixed_precision(str(self.trainer.precision))
        for block in self.model.blocks:
            fully_shard(block, mesh=mesh["data_parallel"], mp_policy=policy)
        fully_shard(self.model, mesh=mesh["data_parallel"], mp_policy=policy)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        cfg = self.optim_cfg
        # the groups of what the strategy wrapped, as it will step it
        optimizer = adamw(decay_groups(self.trainer.model, cfg.weight_decay), cfg, self.device)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_multiplier(step, cfg, self.max_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint.update(self.extra_checkpoint_state)
        checkpoint["ffnlab_progress"] = {key: getattr(self, key) for key in PROGRESS} | {"wall_s": self.wall_s()}
        # Eager names whatever was compiled: a checkpoint loads into a compiled or eager model, and scripts alike.
        checkpoint["state_dict"] = {eager_name(k): v for k, v in checkpoint["state_dict"].items()}

    def wall_s(self) -> float:
        return self.wall_before_s + time.perf_counter() - self.attempt_started

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed run counts the tokens and training time before the interruption too; the weights' names are
        mapped onto this model's whichever side holds torch.compile's `_orig_mod.` (a whole model compiled, as runs
        before issue 22.8 did). Under trainer=fsdp no weights are left to map: Lightning's FSDP loader has loaded
        them, by the model's own names (eager since blocks compile in place), and removed them."""
        progress = checkpoint.get("ffnlab_progress", {})
        for key in PROGRESS:
            setattr(self, key, progress.get(key, 0))
        # checkpoints from before issue 23 hold no wall time: the parts it is made of are its lower bound
        self.wall_before_s = progress.get("wall_s", self.train_time_s + self.eval_time_s)
        if "state_dict" in checkpoint:
            names = {eager_name(k): k for k in self.state_dict()}
            checkpoint["state_dict"] = {names.get(eager_name(k), k): v for k, v in checkpoint["state_dict"].items()}
