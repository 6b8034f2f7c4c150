"""Typed config schemas and resolvers, registered with Hydra before any config is composed.

The dataclasses that the modules take as constructor arguments are also the schemas of their config
groups (conf/ffn/*.yaml, conf/model/*.yaml, conf/optim/*.yaml start with `defaults: [schema]`), so a
misspelt key or a wrongly typed value fails at composition, before any data is touched.
"""

from __future__ import annotations

import re
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ffnlab.ffn import FFNConfig
from ffnlab.model import ModelConfig
from ffnlab.optim import OptimConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"


def run_dir_name(override_dirname: str) -> str:
    """A run's directory name from its overrides (deterministic, so a re-run finds its own records)."""
    if not override_dirname:
        return "default"
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", override_dirname)


def register() -> None:
    """Idempotent: stores the schemas and resolvers Hydra needs to compose conf/train.yaml."""
    cs = ConfigStore.instance()
    cs.store(group="ffn", name="schema", node=FFNConfig)
    cs.store(group="model", name="schema", node=ModelConfig)
    cs.store(group="optim", name="schema", node=OptimConfig)
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("run_dir_name"):
        OmegaConf.register_new_resolver("run_dir_name", run_dir_name)


def to_dataclass(cls, node: DictConfig):
    """Build a config dataclass from its (already schema-checked) group node."""
    return cls(**OmegaConf.to_container(node, resolve=True))
