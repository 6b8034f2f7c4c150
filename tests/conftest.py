"""Shared fixtures for end-to-end runs: a tiny model on a tiny excerpt of the embedded corpus, one
token cache per test session (tokenized once), and the same settings as a Hydra experiment overlay
for `python train.py` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "tinyshakespeare" / "input.txt"

# Small enough for a run in a few seconds on 2 shared cores; log every step so 6 steps leave a train/loss history.
TINY_SETTINGS = {
    "model.d_model": 32,
    "model.n_layers": 1,
    "model.n_heads": 2,
    "model.seq_len": 32,
    "data.vocab_size": 300,
    "data.batch_size": 4,
    "data.eval_batch_size": 64,
    "trainer.max_steps": 6,
    "trainer.val_check_interval": 3,
    "trainer.log_every_n_steps": 1,
    "trainer.enable_progress_bar": False,
    "optim.warmup_steps": 2,
}
# Characters of the corpus per split: the validation and test splits fit in one evaluation batch.
SPLIT_CHARS = {"train": 40_000, "val": 4_000, "test": 4_000}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One token cache for the session: the corpus below is tokenized by the first run only."""
    return tmp_path_factory.mktemp("ffnlab_cache")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> dict[str, Path]:
    """Consecutive excerpts of tiny-shakespeare as data=text_files train/val/test files."""
    text = CORPUS.read_text(encoding="utf-8")
    root = tmp_path_factory.mktemp("tiny_corpus")
    files, start = {}, 0
    for split, n_chars in SPLIT_CHARS.items():
        files[split] = root / f"{split}.txt"
        files[split].write_text(text[start : start + n_chars], encoding="utf-8")
        start += n_chars
    return files


@pytest.fixture(scope="session")
def tiny_overrides(tiny_corpus, cache_dir) -> list[str]:
    """Hydra overrides for a tiny in-process run (add paths.output_dir=...)."""
    return [
        "data=text_files",
        f"data.train_files=[{tiny_corpus['train']}]",
        f"data.val_files=[{tiny_corpus['val']}]",
        f"data.test_files=[{tiny_corpus['test']}]",
        f"paths.cache_dir={cache_dir}",
        *(f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in TINY_SETTINGS.items()),
    ]


@pytest.fixture(scope="session")
def compose_tiny(tiny_overrides):
    """compose_tiny(output_dir, *overrides) -> the real conf/train.yaml composed with the tiny settings."""
    from ffnlab.config.compose import compose_config

    def compose(output_dir: Path, *overrides: str):
        return compose_config([*tiny_overrides, f"paths.output_dir={output_dir}", *overrides])

    return compose


@pytest.fixture(scope="session")
def tiny_experiment_dir(tmp_path_factory, tiny_corpus) -> Path:
    """A config dir holding experiment/tiny.yaml, the tiny settings as a study overlay: with
    `--config-dir <it> experiment=tiny` run dirs are named by the remaining overrides alone
    (`experiment` is excluded from override_dirname), e.g. `ffn=relu,seed=0`; runs land in outputs/tiny/
    unless hydra.run.dir / hydra.sweep.dir say otherwise."""
    import yaml

    tree: dict = {
        "experiment_name": "tiny",
        "data": {f"{split}_files": [str(path)] for split, path in tiny_corpus.items()},
    }
    for dotted, value in TINY_SETTINGS.items():
        group, key = dotted.split(".")
        tree.setdefault(group, {})[key] = value
    root = tmp_path_factory.mktemp("tiny_conf")
    (root / "experiment").mkdir()
    overlay = "# @package _global_\ndefaults:\n  - override /data: text_files\n\n" + yaml.safe_dump(tree)
    (root / "experiment" / "tiny.yaml").write_text(overlay)
    return root


@pytest.fixture(scope="session")
def train_cli(tiny_experiment_dir, cache_dir):
    """train_cli(*args) runs `python train.py --config-dir <tiny> experiment=tiny *args` from the repo root (or
    `cwd`), with the session token cache; returns the CompletedProcess (text output captured). `config_dir`
    replaces the tiny config dir (an edited copy of it); `preexec_fn` runs in the child before train.py (a resource
    limit)."""

    def run(
        *args: str, timeout: float = 600, tiny: bool = True, cwd: Path = REPO, env: dict | None = None,
        config_dir: Path | None = None, preexec_fn=None,
    ) -> subprocess.CompletedProcess:
        tiny_args = ["--config-dir", str(config_dir or tiny_experiment_dir), "experiment=tiny"] if tiny else []
        env = {**os.environ, "FFNLAB_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled", **(env or {})}
        env = {key: value for key, value in env.items() if value is not None}  # None: unset it
        env.pop("HYDRA_FULL_ERROR", None)  # the user's view: Hydra's short errors
        flags = [a for a in args if a.startswith("-")]  # -m: argparse wants flags before the overrides
        overrides = [a for a in args if not a.startswith("-")]
        return subprocess.run(
            [sys.executable, str(REPO / "train.py"), *flags, *tiny_args, *overrides],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn,
        )

    return run
