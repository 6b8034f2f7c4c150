"""Keys never reach a record (issue 14): a secret given on the command line is moved into the environment variable
its library reads, before Hydra sees the command line.

Hydra would otherwise write it into `.hydra/overrides.yaml`, `multirun.yaml`, `config.yaml`, the run dir's name and
its log; wandb would store it among the run's args. `logger.wandb.api_key=...` (or `wandb_api_key=...`) becomes
`WANDB_API_KEY`, `hf_token=...` (a token under any key naming the hub) `HF_TOKEN`; any other key that looks like a
secret (`*key`, `*token`, `*password`, `*secret`, `*credentials`: `+logger.wandb.access_key=...`, issue 23.11) is
refused in one line, since nothing in ffnlab would read it but the record (and guessing it is the API key would
hide a typo).
"""

from __future__ import annotations

import os
import re

from ffnlab.config.errors import ConfigError

# On the last part of a key: `train_tokens`, `data.tokenizer` and `exclude_keys` are settings, not secrets.
_SECRET = re.compile(r"(key|token|password|passwd|secret|credentials?)$", re.IGNORECASE)
_WANDB_KEY = re.compile(r"(wandb_)?api_?key", re.IGNORECASE)
_HUB_TOKEN = re.compile(r"(hf_|hub_|hf_hub_|huggingface_)?token", re.IGNORECASE)


def destination(key: str) -> str | None:
    """The environment variable for a secret-looking override key; None for a key that is not a secret."""
    last = key.lstrip("+~").rsplit(".", 1)[-1]
    if not _SECRET.search(last):
        return None
    if _WANDB_KEY.fullmatch(last):
        return "WANDB_API_KEY"
    lowered = key.lower()
    if _HUB_TOKEN.fullmatch(last) and ("hf" in lowered or "hub" in lowered or "hugging" in lowered):
        return "HF_TOKEN"
    raise ConfigError(f"{key.lstrip('+~')}=... looks like a secret and would be recorded with the run (its directory "
                      "name, .hydra/, config.yaml); ffnlab reads no such key: give wandb's key as WANDB_API_KEY (or "
                      "logger.wandb.api_key=...), the hub's token as HF_TOKEN (or hf_token=...)")


def take(argv: list[str]) -> list[str]:
    """argv without its secrets, which are now in os.environ."""
    kept = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        where = destination(key) if sep and not arg.startswith("-") else None
        if where is None:
            kept.append(arg)
        else:
            os.environ[where] = value.strip("'\"")
    return kept
