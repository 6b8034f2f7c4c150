"""A run's identity: a finished run is reused only when it is the same run (config hash, data identity, results
format), a variant is its name plus its options, the setting holds the global batch, run dirs are bounded and
rooted, the logged LR is the applied one, weight decay follows parameter identity, and `last.ckpt` is the newest.

In-process runs of the real conf/train.yaml with the tiny settings (conftest.py)."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ffnlab.training.threads import apply_threads, default_threads
import torch

from ffnlab.runs import record
from ffnlab.training.checkpoint import LastCheckpoint
from ffnlab.config.schemas import MAX_NAME_BYTES, run_dir_name
from ffnlab.model.ffn import FFNConfig, variant_label
from ffnlab.training.optim import OptimConfig, decay_groups, lr_multiplier
from ffnlab.runs.record import RESULTS_FORMAT, RunIdentityError, config_hash
from ffnlab.runs.resume import set_aside
from ffnlab.training.run import run


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def finished(tmp_path_factory, compose_tiny) -> Path:
    """A finished relu run the tests copy before touching."""
    run_dir = tmp_path_factory.mktemp("identity") / "run"
    run(compose_tiny(run_dir, "ffn=relu"))
    return run_dir


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    return run_dir


# ------------------------------------------------------------------------------- 1: identity recorded, checked


def test_record_holds_the_three_parts_of_the_identity(finished, compose_tiny, tiny_corpus):
    metrics = read_metrics(finished)
    assert metrics["results_format"] == RESULTS_FORMAT
    cfg = compose_tiny(finished, "ffn=relu")
    apply_threads(cfg)  # the hash holds the resolved thread count, not null
    assert metrics["config_hash"] == config_hash(cfg)
    train = metrics["data_identity"]["train_files"]["train.txt"]
    assert train["bytes"] == tiny_corpus["train"].stat().st_size and len(train["sha256"]) == 64


def test_a_changed_config_is_refused_naming_the_key_and_the_record_stays(copy, compose_tiny):
    before = (copy / "metrics.json").read_bytes()
    with pytest.raises(RunIdentityError) as error:
        run(compose_tiny(copy, "ffn=relu", "optim.lr=1e-2"))
    message = str(error.value)
    assert "optim.lr" in message and "force=true" in message and "experiment_name" in message
    assert "\n" not in message
    assert (copy / "metrics.json").read_bytes() == before


def test_a_changed_data_file_is_refused_naming_it(finished, compose_tiny, tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    edited = tmp_path / "train.txt"
    text = tiny_corpus["train"].read_text()
    edited.write_text(text[:-1] + ("x" if text[-1] != "x" else "y"))  # same size, other content
    before = (run_dir / "metrics.json").read_bytes()
    with pytest.raises(RunIdentityError, match="train_files.train.txt"):
        run(compose_tiny(run_dir, "ffn=relu", f"data.train_files=[{edited}]"))
    assert (run_dir / "metrics.json").read_bytes() == before


def test_a_moved_data_file_with_the_same_content_is_the_same_run(copy, compose_tiny, tiny_corpus, tmp_path):
    moved = tmp_path / "elsewhere" / "train.txt"
    moved.parent.mkdir()
    shutil.copy(tiny_corpus["train"], moved)
    assert run(compose_tiny(copy, "ffn=relu", f"data.train_files=[{moved}]")) == read_metrics(copy)["val_loss"]


def test_an_older_results_format_is_refused(copy, compose_tiny):
    metrics = read_metrics(copy)
    metrics.pop("results_format")  # as written before run identity existed
    (copy / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunIdentityError, match=f"results format 1 \\(this code writes {RESULTS_FORMAT}\\)"):
        run(compose_tiny(copy, "ffn=relu"))


@pytest.mark.parametrize(
    "bookkeeping",
    ["experiment_name=other", "force=true", "logger=wandb", "trainer.enable_progress_bar=true",
     "data.num_workers=2", "trainer.val_check_interval=2", "paths.cache_dir=/elsewhere",
     "cpu_keep_freed_memory=false"],
)
def test_bookkeeping_keys_leave_the_hash_alone(bookkeeping, compose_tiny, tmp_path):
    assert config_hash(compose_tiny(tmp_path, bookkeeping)) == config_hash(compose_tiny(tmp_path))


@pytest.mark.parametrize("numerics", ["torch_compile=true", "optim.lr=1e-2", "seed=1", "ffn.gelu_approximate=tanh",
                                      "optim.fused=true"])
def test_what_a_run_computes_changes_the_hash(numerics, compose_tiny, tmp_path):
    assert config_hash(compose_tiny(tmp_path, numerics)) != config_hash(compose_tiny(tmp_path))


def test_bookkeeping_is_one_list():
    assert len(set(record.BOOKKEEPING_KEYS)) == len(record.BOOKKEEPING_KEYS)
    assert "torch_compile" not in record.BOOKKEEPING_KEYS


# ------------------------------------------------------------------------------ 2: weight decay by identity


def test_the_same_tensors_decay_eager_and_compiled(compose_tiny, tmp_path):
    from ffnlab.model.decoder import ModelConfig
    from ffnlab.training.module import LanguageModel

    model_cfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, seq_len=32, vocab_size=66, tie_embeddings=True)
    module = LanguageModel(model_cfg, FFNConfig(name="swiglu"), OptimConfig(), seed=0, max_steps=6)
    eager = [{id(p) for p in g["params"]} for g in decay_groups(module, 0.1)]
    module.model = torch.compile(module.model)  # renames parameters to `model._orig_mod.*`
    compiled = [{id(p) for p in g["params"]} for g in decay_groups(module, 0.1)]
    assert compiled == eager
    assert id(module.model.embed.weight) in eager[1]  # the tied embedding/head never decays


# ---------------------------------------------------------------------------------- 3: labels


@pytest.mark.parametrize(
    "options, label",
    [
        ({"name": "gelu"}, "gelu"),
        ({"name": "gelu", "gelu_approximate": "tanh"}, "gelu[gelu_approximate=tanh]"),
        ({"name": "geglu", "gelu_approximate": "sigmoid"}, "geglu[gelu_approximate=sigmoid]"),
        ({"name": "maxout", "pieces": 4}, "maxout[pieces=4]"),
        ({"name": "relu", "pieces": 4, "gelu_approximate": "tanh"}, "relu"),  # options relu does not read
        ({"name": "swish", "swish_beta_trainable": True}, "swish[swish_beta_trainable=true]"),
        ({"name": "swiglu", "swish_beta": 1.5}, "swiglu[swish_beta=1.5]"),
        ({"name": "leaky_relu", "leaky_relu_slope": 0.2}, "leaky_relu[leaky_relu_slope=0.2]"),
        ({"name": "elu", "elu_alpha": 0.5}, "elu[elu_alpha=0.5]"),
        ({"name": "prelu", "prelu_init": 0.1}, "prelu[prelu_init=0.1]"),
        ({"name": "relu", "match": "none", "budget_mult": 8.0}, "relu"),  # width settings: the setting's
    ],
)
def test_a_label_is_the_name_plus_the_options_the_variant_reads(options, label):
    assert variant_label(FFNConfig(**options)) == label


def test_the_record_carries_the_label_and_the_ffn_config(finished):
    metrics = read_metrics(finished)
    assert metrics["variant"] == "relu" and metrics["ffn_config"]["name"] == "relu"
    assert metrics["ffn_config"]["gelu_approximate"] == "none"
    # the variant's kind, from the registry: the report's gated/ungated families read it (issue 22.3)
    assert metrics["ffn_variant"] == {"kind": "plain", "gated": False, "activation": "relu"}


# ---------------------------------------------------------------------------- 4: the setting's global batch


def test_the_setting_holds_the_resolved_global_batch(finished):
    setting = read_metrics(finished)["setting"]
    assert setting["trainer.devices"] == 1 and isinstance(setting["trainer.devices"], int)
    assert (setting["trainer.num_nodes"], setting["trainer.accumulate_grad_batches"]) == (1, 1)
    assert setting["cpu_threads"] == torch.get_num_threads()
    assert setting["global_tokens_per_step"] == 4 * 32  # batch 4 x seq_len 32 x 1 device
    assert read_metrics(finished)["stack"]["cpu_threads"] == torch.get_num_threads()


def test_accumulation_changes_the_setting(compose_tiny, tmp_path):
    run(compose_tiny(tmp_path / "acc", "ffn=relu", "+trainer.accumulate_grad_batches=2", "trainer.max_steps=2"))
    setting = read_metrics(tmp_path / "acc")["setting"]
    assert setting["trainer.accumulate_grad_batches"] == 2 and setting["global_tokens_per_step"] == 2 * 4 * 32


def _group_options() -> list[str]:
    from ffnlab.config.schemas import CONF_DIR

    return [f"{group}={path.stem}" for group in ("data", "trainer", "model", "optim", "ffn", "experiment")
            for path in sorted((CONF_DIR / group).glob("*.yaml"))]


@pytest.mark.parametrize("choice", _group_options())
def test_every_config_key_is_in_the_setting_or_on_an_exclusion_list(choice, tmp_path):
    """The setting is derived from the whole config (issue 22.1): a key is in it, or on one of the commented lists
    (bookkeeping, study axes, the hardware's split of a fixed global batch), or null (what runs did before such a
    key existed). A key added to any group later lands in the setting unless someone lists it."""
    from ffnlab.config.compose import compose_config

    cfg = compose_config([choice, "paths.output_dir=unused"])
    flat = record._flatten(record.identity_config(cfg) | {"cpu_threads": 2})
    model = {key.removeprefix("model."): value for key, value in flat.items() if key.startswith("model.")}
    setting = record.setting_of(record.identity_config(cfg), model | {"seq_len": 8}, "hash",
                                {"devices": 1, "num_nodes": 1, "accumulate_grad_batches": 1})
    fixed_batch = cfg.data.get("global_batch_size") is not None
    lists = (*record.STUDY_AXES, *record.SETTING_BOOKKEEPING, *(record.HARDWARE_SPLIT if fixed_batch else ()))
    whole = record._flatten(OmegaConf.to_container(cfg, resolve=True) | {"hydra": None})
    for key, value in whole.items():
        on_a_list = record._under(key, (*record.BOOKKEEPING_KEYS, "hydra")) or (
            record._under(key, lists) and not record._under(key, record.FFN_WIDTH_KEYS))
        assert key in setting or on_a_list or value is None, f"{choice}: {key} is in no setting and on no list"
        assert not (key in setting and on_a_list), f"{choice}: {key} is listed and still in the setting"
    for key in ("data.max_epochs", "trainer.deterministic", "loss_chunk_tokens", "data.sampling"):
        assert key in setting or whole.get(key) is None


def test_runs_differing_only_in_data_sampling_are_two_groups_and_no_duplicate(compose_tiny, tmp_path):
    """data.sampling was left out of the hand-listed setting: the second run was reported as a DUPLICATE."""
    from ffnlab.report.records import group_by_setting, load_sweep

    for sampling in ("random", "no_repeat"):
        run(compose_tiny(tmp_path / "sweep" / sampling, "ffn=relu", f"+data.sampling={sampling}"))
    runs, problems = load_sweep(tmp_path / "sweep")
    assert problems == [] and len(group_by_setting(runs)) == 2
    assert {run_.setting["data.sampling"] for run_ in runs} == {"random", "no_repeat"}


def test_cadences_count_optimizer_steps_under_accumulation(compose_tiny, tmp_path, monkeypatch):
    """trainer.val_check_interval, checkpoint.every_n_steps (${trainer.val_check_interval} by default) and
    trainer.log_every_n_steps are in optimizer steps: 4 micro-batches a step, validations, checkpoints and training
    rows after steps 2, 4, 6 (issue 22.6: Lightning counted micro-batches for validation, and validated twice per
    optimizer step; it counts optimizer steps for logging). Lightning's `step` column holds the 0-based index of the
    step a row follows, so they are rows 1, 3, 5, as without accumulation (the committed studies' validations after
    step 50 are rows 49)."""
    saved_at, write = [], LastCheckpoint._write

    def write_and_note_the_step(self, trainer, tmp):
        saved_at.append(trainer.global_step)
        write(self, trainer, tmp)

    monkeypatch.setattr(LastCheckpoint, "_write", write_and_note_the_step)
    run(compose_tiny(tmp_path / "run", "ffn=relu", "+trainer.accumulate_grad_batches=4", "trainer.max_steps=6",
                     "trainer.val_check_interval=2", "trainer.log_every_n_steps=2"))
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r.get("val/loss")] == [1, 3, 5]
    assert [int(r["step"]) for r in rows if r.get("train/loss")] == [1, 3, 5]
    assert saved_at == [2, 4, 6]


# ------------------------------------------------------------------------------------ 5: run dir names


def test_long_overrides_give_a_bounded_distinct_name():
    paths = [f"/very/long/absolute/path/number/{i}/to/the/corpus/split.txt" for i in range(3)]
    overrides = ",".join(f"data.{s}_files=[{p}]" for s, p in zip(("train", "val", "test"), paths))
    name = run_dir_name(overrides + ",model.d_model=64,optim.lr=0.01")
    other = run_dir_name(overrides.replace("number/2", "number/3") + ",model.d_model=64,optim.lr=0.01")
    assert len(name.encode()) <= MAX_NAME_BYTES and name != other
    assert name.startswith("data.train_files=") and "split.txt" in name
    assert run_dir_name("ffn=relu,seed=0") == "ffn=relu,seed=0"  # short names stay as they were


# ------------------------------------------------------------------------------------ 6: the logged LR


def test_the_logged_lr_is_the_one_applied_at_that_step(finished):
    with open(finished / "csv" / "metrics.csv") as f:
        logged = {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f) if r.get("lr")}
    cfg = OptimConfig(lr=3e-3, warmup_steps=2)  # conftest.TINY_SETTINGS
    assert sorted(logged) == list(range(6))
    assert logged == pytest.approx({s: 3e-3 * lr_multiplier(s, cfg, 6) for s in range(6)}, rel=1e-6)


def test_inverse_sqrt_is_t5s_schedule_in_the_logged_lr(compose_tiny, tmp_path):
    """The paper's (T5's) schedule: lr = peak · sqrt(warmup / max(step, warmup)): the peak at a warmup step, half
    of it at 4 x warmup (issue 22.4: it once ramped up linearly first)."""
    run(compose_tiny(tmp_path / "run", "ffn=relu", "optim.schedule=inverse_sqrt", "optim.warmup_steps=2",
                     "trainer.max_steps=9"))
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        logged = {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f) if r.get("lr")}
    assert logged[0] == logged[1] == pytest.approx(3e-3, rel=1e-6)
    assert logged[8] == pytest.approx(3e-3 / 2, rel=1e-6)


# ------------------------------------------------------------------------------------ 7: one last.ckpt


@pytest.mark.parametrize("how", ["force", "killed"])
def test_a_rerun_leaves_exactly_one_newest_last_ckpt(how, copy, compose_tiny):
    if how == "killed":
        (copy / "metrics.json").unlink()  # what a killed run leaves: config.yaml and checkpoints, no record
    run(compose_tiny(copy, "ffn=relu", "trainer.max_steps=4", *(["force=true"] if how == "force" else [])))
    # two generations (issue 23.2): the newest and the one before it, both this run's
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["last.ckpt", "previous.ckpt"]
    # Anywhere in the run dir: Lightning's default ModelCheckpoint once wrote csv/checkpoints/epoch=0-step=N.ckpt too.
    (stale,) = copy.glob("checkpoints.stale-*")  # the earlier attempt's, kept aside (issue 22.9)
    found = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*.ckpt") if p.parent.name == "checkpoints")
    assert found == ["checkpoints/last.ckpt", "checkpoints/previous.ckpt"]
    assert {p.parent for p in copy.rglob("*.ckpt")} == {copy / "checkpoints", stale}
    checkpoint = torch.load(copy / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 4  # this run's, not the 6-step one before it
    assert torch.load(copy / "checkpoints" / "previous.ckpt", map_location="cpu", weights_only=False)["global_step"] == 3


def test_when_no_checkpoint_loads_the_run_says_so_and_starts_over(copy, compose_tiny, caplog):
    """Both generations damaged (issue 23.2): one line naming each, then step 0; the files are kept aside."""
    (copy / "metrics.json").write_text(json.dumps(read_metrics(copy) | {"status": "running"}))
    last = copy / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (copy / "checkpoints" / "previous.ckpt").write_bytes(b"")
    with caplog.at_level("WARNING", logger="ffnlab"):
        run(compose_tiny(copy, "ffn=relu"))
    said = [r.getMessage() for r in caplog.records if "no checkpoint loads" in r.getMessage()]
    assert len(said) == 1 and "starting from step 0" in said[0]
    assert "last.ckpt is unreadable" in said[0] and "previous.ckpt is unreadable" in said[0]
    assert read_metrics(copy)["status"] == "finished"
    assert len(list(copy.glob("checkpoints.stale-*"))) == 1


def test_a_checkpoint_of_another_run_is_not_resumed_without_its_record(copy, compose_tiny, caplog):
    """The identity in the checkpoint guards a resume when metrics.json is gone: another seed starts over, naming
    the keys that differ (issue 23.4)."""
    (copy / "metrics.json").unlink()
    with caplog.at_level("INFO", logger="ffnlab"):
        run(compose_tiny(copy, "ffn=relu", "seed=1"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "resuming from" not in text and "differs in config keys data.seed: 0 -> 1, seed: 0 -> 1" in text


@pytest.mark.parametrize("change", ["another key", "another thread count"])
def test_a_checkpoint_that_cannot_be_continued_is_moved_aside_not_deleted(change, copy, compose_tiny, caplog,
                                                                          monkeypatch):
    """An unfinished run re-run with another config (a changed key, or the issue's case: another thread count, which
    moves CPU float results) starts from step 0; its checkpoint is compute: kept in checkpoints.stale-<time>/, one line
    says so, and the report does not take that dir for a run (issue 22.9: it was deleted)."""
    from ffnlab.report.records import find_run_dirs

    (copy / "metrics.json").write_text(json.dumps(read_metrics(copy) | {"status": "running"}))
    before = (copy / "checkpoints" / "last.ckpt").read_bytes()
    threads = default_threads()
    override, difference = {
        "another key": ("trainer.gradient_clip_val=0.5", "trainer.gradient_clip_val: 1.0 -> 0.5"),
        "another thread count": (f"cpu_threads={threads + 1}", f"cpu_threads: {threads} -> {threads + 1}"),
    }[change]
    monkeypatch.setenv("OMP_NUM_THREADS", str(threads))  # apply_threads sets it; restored after the test
    try:
        with caplog.at_level("WARNING", logger="ffnlab"):
            run(compose_tiny(copy, "ffn=relu", override))
    finally:
        torch.set_num_threads(threads)
    (stale,) = copy.glob("checkpoints.stale-*")
    assert (stale / "last.ckpt").read_bytes() == before
    said = [r.getMessage() for r in caplog.records if "checkpoints.stale-" in r.getMessage()]
    assert len(said) == 1 and difference in said[0] and "step 0" in said[0], said
    assert find_run_dirs(copy.parent) == [copy]


def test_checkpoints_moved_aside_within_one_second_are_all_kept_in_order(tmp_path, monkeypatch):
    """The stamp is to the second; a second move in that second must not overwrite or fail on the first."""
    one_second = time.gmtime()
    monkeypatch.setattr(time, "gmtime", lambda *_: one_second)
    for attempt in (b"first", b"second", b"third"):
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "last.ckpt").write_bytes(attempt)
        set_aside(tmp_path / "checkpoints")
    kept = sorted(tmp_path.glob("checkpoints.stale-*"))
    assert [(dir_ / "last.ckpt").read_bytes() for dir_ in kept] == [b"first", b"second", b"third"]
    assert not (tmp_path / "checkpoints").exists()


# ------------------------------------------------------------------ keys added to ffnlab after a run finished


def as_if_recorded_before_model_init(run_dir: Path) -> None:
    """Rewrite a record as a run from before `model.init` existed would have left it."""
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    del config["model"]["init"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = read_metrics(run_dir)
    metrics["config_hash"] = config_hash(config)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def test_a_key_added_later_at_its_default_keeps_the_run(copy, compose_tiny):
    as_if_recorded_before_model_init(copy)
    assert run(compose_tiny(copy, "ffn=relu")) == read_metrics(copy)["val_loss"]


def test_a_key_added_later_set_otherwise_is_refused(copy, compose_tiny):
    as_if_recorded_before_model_init(copy)
    with pytest.raises(RunIdentityError, match="model.init: <absent> -> t5"):
        run(compose_tiny(copy, "ffn=relu", "model.init=t5"))


def test_checkpoint_cadence_in_minutes(compose_tiny, tmp_path, monkeypatch):
    """checkpoint.every_n_minutes=0 (and no step cadence): a save at every optimizer step, and one at the end."""
    from ffnlab.training.checkpoint import LastCheckpoint

    saved = []
    save = LastCheckpoint.save
    monkeypatch.setattr(
        LastCheckpoint, "save", lambda self, trainer: saved.append(trainer.global_step) or save(self, trainer)
    )
    run(compose_tiny(tmp_path / "run", "ffn=relu", "checkpoint.every_n_steps=null", "checkpoint.every_n_minutes=0"))
    assert sorted(set(saved)) == [1, 2, 3, 4, 5, 6]


# ------------------------------------------------------------------------------------- global batch and budget


def test_a_token_budget_over_a_global_batch_gives_the_same_steps_on_one_or_two_devices(compose_tiny, tmp_path):
    from ffnlab.distributed.budget import apply_budget

    resolved = {}
    for devices in (1, 2):
        cfg = compose_tiny(tmp_path, f"trainer.devices={devices}", "data.global_batch_size=8", "data.batch_size=2",
                           "train_tokens=25600")
        apply_budget(cfg)
        resolved[devices] = (cfg.trainer.max_steps, cfg.data.batch_size, cfg.trainer.accumulate_grad_batches)
    assert resolved == {1: (100, 2, 4), 2: (100, 2, 2)}  # 25,600 tokens / (8 x 32) steps either way


@pytest.mark.parametrize("overrides, words", [
    (["trainer.devices=2", "data.global_batch_size=7"], "cannot be split evenly over 2"),
    (["data.global_batch_size=12", "data.batch_size=5"], "not a multiple of data.batch_size=5"),
    (["train_tokens=10"], "less than one step"),
])
def test_an_uneven_global_batch_or_a_tiny_budget_is_one_line(compose_tiny, tmp_path, overrides, words):
    from ffnlab.distributed.budget import apply_budget
    from ffnlab.config.errors import ConfigError

    with pytest.raises(ConfigError, match=words) as error:
        apply_budget(compose_tiny(tmp_path, *overrides))
    assert "\n" not in str(error.value)


def test_train_tokens_and_max_steps_on_one_command_line_refuse(train_cli, tmp_path):
    done = train_cli("train_tokens=1000", "trainer.max_steps=5", f"hydra.run.dir={tmp_path}/run")
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "give one of them" in output and "Traceback" not in output
