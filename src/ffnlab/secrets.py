"""Keys never reach a record (issue 14): a secret given on the command line is moved into the environment variable
its library reads, before Hydra sees the command line.

Hydra would otherwise write it into `.hydra/overrides.yaml`, `multirun.yaml`, `config.yaml`, the run dir's name and
its log; wandb would store it among the run's args. `logger.wandb.api_key=...` (or `wandb_api_key=...`) becomes
`WANDB_API_KEY`, `hf_token=...` (any key naming the hub) `HF_TOKEN`; any other key that looks like a secret
(`*api_key`, `*token`, `*password`, `*secret`) is refused in one line, since nothing in ffnlab would read it but
the record.
"""

from __future__ import annotations

import os
import re

from ffnlab.errors import ConfigError

_SECRET = re.compile(r"(api_?key|token|password|secret)$", re.IGNORECASE)


def destination(key: str) -> str | None:
    """The environment variable for a secret-looking override key; None for a key that is not a secret."""
    last = key.lstrip("+~").rsplit(".", 1)[-1]
    if not _SECRET.search(last):
        return None
    lowered = key.lower()
    if "wandb" in lowered or re.fullmatch(r"api_?key", last, re.IGNORECASE):
        return "WANDB_API_KEY"
    if "hf" in lowered or "hub" in lowered or "hugging" in lowered:
        return "HF_TOKEN"
    raise ConfigError(f"{key.lstrip('+~')}=... looks like a secret and would be recorded with the run; ffnlab reads "
                      "none such key: put it in the environment its library reads instead")


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
