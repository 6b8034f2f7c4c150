"""Issue 23's bad input: each gets one line saying what was wrong and what is accepted, no traceback, and loses
nothing. In-process where the message is made; through the commands for the exit status, the single line and what
reaches the disk."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from ffnlab.config.compose import compose_config
from ffnlab.config.errors import ConfigError
from ffnlab.config.validate import validate


def refusal(*overrides: str) -> str:
    with pytest.raises(ConfigError) as error:
        validate(compose_config(list(overrides)))
    message = str(error.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ 7: a misspelt key added with `+`


@pytest.mark.parametrize("override, key, closest", [
    ("+model.d_modle=8", "model.d_modle", "d_model"),
    ("+ffn.piece=3", "ffn.piece", "pieces"),
    ("+optim.warmup=3", "optim.warmup", "warmup_steps"),
    ("+data.tokenizer_pth=x.json", "data.tokenizer_pth", "tokenizer_path"),
    ("+trainer.max_step=3", "trainer.max_step", "max_steps"),
])
def test_a_key_no_one_reads_is_named_with_the_accepted_ones_closest_first(override, key, closest):
    message = refusal(override)
    assert message.startswith(f"{key} is not a key") and f"accepted: {closest}," in message, message


def test_params_script_names_a_misspelt_key_in_one_line(capsys):
    spec = importlib.util.spec_from_file_location("ffnlab_params_script", REPO / "scripts" / "params.py")
    params = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(params)
    assert params.main(["+model.d_modle=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.d_modle" in err and "accepted: d_model," in err, err


# ------------------------------------------------------------------ 9: the model is checked before any data work


def test_model_checks_run_in_validate():
    assert "model.n_heads=3" in refusal("model.n_heads=3")
    assert "model.init='foo'" in refusal("model.init=foo")


def test_bad_model_keys_fail_in_one_line_before_the_corpus_is_touched(train_cli, tmp_path):
    """A fresh token cache stays empty: the model's checks no longer wait for the corpus to be tokenized."""
    for case, (override, named) in enumerate((("+model.d_modle=8", "model.d_modle"),
                                              ("model.n_heads=3", "model.n_heads=3"))):
        cache = tmp_path / f"cache{case}"
        done = train_cli(override, f"hydra.run.dir={tmp_path / str(case)}", env={"FFNLAB_CACHE_DIR": str(cache)})
        output = done.stdout + done.stderr
        assert done.returncode == 1 and "Traceback" not in output, output[-3000:]
        said = [line for line in output.splitlines() if named in line]
        assert len(said) == 1 and "ConfigError" in said[0], output[-3000:]
        assert not cache.exists() or not any(cache.rglob("*")), sorted(cache.rglob("*"))


# ------------------------------------------------------------------ 11: secrets and unknown logger keys


SECRET = "s3cr3t-Value-0123456789"


@pytest.mark.parametrize("override", [
    f"+logger.wandb.access_key={SECRET}",
    f"+data.hub_secret_key={SECRET}",
])
def test_a_secret_looking_override_is_refused_before_hydra_writes_anything(train_cli, tmp_path, override):
    out = tmp_path / "out"
    done = train_cli("logger=wandb", override, env={"FFNLAB_OUTPUT_DIR": str(out)})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "looks like a secret" in lines[0], done.stderr[-3000:]
    assert "WANDB_API_KEY" in lines[0] and "HF_TOKEN" in lines[0]  # where a real key goes
    assert SECRET not in done.stdout + done.stderr
    written = list(out.rglob("*")) if out.exists() else []
    assert written == [], written


def test_secret_looking_keys_are_told_apart_from_settings():
    from ffnlab.runs import secrets

    assert secrets.destination("logger.wandb.api_key") == "WANDB_API_KEY"
    assert secrets.destination("+wandb_api_key") == "WANDB_API_KEY"
    assert secrets.destination("hf_token") == "HF_TOKEN"
    for setting in ("train_tokens", "loss_chunk_tokens", "data.tokenizer", "hydra.job.config.override_dirname."
                    "exclude_keys", "data.shard_tokens"):
        assert secrets.destination(setting) is None
    for secret in ("logger.wandb.access_key", "logger.wandb.token", "data.private_key", "+x.Password",
                   "db.passwd", "aws.credentials", "hub.secret"):
        with pytest.raises(ConfigError, match="looks like a secret"):
            secrets.destination(secret)


@pytest.mark.parametrize("overrides, said", [
    (["logger=wandb", "+logger.wandb.projct=x"], "logger.wandb.projct is not a key of logger.wandb"),
    (["+logger.wandb.project=x"], "logger.wandb is not a logger"),
])
def test_an_unknown_logger_key_is_one_line(overrides, said):
    message = refusal(*overrides)
    assert message.startswith(said), message
    if "projct" in said:
        assert "accepted: project," in message


# ------------------------------------------------------------------ 12: a checkpoint sample.py cannot read


class NotPlain:
    """Stands for any pickled object: loading it would run code."""


def sample_script():
    spec = importlib.util.spec_from_file_location("ffnlab_sample_script", REPO / "scripts" / "sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unreadable_files(root: Path) -> dict[str, Path]:
    import pickle

    import torch

    files = {name: root / f"{name}.ckpt" for name in ("objects", "raw_pickle", "junk", "empty")}
    torch.save({"state_dict": {}, "obj": NotPlain()}, files["objects"])
    files["raw_pickle"].write_bytes(pickle.dumps({"obj": NotPlain()}, protocol=4))
    files["junk"].write_bytes(b"hello, not a checkpoint")
    files["empty"].write_bytes(b"")
    return files


ADVICE = ("weights_only", "trust", "arbitrary code", "torch.load", "PyTorch 2.6")


def test_sample_says_what_an_unreadable_file_is_and_never_advises_unsafe_loading(tmp_path, capsys):
    sample = sample_script()
    for name, path in unreadable_files(tmp_path).items():
        assert sample.main([str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err, (name, err)
        assert not any(words in err for words in ADVICE), (name, err)
        assert "checkpoints/last.ckpt" in err, (name, err)  # what ffnlab reads
    objects = tmp_path / "objects.ckpt"
    sample.main([str(objects)])
    assert "Python objects" in capsys.readouterr().err


def test_sample_on_a_pickle_prints_one_line(tmp_path):
    path = unreadable_files(tmp_path)["raw_pickle"]
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "sample.py"), str(path)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and not any(words in done.stderr for words in ADVICE), lines
