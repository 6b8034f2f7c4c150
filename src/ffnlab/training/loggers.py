"""Loggers beyond the always-on CSV history. wandb goes offline by itself when no API key is configured."""

from __future__ import annotations

import inspect
import logging
import netrc
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger("ffnlab")

WANDB_DEFAULT_BASE_URL = "https://api.wandb.ai"


def wandb_api_key_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """True when WANDB_API_KEY is set, or `wandb login` stored a key for the W&B server in ~/.netrc
    (or the file NETRC names), where wandb itself looks for it: under the host of WANDB_BASE_URL."""
    if environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_BASE_URL).netloc
    # An explicit path, as wandb passes it: netrc's default path also refuses group-readable files.
    path = Path(environ.get("NETRC") or "~/.netrc").expanduser()
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


REACH_TIMEOUT_S = 5.0
_said_unreachable: set[str] = set()  # servers already reported unreachable in this process (say it once)


def wandb_reachable(environ: Mapping[str, str] = os.environ, timeout_s: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the W&B server opens within `timeout_s` (wandb itself would retry for minutes)."""
    parts = urlsplit(environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_BASE_URL)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_wandb_mode(mode: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """`mode` if given, else WANDB_MODE if set, else online with an API key and a reachable server, offline
    otherwise (an unreachable server is said once per process: a sweep's every point would repeat it)."""
    chosen = mode or environ.get("WANDB_MODE")
    if chosen:
        return chosen
    if not wandb_api_key_configured(environ):
        return "offline"
    if wandb_reachable(environ):
        return "online"
    server = environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_BASE_URL
    if server not in _said_unreachable:
        _said_unreachable.add(server)
        log.warning("wandb: an API key is configured but %s cannot be reached within %.0f s: logging offline "
                    "(upload later with `wandb sync`)", server, REACH_TIMEOUT_S)
    return "offline"


def wandb_logger(
    project: str, group: str, name: str, tags: list[str], save_dir: str, mode: str | None = None, **kwargs
) -> WandbLogger:
    """A WandbLogger in the mode `resolve_wandb_mode` picks.

    Offline runs land in <save_dir>/wandb/ and upload later with `wandb sync <that dir>/offline-run-*`.
    The mode goes to wandb.init, not to WandbLogger(offline=...): that flag also sets WANDB_MODE in
    os.environ, which would then decide the mode of every later job of a multirun.
    """
    mode = resolve_wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=project, group=group, name=name, tags=list(tags), save_dir=save_dir, mode=mode, **kwargs)


SET_BY_FFNLAB = ("id", "resume", "experiment")  # a resumed run continues its wandb run (ffnlab.training.run passes these)


def wandb_logger_keys() -> list[str]:
    """The `logger.wandb` keys wandb_logger takes: its own arguments, then WandbLogger's and wandb.init's (where its
    **kwargs end up), less those ffnlab sets itself."""
    import wandb

    keys: dict[str, None] = {}
    for function in (wandb_logger, WandbLogger.__init__, wandb.init):
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY) and parameter.name not in (
                    "self", *SET_BY_FFNLAB):
                keys[parameter.name] = None
    return list(keys)
