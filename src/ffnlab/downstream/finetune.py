"""The fine-tuning stage (the paper's Tables 2-4): a finished pre-training run's weights and tokenizer, trained on a
text-to-text mixture (ffnlab.downstream.mixture), then scored by greedy decoding with the tasks' own metrics.

`python train.py experiment=finetune_quick` (or glue_finetune) runs through ffnlab.training.run like any run; what differs
is here:
  - `init_run`: the run named by `finetune.init_from` must be finished, and its model and FFN must be the ones this
    config builds (dropout aside): one line otherwise, before any data work;
  - `input_identity`: a fine-tune run is identified by the tasks it reads and the *identity* of the run it starts
    from (not its path, a bookkeeping key), so a re-run of the sweep reuses a finished fine-tune only when the
    pre-training run is the same one;
  - `score`: every evaluation set decoded greedily (the label text, as T5 does) and scored; the record's
    `downstream` holds the scores, the benchmark averages and the run it started from.
Training processes import this module only for fine-tune runs; it needs no lm-eval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from ffnlab.config.errors import ConfigError
from ffnlab.runs.record import METRICS_FILE, is_finished, read_metrics
from ffnlab.runs.resume import CHECKPOINT_DIR

log = logging.getLogger("ffnlab")

# As a Hydra override the path is quoted: a run dir's name holds `=` and `,` (finetune.init_from="'<dir>'")
EXAMPLE_RUN = "\"'outputs/glu_variants_quick/ffn=swiglu,seed=0'\""
IDENTITY_KEYS = ("results_format", "config_hash", "data_identity")


@dataclass
class InitRun:
    """The pre-training run a fine-tune starts from: its directory and record (the checkpoint is read in `load`)."""

    path: Path
    record: dict

    def identity(self) -> dict:
        return {key: self.record.get(key) for key in IDENTITY_KEYS}

    def setting_digest(self) -> str:
        """The pre-training comparison setting, hashed: fine-tunes pool only when they start from runs of one
        setting (the variant and seed, study axes, are outside it)."""
        text = json.dumps(self.record.get("setting"), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def provenance(self) -> dict:
        return {"run_dir": str(self.path), "config_hash": self.record.get("config_hash"),
                "variant": self.record.get("variant", self.record.get("ffn")), "seed": self.record.get("seed")}


def init_run(cfg: DictConfig) -> InitRun:
    """The finished run `finetune.init_from` names, or one line saying what it is instead."""
    given = (cfg.get("finetune") or {}).get("init_from")
    if not given:
        raise ConfigError(f"finetune.init_from is not set; give a finished pre-training run's directory, e.g. "
                          f"finetune.init_from={EXAMPLE_RUN}")
    path = Path(str(given)).expanduser().resolve()
    record = read_metrics(path)
    if record is None:
        raise ConfigError(f"finetune.init_from={given} holds no run record ({METRICS_FILE}); give a finished "
                          f"pre-training run's directory, e.g. finetune.init_from={EXAMPLE_RUN}")
    if not is_finished(record):
        raise ConfigError(f"finetune.init_from={given} is not a finished run (status: {record.get('status')}); "
                          "finish it first (re-running its command resumes it), or give a finished run")
    return InitRun(path, record)


def input_identity(cfg: DictConfig) -> dict:
    """What a fine-tune run reads: each task's source and the identity of the pre-training run it starts from."""
    from ffnlab.downstream.mixture import make_tasks

    data = cfg.data
    tasks = make_tasks(data.tasks, data.get("revision"), data.get("local_dir"), data.get("task_options"))
    return {"tasks": {task.name: task.source() for task in tasks}, "init_from": init_run(cfg).identity()}


def load(init: InitRun) -> dict:
    """The run's last checkpoint, read as plain values (ffnlab.generate.read_checkpoint)."""
    from ffnlab.generate import read_checkpoint

    try:
        return read_checkpoint(init.path / CHECKPOINT_DIR / "last.ckpt")
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"finetune.init_from={init.path}: {error}") from None


def check_same_model(checkpoint: dict, model_cfg, ffn_cfg) -> None:
    """The fine-tune's model must be the pre-trained one: every ModelConfig and FFNConfig field but dropout."""
    ours = {f"model.{k}": v for k, v in dataclasses.asdict(model_cfg).items() if k != "dropout"}
    ours |= {f"ffn.{k}": v for k, v in dataclasses.asdict(ffn_cfg).items()}
    theirs = {f"model.{k}": v for k, v in checkpoint["ffnlab_model_config"].items() if k != "dropout"}
    theirs |= {f"ffn.{k}": v for k, v in checkpoint["ffnlab_ffn_config"].items()}
    differ = sorted(k for k in ours.keys() | theirs.keys() if _norm(ours.get(k)) != _norm(theirs.get(k)))
    if differ:
        shown = ", ".join(f"{k}: {theirs.get(k, '<absent>')} (pre-trained) vs {ours.get(k, '<absent>')}"
                          for k in differ[:4])
        raise ConfigError(f"the model of finetune.init_from differs from this config's in {shown}"
                          f"{' ...' if len(differ) > 4 else ''}; give the pre-training run's ffn= and model= "
                          "overrides (or fine-tune a run of this model)")


def _norm(value):
    return list(value) if isinstance(value, tuple) else value


# ------------------------------------------------------------------------------------------------ scoring


@torch.no_grad()
def greedy(model, prompts: list[list[int]], max_new: int, end: int, batch_size: int = 64) -> list[list[int]]:
    """Each prompt's greedy continuation up to `end` (left out) or `max_new` tokens. Prompts are batched by length,
    right-padded: the model is causal, so a row's padding never reaches the positions it is decoded from; each new
    token is written where the row's padding began. A prompt is cut at its end to leave room for max_new tokens."""
    seq_len = model.cfg.seq_len
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        cut = [prompts[i][: seq_len + 1 - max_new] if len(prompts[i]) > seq_len + 1 - max_new else prompts[i]
               for i in rows]
        lengths = torch.tensor([len(p) for p in cut], device=device)
        ids = torch.zeros(len(rows), seq_len, dtype=torch.long, device=device)
        for r, p in enumerate(cut):
            ids[r, : len(p)] = torch.tensor(p, device=device)
        done = torch.zeros(len(rows), dtype=torch.bool, device=device)
        arange = torch.arange(len(rows), device=device)
        for step in range(max_new):
            width = int((lengths + step).max())
            logits = model(ids[:, :width])
            token = logits[arange, lengths + step - 1].argmax(-1)
            done_before = done.clone()
            done |= token == end
            for r in (~done).nonzero().flatten().tolist():
                out[rows[r]].append(int(token[r]))
            if done.all() or step + 1 == max_new:
                break
            where = (lengths + step).clamp(max=seq_len - 1)
            ids[arange[~done_before], where[~done_before]] = token[~done_before]
    return out


def score(model, datamodule, precision_context=None) -> dict[str, dict[str, float]]:
    """Eval set -> metric -> value (0-100), the answers decoded greedily from the model in eval mode."""
    from contextlib import nullcontext

    from ffnlab.downstream.mixture import end_id

    was_training = model.training
    model.eval()
    tokenizer, end = datamodule.tokenizer, end_id(datamodule.tokenizer)
    scores = {}
    try:
        for name, (task, examples, encoded) in datamodule.eval_sets.items():
            max_new = max(len(t) for t in encoded.targets)
            with precision_context or nullcontext():
                answers = greedy(model, encoded.prompts, max_new, end)
            predictions = [tokenizer.decode(a).strip() for a in answers]
            scores[name] = task.metrics(predictions, examples)
            log.info("%s: %s", name, "  ".join(f"{k} {v:.2f}" for k, v in scores[name].items()))
    finally:
        model.train(was_training)
    return scores


def downstream_record(init: InitRun, scores: dict) -> dict:
    from ffnlab.downstream.text_tasks import benchmark_averages

    return {"init_from": init.provenance(), "tasks": scores, "averages": benchmark_averages(scores)}
