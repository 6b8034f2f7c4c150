"""Typed config schemas and resolvers, registered with Hydra before any config is composed.

The dataclasses that the modules take as constructor arguments are also the schemas of their config
groups (conf/ffn/*.yaml, conf/model/*.yaml, conf/optim/*.yaml start with `defaults: [/schema/<group>@_here_]`), so a
misspelt key or a wrongly typed value fails at composition, before any data is touched.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ffnlab.config.errors import ConfigError
from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import ModelConfig
from ffnlab.training.optim import OptimConfig

REPO_ROOT = Path(__file__).resolve().parents[3]
CONF_DIR = REPO_ROOT / "conf"


MAX_VALUE_CHARS = 32  # an override's value longer than this is cut (absolute paths, long lists)
MAX_NAME_BYTES = 200  # under the 255-byte file name limit of common filesystems, with room for Hydra's suffixes


def run_dir_name(override_dirname: str) -> str:
    """A run's directory name from its overrides: readable, deterministic (a re-run finds its own records) and
    bounded. Long values keep their head and tail; whenever anything is cut, a hash of the whole override string
    is appended, so two runs never share a directory because their names were shortened alike."""
    if not override_dirname:
        return "default"
    parts = []
    for override in override_dirname.split(","):
        key, sep, value = override.partition("=")
        if len(value) > MAX_VALUE_CHARS:
            value = f"{value[:8]}~{value[-(MAX_VALUE_CHARS - 9):]}"
        parts.append(key + sep + value)
    name = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", ",".join(parts))
    cut = name != re.sub(r"[^A-Za-z0-9_.,=+-]", "_", override_dirname)
    if cut or len(name) > MAX_NAME_BYTES:
        digest = hashlib.sha256(override_dirname.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME_BYTES - 9]}-{digest}"
    return name


def fraction_of(steps: int, fraction: float) -> int:
    """`${fraction_of:${trainer.max_steps},0.1}`: a step count that scales with the budget (warmup, cadence)."""
    return max(1, round(int(steps) * float(fraction)))


def register() -> None:
    """Idempotent: stores the schemas and resolvers Hydra needs to compose conf/train.yaml."""
    cs = ConfigStore.instance()
    for group, cls in SCHEMAS.items():
        # Their own group, not `<group>/schema`: Hydra would list "schema" among a group's choices (issue 14).
        cs.store(group="schema", name=group, node=cls)
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("run_dir_name"):
        OmegaConf.register_new_resolver("run_dir_name", run_dir_name)
    if not OmegaConf.has_resolver("fraction_of"):
        OmegaConf.register_new_resolver("fraction_of", fraction_of)


SCHEMAS = {"ffn": FFNConfig, "model": ModelConfig, "optim": OptimConfig}


def schema_defaults() -> dict:
    """Dotted key -> default of every typed group's field that has one, e.g. {"model.init": "gpt2", ...}."""
    found = {}
    for group, cls in SCHEMAS.items():
        for field in dataclasses.fields(cls):
            if field.default is not dataclasses.MISSING:
                found[f"{group}.{field.name}"] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                found[f"{group}.{field.name}"] = field.default_factory()
    return found


def check_keys(group: str, keys: Iterable[str], accepted: Sequence[str]) -> None:
    """ConfigError for the first key of `group` that is not in `accepted`, naming the accepted ones, closest first
    (a schema stops a misspelt key, but `+model.d_modle=8` adds one anyway, and untyped groups take anything)."""
    for key in keys:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=3, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            ordered = [*close, *(name for name in accepted if name not in close)]
            raise ConfigError(f"{group}.{key} is not a key of {group}{hint}; accepted: {', '.join(ordered)}")


def to_dataclass(cls, node: DictConfig, **fields):
    """Build a config dataclass from its group node (plus `fields`), refusing a key the dataclass lacks."""
    group = next((name for name, schema in SCHEMAS.items() if schema is cls), cls.__name__)
    check_keys(group, node.keys(), [field.name for field in dataclasses.fields(cls)])
    return cls(**(OmegaConf.to_container(node, resolve=True) | fields))
