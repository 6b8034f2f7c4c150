"""Loggers beyond the always-on CSV history. wandb goes offline by itself when no API key is configured."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_api_key_configured() -> bool:
    """True when `wandb login` or WANDB_API_KEY gave this machine a key (wandb keeps it in ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def wandb_logger(
    project: str, group: str, name: str, tags: list[str], save_dir: str, mode: str | None = None, **kwargs
) -> WandbLogger:
    """A WandbLogger; `mode` null means: WANDB_MODE if set, else online with a key and offline without.

    Offline runs land in <save_dir>/wandb/ and upload later with `wandb sync <that dir>/offline-run-*`.
    """
    mode = mode or os.environ.get("WANDB_MODE") or ("online" if wandb_api_key_configured() else "offline")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project, group=group, name=name, tags=list(tags), save_dir=save_dir,
        offline=mode == "offline", mode=mode, **kwargs,
    )
