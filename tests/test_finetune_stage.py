"""The fine-tuning stage end to end: a tiny pre-training run, then `experiment=finetune_quick` from it (the embedded
speaker task), in-process here; tests/test_finetune_stage.py::test_the_stage_in_real_processes runs the README's
commands as processes (make test-slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import CORPUS, TINY_SETTINGS
from ffnlab.config.errors import ConfigError
from ffnlab.generate import model_weights, read_checkpoint
from ffnlab.runs.start import Start
from ffnlab.training.run import build, run

MODEL_KEYS = {k: v for k, v in TINY_SETTINGS.items() if k.startswith("model.")}


def finetune_overrides(init_from: Path, out_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [
        "experiment=finetune_quick", "ffn=swiglu", "seed=0", f"finetune.init_from={init_from}",
        *(f"{k}={v}" for k, v in MODEL_KEYS.items()),
        f"data.task_options.shakespeare_speaker.files=[{CORPUS}]",
        "data.batch_size=4", "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1",
        f"paths.output_dir={out_dir}", f"paths.cache_dir={cache_dir}", *extra,
    ]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, compose_tiny) -> Path:
    run_dir = tmp_path_factory.mktemp("pretrained") / "run"
    run(compose_tiny(run_dir))
    return run_dir


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, pretrained, cache_dir) -> tuple[Path, dict]:
    from ffnlab.config.compose import compose_config

    out = tmp_path_factory.mktemp("finetuned") / "run"
    run(compose_config(finetune_overrides(pretrained, out, cache_dir)))
    return out, json.loads((out / "metrics.json").read_text())


def test_a_finetune_starts_from_the_pretrained_weights_and_tokenizer(pretrained, cache_dir, tmp_path):
    from ffnlab.config.compose import compose_config

    cfg = compose_config(finetune_overrides(pretrained, tmp_path / "ft", cache_dir))
    built = build(cfg, tmp_path / "ft", Start({}, None, "id"))
    checkpoint = read_checkpoint(pretrained / "checkpoints" / "last.ckpt")
    weights = model_weights(checkpoint)
    assert built.datamodule.tokenizer_json() == checkpoint["ffnlab_tokenizer"]
    assert all(torch.equal(value, weights[name]) for name, value in built.module.model.state_dict().items())
    assert built.model_cfg.dropout == 0.1


def test_the_record_holds_the_scores_and_the_run_it_started_from(finetuned, pretrained):
    out, record = finetuned
    assert record["status"] == "finished" and record["steps"] == 4
    speaker = record["downstream"]["tasks"]["shakespeare_speaker"]
    assert set(speaker) == {"accuracy", "macro_f1"} and all(0 <= v <= 100 for v in speaker.values())
    started = record["downstream"]["init_from"]
    pre = json.loads((pretrained / "metrics.json").read_text())
    assert started == {"run_dir": str(pretrained), "config_hash": pre["config_hash"], "variant": "swiglu", "seed": 0}
    assert record["data_identity"]["init_from"]["config_hash"] == pre["config_hash"]
    assert record["setting"]["model.dropout"] == 0.1 and "init_setting" in record["setting"]
    assert "finetune.init_from" not in json.dumps(record["setting"])  # a path: bookkeeping, not the comparison


def test_the_loss_is_on_the_target_tokens(finetuned):
    """The recorded validation loss is the mean cross-entropy over the evaluation set's target tokens (END included)
    and nothing else: recomputed here from the final weights over exactly those tokens."""
    import torch.nn.functional as F

    from ffnlab.downstream.mixture import MixtureDataModule
    from ffnlab.generate import load_checkpoint
    from ffnlab.data.windows import IGNORE_INDEX

    out, record = finetuned
    model, tokenizer = load_checkpoint(out / "checkpoints" / "last.ckpt")
    data = MixtureDataModule(name="t", tasks=["shakespeare_speaker"], seq_len=model.cfg.seq_len,
                             task_options={"shakespeare_speaker": {"files": [str(CORPUS)],
                                                                   "split_fractions": [0.9, 0.05, 0.05]}},
                             tokenizer_json=tokenizer.to_json())
    data.prepare_data()
    x, y = (torch.cat(part) for part in zip(*data.val_dataloader()))
    with torch.no_grad():
        logits = model(x).float().flatten(0, 1)
    targets = F.cross_entropy(logits, y.flatten(), ignore_index=IGNORE_INDEX)
    assert targets.item() == pytest.approx(record["val_loss"], rel=1e-5)
    scored = (y != IGNORE_INDEX).sum().item()
    _, _, encoded = data.eval_sets["shakespeare_speaker"]
    assert scored == sum(len(t) for t in encoded.targets)  # every target token (END included), once
    prompts = sum(len(p) for p in encoded.prompts)
    assert scored < prompts / 2  # a text loss would score the prompts' tokens too: several times as many


def test_a_finished_finetune_is_reused_and_a_changed_pretrained_run_is_not_the_same(finetuned, pretrained, cache_dir,
                                                                                  tmp_path):
    from ffnlab.config.compose import compose_config

    out, record = finetuned
    assert run(compose_config(finetune_overrides(pretrained, out, cache_dir))) == record["val_loss"]
    # the same command over another pre-training run (another identity) refuses the finished record
    other = tmp_path / "other"
    shutil.copytree(pretrained, other)
    changed = json.loads((other / "metrics.json").read_text()) | {"config_hash": "another"}
    (other / "metrics.json").write_text(json.dumps(changed))
    with pytest.raises(ConfigError, match="differs from this one in .*data"):
        run(compose_config(finetune_overrides(other, out, cache_dir)))


def test_an_unfinished_or_other_model_run_is_refused_in_one_line(pretrained, cache_dir, tmp_path):
    from ffnlab.config.compose import compose_config

    unfinished = tmp_path / "unfinished"
    shutil.copytree(pretrained, unfinished)
    (unfinished / "metrics.json").write_text(json.dumps({"status": "interrupted"}))
    with pytest.raises(ConfigError, match=r"not a finished run \(status: interrupted\)"):
        run(compose_config(finetune_overrides(unfinished, tmp_path / "a", cache_dir)))
    failed = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert failed["status"] == "failed" and "not a finished run" in failed["error"]  # the sweep's report lists it
    with pytest.raises(ConfigError, match=r"model.d_model: 32 \(pre-trained\) vs 64"):
        run(compose_config(finetune_overrides(pretrained, tmp_path / "b", cache_dir, "model.d_model=64")))
    with pytest.raises(ConfigError, match=r"ffn.name: swiglu \(pre-trained\) vs relu"):
        run(compose_config(finetune_overrides(pretrained, tmp_path / "c", cache_dir, "ffn=relu")))


def test_a_mixture_without_a_finetune_block_is_one_line(compose_tiny, tmp_path):
    from ffnlab.config.compose import compose_config

    with pytest.raises(ConfigError, match="fine-tuning mixture .* finetune.init_from"):
        run(compose_config(["data=shakespeare_speaker", f"paths.output_dir={tmp_path}"]))


@pytest.mark.slow
def test_the_stage_in_real_processes(train_cli, tmp_path):
    """The README's commands: pre-train, fine-tune from it (python train.py experiment=finetune_quick), re-run."""
    pre = tmp_path / "pre"
    done = train_cli(f"hydra.run.dir={pre}")
    assert done.returncode == 0, done.stderr[-2000:]
    args = [a for a in finetune_overrides(pre, tmp_path, tmp_path) if not a.startswith("paths.")]
    finetuned = train_cli(*args, f"hydra.run.dir={tmp_path / 'ft'}", tiny=False)
    assert finetuned.returncode == 0, finetuned.stderr[-2000:]
    record = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert record["status"] == "finished" and "shakespeare_speaker" in record["downstream"]["tasks"]
    again = train_cli(*args, f"hydra.run.dir={tmp_path / 'ft'}", tiny=False)
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr
