"""ffnlab.training.run.run end to end, in-process: the real conf/train.yaml composed by Hydra, a tiny model
on a tiny text excerpt (see conftest.py). What a run leaves behind, determinism, paired data order,
the token cache, the errors a user can hit, and skipping finished runs."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from ffnlab.data import module as data
from ffnlab.config.errors import DataConfigError
from ffnlab.model.ffn import ConfigError
from ffnlab.generate import load_checkpoint
from ffnlab.training.run import run

REPO = Path(__file__).resolve().parents[1]
STEPS, BATCH, SEQ_LEN = 6, 4, 32  # conftest.TINY_SETTINGS
METRIC_KEYS = {
    "ffn", "seed", "val_loss", "val_ppl", "test_loss", "tokens_seen", "tokens_per_s", "wall_s", "params_total",
    "params_non_embedding", "params_ffn", "ffn_hidden", "flops_per_token", "data_hash", "status",
}


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, compose_tiny) -> tuple[Path, float]:
    """One finished run (swiglu, seed 0) that the tests below read but never change: (run dir, returned loss)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    return run_dir, run(compose_tiny(run_dir))


# ------------------------------------------------------------------------------------ A: the run record


def test_run_writes_resolved_config(finished_run):
    run_dir, _ = finished_run
    text = (run_dir / "config.yaml").read_text()
    assert "${" not in text  # resolved: interpolations (paths, seq_len, seed) are values
    assert f"output_dir: {run_dir}" in text and "seq_len: 32" in text


def test_run_writes_metrics(finished_run):
    run_dir, returned_loss = finished_run
    metrics = read_metrics(run_dir)
    assert METRIC_KEYS <= metrics.keys()
    assert metrics["status"] == "finished"
    assert (metrics["ffn"], metrics["seed"]) == ("swiglu", 0)
    assert metrics["val_loss"] == returned_loss
    assert math.isfinite(metrics["val_loss"]) and math.isfinite(metrics["test_loss"])
    assert metrics["val_ppl"] == pytest.approx(math.exp(metrics["val_loss"]))
    assert metrics["tokens_seen"] == STEPS * BATCH * SEQ_LEN
    assert metrics["tokens_per_s"] > 0 and metrics["wall_s"] > 0
    assert 0 < metrics["params_ffn"] < metrics["params_non_embedding"] < metrics["params_total"]
    assert metrics["ffn_hidden"] > 0 and metrics["flops_per_token"] > 0
    assert len(metrics["data_hash"]) >= 8


def test_run_writes_csv_history(finished_run):
    run_dir, _ = finished_run
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    train_losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    val_losses = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(train_losses) == STEPS  # trainer.log_every_n_steps=1
    assert len(val_losses) >= STEPS // 3  # every val_check_interval=3 steps, then the final validation
    assert val_losses[-1] == pytest.approx(read_metrics(run_dir)["val_loss"])


def test_checkpoint_is_self_contained(finished_run, compose_tiny):
    """The model and tokenizer rebuilt from last.ckpt alone reproduce the recorded validation loss."""
    run_dir, _ = finished_run
    model, tokenizer = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    datamodule = instantiate(compose_tiny(run_dir).data)
    datamodule.prepare_data()
    datamodule.setup("validate")
    sample = "ROMEO: Is the day so young?"
    assert tokenizer.encode(sample) == datamodule.tokenizer.encode(sample)
    loss_sum, n_tokens = 0.0, 0
    with torch.no_grad():
        for x, y in datamodule.val_dataloader():
            logits = model(x)
            loss_sum += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            n_tokens += int((y != -100).sum())
    assert loss_sum / n_tokens == pytest.approx(read_metrics(run_dir)["val_loss"], rel=1e-5)


def test_sample_script_continues_the_prompt(finished_run, capsys):
    run_dir, _ = finished_run
    spec = importlib.util.spec_from_file_location("sample_script", REPO / "scripts" / "sample.py")
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    assert sample.main([str(run_dir / "checkpoints" / "last.ckpt"), "--prompt", "ROMEO:", "--tokens", "20"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("ROMEO:") and len(printed.strip()) > len("ROMEO:")


# ------------------------------------------------------------------------- B, C: determinism and pairing


def test_same_seed_same_loss_other_seed_other_loss(finished_run, compose_tiny, tmp_path):
    _, seed0_loss = finished_run
    assert run(compose_tiny(tmp_path / "again", "seed=0")) == seed0_loss  # exactly: deterministic CPU kernels
    assert run(compose_tiny(tmp_path / "seed1", "seed=1")) != seed0_loss


def first_batches(cfg, n: int = 3) -> list[torch.Tensor]:
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batches = iter(datamodule.train_dataloader())
    return [next(batches)[0] for _ in range(n)]


def test_variants_with_one_seed_see_the_same_batches(compose_tiny, tmp_path):
    relu = first_batches(compose_tiny(tmp_path, "ffn=relu", "seed=3"))
    swiglu = first_batches(compose_tiny(tmp_path, "ffn=swiglu", "seed=3"))
    other_seed = first_batches(compose_tiny(tmp_path, "ffn=relu", "seed=4"))
    assert all(torch.equal(a, b) for a, b in zip(relu, swiglu))
    assert not torch.equal(relu[0], other_seed[0])


# ------------------------------------------------------------------------------------ D: the token cache


def test_second_run_reuses_the_tokenized_cache(compose_tiny, tmp_path, monkeypatch):
    trained = []
    train_tokenizer = data.train_tokenizer
    monkeypatch.setattr(data, "train_tokenizer", lambda *a, **k: trained.append(a) or train_tokenizer(*a, **k))
    cache = tmp_path / "cache"

    run(compose_tiny(tmp_path / "first", f"paths.cache_dir={cache}"))
    assert len(trained) == 1
    cache_files = {p: p.stat() for p in cache.rglob("*") if p.is_file()}
    assert any(p.suffix == ".bin" for p in cache_files)

    run(compose_tiny(tmp_path / "second", f"paths.cache_dir={cache}", "ffn=relu"))
    assert len(trained) == 1  # not retokenized...
    after = {p: p.stat() for p in cache.rglob("*") if p.is_file()}
    assert after.keys() == cache_files.keys()  # ...nor rewritten
    assert all((after[p].st_ino, after[p].st_mtime_ns) == (s.st_ino, s.st_mtime_ns) for p, s in cache_files.items())


# ----------------------------------------------------------------------------------- E: the user's errors


def test_unknown_ffn_group_option_lists_the_variants():
    from ffnlab.config.compose import compose_config

    with pytest.raises(MissingConfigException) as error:
        compose_config(["ffn=foo"])
    assert "ffn/foo" in str(error.value) and "relu" in str(error.value) and "swiglu" in str(error.value)


def test_unknown_ffn_name_lists_the_variants(compose_tiny, tmp_path):
    with pytest.raises(ConfigError, match="foo") as error:
        run(compose_tiny(tmp_path, "ffn.name=foo"))
    assert "relu" in str(error.value) and "swiglu" in str(error.value)


def test_heads_not_dividing_d_model_names_both(compose_tiny, tmp_path):
    with pytest.raises(ConfigError, match="d_model=100") as error:
        run(compose_tiny(tmp_path, "model.d_model=100", "model.n_heads=8"))
    assert "n_heads=8" in str(error.value)
    # a sweep's report lists this point as failed: it needs a record
    assert read_metrics(tmp_path)["status"] == "failed" and "d_model=100" in read_metrics(tmp_path)["error"]


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_bad_data_file_names_the_path(problem, compose_tiny, tiny_corpus, tmp_path):
    bad = tmp_path / "val.txt"
    if problem == "empty":
        bad.write_text("")
    with pytest.raises(DataConfigError, match=problem if problem == "empty" else "not found") as error:
        run(compose_tiny(tmp_path / "run", f"data.val_files=[{bad}]"))
    assert str(bad) in str(error.value)


def test_seq_len_longer_than_validation_split(compose_tiny, tmp_path):
    short = tmp_path / "val.txt"
    short.write_text("ROMEO: Peace, peace!\n")
    with pytest.raises(DataConfigError, match="seq_len=32") as error:
        run(compose_tiny(tmp_path / "run", f"data.val_files=[{short}]"))
    assert "val" in str(error.value) and "model.seq_len" in str(error.value)


# ----------------------------------------------------------------------------- F: re-running a sweep point


def test_finished_run_is_skipped(finished_run, compose_tiny):
    run_dir, loss = finished_run
    before = (run_dir / "metrics.json").read_bytes(), (run_dir / "metrics.json").stat().st_mtime_ns
    started = time.perf_counter()
    assert run(compose_tiny(run_dir)) == loss
    assert time.perf_counter() - started < 2.0  # nothing is tokenized, built or trained
    assert ((run_dir / "metrics.json").read_bytes(), (run_dir / "metrics.json").stat().st_mtime_ns) == before


@pytest.mark.parametrize("left_behind", ["forced", "failed", "no_metrics"])
def test_run_is_redone(left_behind, finished_run, compose_tiny, tmp_path):
    """force=true re-runs a finished run; a failed or unfinished one (no metrics.json) is re-run anyway."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run[0], run_dir)
    metrics_file = run_dir / "metrics.json"
    if left_behind == "failed":
        metrics_file.write_text(json.dumps({"status": "failed", "ffn": "swiglu", "seed": 0, "error": "Killed"}))
    elif left_behind == "no_metrics":
        metrics_file.unlink()
    mtime = metrics_file.stat().st_mtime_ns if metrics_file.exists() else None
    time.sleep(0.01)  # mtime resolution

    loss = run(compose_tiny(run_dir, *(["force=true"] if left_behind == "forced" else [])))
    assert metrics_file.stat().st_mtime_ns != mtime
    assert read_metrics(run_dir)["status"] == "finished"
    assert loss == read_metrics(run_dir)["val_loss"] == finished_run[1]


# ------------------------------------------------------------------------------------ the scripts' bad input


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args, words", [
    (["--top-k", "0"], "--top-k=0"),
    (["--tokens", "-3"], "--tokens=-3"),
    (["--temperature", "-1"], "--temperature=-1"),
])
def test_sample_rejects_bad_numbers_in_one_line(finished_run, args, words):
    run_dir, _ = finished_run
    done = run_script("sample.py", str(run_dir / "checkpoints" / "last.ckpt"), *args)
    assert done.returncode != 0 and words in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_sample_names_a_damaged_checkpoint(finished_run, tmp_path, damage):
    run_dir, _ = finished_run
    data = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    bad = tmp_path / "last.ckpt"
    bad.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    done = run_script("sample.py", str(bad))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"{bad} is damaged" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_sample_reports_prompt_characters_outside_the_vocabulary(compose_tiny, tmp_path):
    from ffnlab.training.run import run

    run(compose_tiny(tmp_path / "char", "data.tokenizer=char"))
    done = run_script("sample.py", str(tmp_path / "char" / "checkpoints" / "last.ckpt"), "--prompt", "héllo €€",
                      "--tokens", "3")
    assert done.returncode == 0
    assert "2 prompt character(s) are not in the vocabulary ('é', '€')" in done.stderr


def test_compare_without_run_records_warns_and_fails(tmp_path):
    done = run_script("compare.py", str(tmp_path))
    assert done.returncode != 0 and "no run records" in done.stderr and "Traceback" not in done.stderr


def test_a_multi_line_error_stays_in_its_table_row(tmp_path):
    from ffnlab.report import write_report

    run_dir = tmp_path / "sweep" / "ffn=relu"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"status": "failed", "error": "line one\nline | two"}))
    write_report(tmp_path / "sweep")
    md = (tmp_path / "sweep" / "report" / "comparison.md").read_text()
    row = next(line for line in md.splitlines() if "ffn=relu" in line)
    assert "line one line \\| two" in row and row.count(" | ") == 2  # three cells
