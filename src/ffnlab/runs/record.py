"""The run record and the run's identity: the contract between training, re-runs of a sweep and the report.

A run dir holds `config.yaml` (the resolved config, written when a run starts) and `metrics.json` (written when
it ends). A directory with `config.yaml` and no finished `metrics.json` is an unfinished run. Both files are
written to a temporary name and renamed, so a reader (the report, a re-run of the sweep) never sees a
half-written file, and a crash never damages a finished run's results.

A run is identified by three things, all in `metrics.json`:
  - `config_hash`: the resolved config minus `BOOKKEEPING_KEYS` (what a run computes, not where it writes);
  - `data_identity`: sizes and content hashes of local data files, or name, config and revision of hub data;
  - `results_format`: `RESULTS_FORMAT`, bumped by any commit that changes what a run computes.
A finished run is reused only when all three match; otherwise the point refuses to run over it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from ffnlab.runs.atomic import write_atomic
from ffnlab.config.errors import ConfigError

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"

# Bump in any commit that changes what a run computes (numerics, data order, what is logged as a result), so
# records written before it are never reused as if they were today's.
#   1: records without `results_format` (before run identity)
#   2: weight decay chosen by parameter identity; `lr` logged at the step it is applied
RESULTS_FORMAT = 2

# Config keys that say where and how a run reports, not what it computes: left out of `config_hash`.
# A key drops its whole subtree. Data file *paths* are here because their content is in `data_identity`:
# moving a corpus (or the repo) does not make a new run, editing it does.
BOOKKEEPING_KEYS = (
    "experiment_name",
    "force",
    "resume",
    "checkpoint",  # cadence of checkpoints
    "logger",
    "paths",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.enable_checkpointing",  # Lightning's own ModelCheckpoint (off: ffnlab.training.checkpoint saves)
    "trainer.val_check_interval",  # cadence of validation and checkpoints, not numerics
    "trainer.log_every_n_steps",
    "data.num_workers",
    "data.num_proc",  # preparation processes: the shards are byte-identical for any number
    "data.shard_tokens",  # how the ids are cut into files, not which ids
    "data.verify_cache",
    "data.cache_dir",
    "data.files",
    "data.train_files",
    "data.val_files",
    "data.test_files",
    "peak_flops",  # the denominator of MFU
    "cpu_keep_freed_memory",  # where freed memory goes (ffnlab.training.allocator), not the values computed
    # A fine-tune's inputs are identified by content (ffnlab.downstream.finetune.input_identity): the pre-training
    # run by its identity, local task files by their hashes; where they lie is bookkeeping.
    "finetune.init_from",
    "data.local_dir",
    "data.task_options.shakespeare_speaker.files",
)

# Keys added to the config after runs had already recorded their value elsewhere in the record: a record whose
# config.yaml lacks the key is the same run when that recorded value equals the key's value now.
RECORDED_BEFORE = {"cpu_threads": ("setting", "cpu_threads")}

FORCE_HINT = "pass force=true to re-run it from scratch, or set a new experiment_name to keep both"


class RunIdentityError(ConfigError):
    """A finished run in this run dir is not the run asked for: refuse rather than return or overwrite it."""


# ------------------------------------------------------------------------------------------ identity


def _drop(tree: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        tree = tree.get(key)
        if not isinstance(tree, dict):
            return
    tree.pop(last, None)


# Accelerators whose float results do not depend on torch's CPU thread count (only their input pipeline does).
NOT_CPU = ("gpu", "cuda", "mps", "tpu", "xla", "hpu")


def _threads_count(tree: dict) -> bool:
    """Whether `cpu_threads` moves the numbers of this run: on a CPU (a GEMM's sums are split by thread) it does."""
    return str((tree.get("trainer") or {}).get("accelerator", "cpu")) not in NOT_CPU


def identity_config(cfg: DictConfig | dict) -> dict:
    """The resolved config minus BOOKKEEPING_KEYS (and `cpu_threads` off the CPU): what `config_hash` hashes."""
    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else json.loads(json.dumps(cfg))
    tree.pop("hydra", None)
    for key in BOOKKEEPING_KEYS:
        _drop(tree, key)
    if not _threads_count(tree):
        tree.pop("cpu_threads", None)
    return tree


def _digest(tree) -> str:
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_hash(cfg: DictConfig | dict) -> str:
    return _digest(identity_config(cfg))


def run_identity(cfg: DictConfig, data_identity: dict) -> dict:
    return {"results_format": RESULTS_FORMAT, "config_hash": config_hash(cfg), "data_identity": data_identity}


def _flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def identity_differences(
    record: dict, identity: dict, recorded_config: dict | None, config: DictConfig, defaults: dict | None = None
) -> list[str]:
    """What differs between a finished record (and its config.yaml) and the run asked for (its identity and
    config), as short phrases; [] when it is the same run.

    A key that the recorded config lacks is no difference when its value now is null, its schema default
    (`defaults`, dotted keys) or the value the record holds for it elsewhere (`RECORDED_BEFORE`): a key added to
    ffnlab after a run finished, left at what that run did, does not change what it computed, so committed study
    records stay reusable as the framework grows."""
    defaults = defaults or {}
    found = []
    if record.get("results_format", 1) != identity["results_format"]:
        found.append(f"results format {record.get('results_format', 1)} (this code writes {RESULTS_FORMAT})")
    if record.get("config_hash") != identity["config_hash"]:
        if recorded_config is None:
            found.append("config (no readable config.yaml to name the keys)")
        else:
            old, new = _flatten(identity_config(recorded_config)), _flatten(identity_config(config))
            keys = sorted(
                k for k in old.keys() | new.keys()
                if old.get(k, "<absent>") != new.get(k, "<absent>")
                and not (k not in old and new[k] in (defaults.get(k), _recorded_before(record, k)))
            )
            shown = ", ".join(f"{k}: {old.get(k, '<absent>')} -> {new.get(k, '<absent>')}" for k in keys[:6])
            if keys:
                found.append(f"config keys {shown}{' ...' if len(keys) > 6 else ''}")
    old_data, new_data = record.get("data_identity"), identity["data_identity"]
    if old_data != new_data:
        found.append("data " + _data_difference(old_data, new_data))
    return found


def _recorded_before(record: dict, key: str):
    """The value a record holds for `key` elsewhere (RECORDED_BEFORE), or None."""
    node = record if key in RECORDED_BEFORE else None
    for part in RECORDED_BEFORE.get(key, ()):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _data_difference(old, new) -> str:
    if not isinstance(old, dict):
        return "identity (the record has none)"
    old_files, new_files = _flatten(old), _flatten(new)
    changed = sorted(k for k in old_files.keys() | new_files.keys() if old_files.get(k) != new_files.get(k))
    return ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else "")


def check_same_run(
    run_dir: Path, record: dict, identity: dict, config: DictConfig, defaults: dict | None = None
) -> None:
    """Raise RunIdentityError, in one line, when the finished `record` in run_dir is not the run asked for."""
    differences = identity_differences(record, identity, read_config(run_dir), config, defaults)
    if differences:
        raise RunIdentityError(
            f"{run_dir} holds a finished run that differs from this one in {'; '.join(differences)}: "
            f"refusing to reuse or overwrite it; {FORCE_HINT}"
        )


def read_config(run_dir: Path) -> dict | None:
    """The run's resolved config.yaml as a dict; None when absent or unreadable."""
    return _read_yaml(Path(run_dir) / CONFIG_FILE)


def _read_yaml(path: Path) -> dict | None:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


# ------------------------------------------------------------------------------------ the comparison setting
#
# The setting is everything that defines a comparison: the report pools runs only when their settings are equal, and
# calls two runs of one (setting, variant, lr, seed) a duplicate. It is derived, not listed: the identity config
# (what the run computes, above) minus the lists below (study axes, setting bookkeeping, and with a fixed global
# batch the hardware's split of it); so a key added to the config later is in the setting
# unless it is put on a list, and tests/test_identity.py fails for a key that is on neither side.

# What varies inside a study: the report compares runs across these, never pools over them. `ffn` is the variant and
# its options (its label); the width settings of the ffn group are the comparison's condition, kept by FFN_WIDTH_KEYS.
STUDY_AXES = ("ffn", "seed", "data.seed", "optim.lr")
FFN_WIDTH_KEYS = ("ffn.match", "ffn.budget_mult", "ffn.multiple_of")

# In the identity (they change a logged number) but not in what is compared: cadences of validation and logging, and
# what fit's intermediate validations score (the final validation and the test always score whole splits).
SETTING_BOOKKEEPING = (
    "trainer.num_sanity_val_steps",
    "trainer.check_val_every_n_epoch",
    "trainer.strategy.save_distributed_checkpoint",  # how a checkpoint is laid out on disk
    "data.fit_val_windows",
)

# With `data.global_batch_size` fixed, a study leaves to the hardware how the batch is split (ffnlab.distributed.budget): these
# then leave the setting too, so runs on 1 or 8 GPUs, DDP or FSDP, pool (their float results differ in summation
# order only). Without it they are the global batch, and stay.
HARDWARE_SPLIT = ("data.batch_size", "trainer.devices", "trainer.num_nodes", "trainer.accumulate_grad_batches",
                  "trainer.strategy")

SETTING_FORMAT = 2  # 1: the hand-listed setting before issue 22 (upgraded on reading: upgrade_setting)


def _under(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def setting_of(identity: dict, model: dict, data_hash: str, launch: dict) -> dict:
    """The comparison setting, as flat dotted keys, from a run's identity config (`identity_config`) and what only
    the run could resolve: `model` (the built ModelConfig: vocab_size from the tokenizer), `data_hash` (text and
    tokenizer) and `launch` (devices, num_nodes and accumulate_grad_batches as the Trainer resolved them).

    A key at null is left out: null is what runs did before such a key existed, so a study continued after a key is
    added still pools with its older records."""
    flat = _flatten(identity)
    flat |= {f"model.{key}": value for key, value in model.items()}
    flat |= {f"trainer.{key}": launch[key] for key in ("devices", "num_nodes", "accumulate_grad_batches")}
    fixed_batch = flat.get("data.global_batch_size")
    world = launch["devices"] * launch["num_nodes"]
    global_batch = fixed_batch or flat["data.batch_size"] * world * launch["accumulate_grad_batches"]
    dropped = (*BOOKKEEPING_KEYS, *STUDY_AXES, *SETTING_BOOKKEEPING, *(HARDWARE_SPLIT if fixed_batch else ()))
    setting = {key: value for key, value in flat.items()
               if value is not None and (not _under(key, dropped) or _under(key, FFN_WIDTH_KEYS))}
    return setting | {"data_hash": data_hash, "global_batch_size": global_batch,
                      "global_tokens_per_step": global_batch * model["seq_len"]}


def comparison_setting(cfg: DictConfig, model: dict, data_hash: str, launch: dict) -> dict:
    """The setting of the run `cfg` asks for (see setting_of)."""
    return setting_of(identity_config(cfg), model, data_hash, launch)


# Setting format 1's keys -> today's names (the report reads records of either format).
_V1_NAMES = {"data": "data.name", "tokenizer": "data.tokenizer", "max_steps": "trainer.max_steps",
             "batch_size": "data.batch_size", "devices": "trainer.devices", "num_nodes": "trainer.num_nodes",
             "accumulate_grad_batches": "trainer.accumulate_grad_batches", "precision": "trainer.precision",
             "gradient_clip_val": "trainer.gradient_clip_val", "ffn_match": "ffn.match",
             "ffn_budget_mult": "ffn.budget_mult", "ffn_multiple_of": "ffn.multiple_of"}
_V1_MODEL = ("d_model", "n_layers", "n_heads", "n_kv_heads", "seq_len", "vocab_size", "tie_embeddings", "rope_theta",
             "norm_eps", "init", "init_std")  # the built ModelConfig's fields, which format 1 held unprefixed


def _v1_name(key: str) -> str:
    if key in _V1_NAMES:
        return _V1_NAMES[key]
    if key.startswith("optim_"):
        return "optim." + key.removeprefix("optim_")
    return "model." + key if key in _V1_MODEL else key


def upgrade_setting(record: dict, config: dict | None) -> dict:
    """The setting of a record in today's format. A format-1 record's keys are renamed, and, when its config.yaml is
    at hand, the setting is derived from it as a run today would (the keys format 1 left out), with the resolved
    model, data hash and launch taken from the old setting."""
    setting = record.get("setting")
    if record.get("setting_format", 1) >= SETTING_FORMAT or not isinstance(setting, dict):
        return setting
    renamed = {_v1_name(key): value for key, value in setting.items()}
    if not config:
        return renamed
    identity = identity_config(config)
    if "cpu_threads" in setting and identity.get("cpu_threads") is None and _threads_count(identity):
        identity["cpu_threads"] = setting["cpu_threads"]  # RECORDED_BEFORE: format 1 held it in the setting only
    model = {key[len("model."):]: value for key, value in renamed.items() if key.startswith("model.")}
    launch = {key: renamed.get(f"trainer.{key}", 1) for key in ("devices", "num_nodes", "accumulate_grad_batches")}
    try:
        return renamed | setting_of(identity, model, setting["data_hash"], launch)
    except (KeyError, TypeError):  # a config.yaml too partial to derive from: the renamed setting is all there is
        return renamed


# ---------------------------------------------------------------------------------------------- files


def read_metrics(run_dir: Path) -> dict | None:
    """The run's metrics.json, or None when absent or unreadable (an unreadable one is not 'finished')."""
    try:
        record = json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_finished(record: dict | None) -> bool:
    return isinstance(record, dict) and record.get("status") == "finished"


def write_config(run_dir: Path, cfg: DictConfig) -> None:
    text = OmegaConf.to_yaml(cfg, resolve=True)
    write_atomic(Path(run_dir) / CONFIG_FILE, lambda tmp: tmp.write_text(text))


def write_metrics(run_dir: Path, metrics: dict) -> None:
    text = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    write_atomic(Path(run_dir) / METRICS_FILE, lambda tmp: tmp.write_text(text))


def clear_metrics(run_dir: Path) -> None:
    """Drop a stale (failed, or forced-over) record before a run starts again."""
    (Path(run_dir) / METRICS_FILE).unlink(missing_ok=True)
