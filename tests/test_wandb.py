"""`logger=wandb`: a tiny real run logs offline beside the CSV history, and its `.wandb` transaction log,
read back here, holds the run's identity, the resolved config, the history and the final metrics.
wandb is closed after every run, a failed one too, and goes offline by itself without an API key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wandb
import yaml
from hydra.utils import instantiate
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from wandb_reader import BLOCK_SIZE, MIDDLE, CorruptLog, OfflineRun, read_records

from ffnlab.training import loggers
from ffnlab.training.loggers import resolve_wandb_mode, wandb_api_key_configured
from ffnlab.training.module import LanguageModel
from ffnlab.training.run import run

WANDB_OVERRIDES = ("logger=wandb", "ffn=geglu", "seed=3", "experiment_name=wandb_test")


def isolate_wandb(mp: pytest.MonkeyPatch, tmp: Path) -> None:
    """Offline, quiet, and nothing written outside `tmp` (wandb's settings, cache and artifact dirs)."""
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR", "XDG_CACHE_HOME"):
        mp.setenv(var, str(tmp / "wandb_home" / var.lower()))  # XDG_CACHE_HOME: wandb-core's debug log


def offline_log(out_dir: Path) -> Path:
    """The run's transaction log, complete: wandb-core writes its last block a moment after finish()
    returns, and wandb.teardown() waits for that (it stops the wandb-core service; the next init starts one)."""
    wandb.teardown()
    (path,) = (out_dir / "wandb").glob("offline-run-*/run-*.wandb")
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, compose_tiny):
    """One tiny run, shared by the checks below: (its output dir, metrics.json, its offline wandb run, wandb.run
    after it)."""
    tmp = tmp_path_factory.mktemp("wandb_run")
    out_dir = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, tmp)
        val_loss = run(compose_tiny(out_dir, *WANDB_OVERRIDES))
        run_after = wandb.run
        offline = OfflineRun.read(offline_log(out_dir))
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["val_loss"] == val_loss
    return out_dir, metrics, offline, run_after


# ------------------------------------------------------------------------------------- a finished run


def test_run_is_finished_and_the_csv_history_stays_on(finished_run):
    out_dir, _, offline, run_after = finished_run
    assert run_after is None  # wandb.finish() ran, so the next multirun job starts its own run
    assert offline.exit_code == 0
    assert (out_dir / "csv" / "metrics.csv").read_text().count("\n") > 1


def test_identity_comes_from_the_config(finished_run):
    _, _, offline, _ = finished_run
    assert offline.run.project == "ffnlab"
    assert offline.run.run_group == "wandb_test"  # the sweep
    assert offline.run.display_name == "geglu-seed3"
    assert list(offline.run.tags) == ["geglu", "d32", "text_files"]


def test_resolved_config_is_logged_as_hyperparameters(finished_run):
    out_dir, metrics, offline, _ = finished_run
    config = offline.config
    assert config["ffn"]["name"] == "geglu" and config["seed"] == 3
    assert config["logger"]["wandb"]["group"] == "wandb_test"  # resolved, not "${experiment_name}"
    assert config["stats"]["params_total"] == metrics["params_total"]
    logged = {k: v for k, v in config.items() if k not in ("_wandb", "stats")}
    assert logged == yaml.safe_load((out_dir / "config.yaml").read_text())  # the run record's config, all of it


def test_summary_holds_the_final_metrics_and_model_size(finished_run):
    _, metrics, offline, _ = finished_run
    summary = offline.summary
    assert summary["val_loss"] == pytest.approx(metrics["val_loss"], abs=1e-6)
    assert summary["test_loss"] == pytest.approx(metrics["test_loss"], abs=1e-6)
    for key in ("params_total", "params_ffn", "flops_per_token"):
        assert summary[key] == metrics[key] > 0, key
    assert summary["status"] == "finished"


def test_history_holds_the_training_curve(finished_run):
    _, metrics, offline, _ = finished_run
    train_losses = [row["train/loss"] for row in offline.history if "train/loss" in row]
    assert len(train_losses) == metrics["steps"]  # the tiny settings log every step
    val_losses = [row["val/loss"] for row in offline.history if "val/loss" in row]
    assert val_losses[-1] == pytest.approx(metrics["val_loss"], abs=1e-6)  # the final validation


# ------------------------------------------------------------------------------------- a failed run


@pytest.fixture
def failed_run(tmp_path, monkeypatch, compose_tiny):
    """A run whose training step raises after wandb has started: (its output dir, the error)."""
    isolate_wandb(monkeypatch, tmp_path)

    def training_step(self, batch, batch_idx):
        raise RuntimeError("boom in training_step")

    monkeypatch.setattr(LanguageModel, "training_step", training_step)
    with pytest.raises(RuntimeError, match="boom") as error:
        run(compose_tiny(tmp_path / "run", *WANDB_OVERRIDES))
    return tmp_path / "run", error.value


def test_failed_run_still_closes_wandb_and_records_the_failure(failed_run):
    out_dir, _ = failed_run
    assert wandb.run is None
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "boom" in metrics["error"]
    assert OfflineRun.read(offline_log(out_dir)).exit_code is not None  # finish() wrote its exit record


def test_failed_run_is_marked_failed_in_wandb(failed_run):
    out_dir, _ = failed_run
    assert OfflineRun.read(offline_log(out_dir)).exit_code == 1


# ------------------------------------------------------------------------------------- rank zero only


def test_other_ranks_never_start_wandb(tmp_path, monkeypatch, compose_tiny):
    isolate_wandb(monkeypatch, tmp_path)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = instantiate(compose_tiny(tmp_path / "run", *WANDB_OVERRIDES).logger.wandb)
    logger.log_hyperparams({"seed": 3})
    logger.log_metrics({"train/loss": 1.0}, step=0)  # (train.py updates the summary on global zero only)
    assert wandb.run is None
    assert not list((tmp_path / "run").glob("wandb/*"))


# ------------------------------------------------------------------------------------- mode selection


@pytest.fixture
def netrc_file(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "netrc"
        path.write_text(text)
        path.chmod(0o600)
        return str(path)

    return write


@pytest.fixture
def reachable(monkeypatch):
    """The W&B server answers (no network here: the reachability probe is what the next tests are not about)."""
    import ffnlab.training.loggers

    monkeypatch.setattr(ffnlab.training.loggers, "wandb_reachable", lambda environ=None, timeout_s=0: True)


def test_an_api_key_but_no_reachable_server_means_offline_said_once(caplog):
    """A closed local port as the server: offline at once (not after wandb's minutes of retries), one warning."""
    import socket
    import time

    import ffnlab.training.loggers

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is
    environ = {"WANDB_API_KEY": "k" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{port}"}
    ffnlab.training.loggers._said_unreachable.clear()
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="ffnlab"):
        modes = [resolve_wandb_mode(None, environ) for _ in range(3)]
    assert modes == ["offline"] * 3 and time.monotonic() - started < 30
    assert caplog.text.count("cannot be reached") == 1


def test_an_api_key_in_the_environment_means_online(tmp_path, reachable):
    environ = {"WANDB_API_KEY": "k" * 40, "NETRC": str(tmp_path / "absent")}
    assert wandb_api_key_configured(environ)
    assert resolve_wandb_mode(None, environ) == "online"


def test_wandb_login_netrc_entry_means_online(netrc_file, reachable):
    environ = {"NETRC": netrc_file("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")}
    assert resolve_wandb_mode(None, environ) == "online"


def test_netrc_entry_for_a_self_hosted_server_counts_only_for_that_server(netrc_file, reachable):
    path = netrc_file("machine wandb.example.com login user password " + "k" * 40 + "\n")
    assert resolve_wandb_mode(None, {"NETRC": path, "WANDB_BASE_URL": "https://wandb.example.com"}) == "online"
    assert resolve_wandb_mode(None, {"NETRC": path}) == "offline"


@pytest.mark.parametrize("text", ["", "machine github.com login me password secret\n", "machine api.wandb.ai login u\n"])
def test_no_key_for_the_wandb_server_means_offline(netrc_file, text):
    assert not wandb_api_key_configured({"NETRC": netrc_file(text)})
    assert resolve_wandb_mode(None, {"NETRC": netrc_file(text)}) == "offline"


def test_no_netrc_file_means_offline(tmp_path):
    assert resolve_wandb_mode(None, {"NETRC": str(tmp_path / "absent")}) == "offline"


def test_wandb_mode_in_the_environment_wins_over_the_key_and_the_config_mode_over_both():
    environ = {"WANDB_API_KEY": "k" * 40, "WANDB_MODE": "disabled"}
    assert resolve_wandb_mode(None, environ) == "disabled"
    assert resolve_wandb_mode("offline", environ) == "offline"
    assert resolve_wandb_mode("online", {"WANDB_MODE": "offline"}) == "online"


def test_logger_config_becomes_the_wandb_init_arguments(tmp_path, monkeypatch, compose_tiny):
    """conf/logger/wandb.yaml -> ffnlab.training.loggers.wandb_logger -> WandbLogger, without starting wandb."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    monkeypatch.setattr(loggers, "WandbLogger", lambda **kwargs: kwargs)
    kwargs = instantiate(compose_tiny(tmp_path / "run", *WANDB_OVERRIDES).logger.wandb)
    assert kwargs == {
        "project": "ffnlab", "group": "wandb_test", "name": "geglu-seed3", "tags": ["geglu", "d32", "text_files"],
        "save_dir": str(tmp_path / "run"), "mode": "offline",
    }


# ------------------------------------------------------------------------------------- the reader itself


def test_reader_joins_records_split_across_blocks_and_rejects_damage(tmp_path, monkeypatch):
    isolate_wandb(monkeypatch, tmp_path)
    big = "x" * (3 * BLOCK_SIZE)  # the run record carrying it spans FIRST, MIDDLE and LAST chunks
    with wandb.init(project="p", dir=tmp_path, config={"big": big}) as wandb_run:
        wandb_run.summary["after_big"] = 1
    path = offline_log(tmp_path)
    assert path.read_bytes()[BLOCK_SIZE + 6] == MIDDLE  # the second block opens inside that record
    offline = OfflineRun.read(path)
    assert offline.config["big"] == big and offline.summary["after_big"] == 1

    damaged = bytearray(path.read_bytes())
    damaged[BLOCK_SIZE + 100] ^= 0xFF
    (tmp_path / "damaged.wandb").write_bytes(bytes(damaged))
    with pytest.raises(CorruptLog, match="checksum"):
        read_records(tmp_path / "damaged.wandb")


def test_an_api_key_in_the_environment_reaches_no_file_and_no_log(train_cli, tmp_path):
    """A fake key, an unreachable server: the run goes offline (said once) and the key is in none of the run dir's
    files (config.yaml, .hydra/, metrics.json, csv/hparams.yaml, the checkpoint, the offline wandb run) nor the log."""
    key = "fakekey0123456789" * 2 + "abcd"  # 40 characters, as wandb keys are
    run_dir = tmp_path / "run"
    env = {"WANDB_API_KEY": key, "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_MODE": None,
           "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"), "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
           "WANDB_SILENT": "true"}
    done = train_cli("logger=wandb", f"hydra.run.dir={run_dir}", env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert output.count("cannot be reached") == 1 and key not in output
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".wandb") for p in files) and any(p.name == "last.ckpt" for p in files)
    leaked = [str(p.relative_to(run_dir)) for p in files if key.encode() in p.read_bytes()]
    assert leaked == []


def test_a_key_passed_on_the_command_line_is_recorded_nowhere(train_cli, tmp_path):
    """logger.wandb.api_key=KEY in a multirun: moved to WANDB_API_KEY before Hydra sees it, so neither .hydra/,
    multirun.yaml, config.yaml, the run dir names, the records, the checkpoints, wandb's files nor the log hold it."""
    key = "overridekey" * 3 + "abcdefg"
    sweep_dir = tmp_path / "sweep"
    env = {"WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_MODE": None, "WANDB_API_KEY": None,
           "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"), "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
           "WANDB_SILENT": "true"}
    done = train_cli("-m", "logger=wandb", f"logger.wandb.api_key={key}", "seed=0,1", f"hydra.sweep.dir={sweep_dir}",
                     env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "cannot be reached" in output and key not in output  # the key was used: it made wandb try online
    paths = list(sweep_dir.rglob("*"))
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) == [
        "seed=0", "seed=1"]
    assert [str(p) for p in paths if key in str(p) or (p.is_file() and key.encode() in p.read_bytes())] == []


def test_an_unknown_secret_on_the_command_line_is_refused(train_cli, tmp_path):
    done = train_cli("+data.password=hunter2", f"hydra.run.dir={tmp_path}/run")
    assert done.returncode != 0 and "looks like a secret" in done.stderr and "hunter2" not in done.stderr
    assert not (tmp_path / "run").exists()
