"""Compose conf/train.yaml in-process (scripts and tests), the way `python train.py` would."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ffnlab import config


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The resolved-on-access config for these Hydra overrides (no Hydra run directory is made)."""
    config.register()
    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))
