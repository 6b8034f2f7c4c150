"""Bad input gets one clear line before any work (issue 14): the table of the issue's inputs, in-process where the
message is made, and through the CLI for the exit status and the absence of a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO
from ffnlab.config.errors import ConfigError

BAD = [
    ("data.batch_size=0", "data.batch_size=0"),
    ("data.batch_size=abc", "data.batch_size='abc'"),
    ("trainer.max_steps=abc", "trainer.max_steps='abc'"),
    ("trainer.max_steps=-1", "trainer.max_steps=-1"),
    ("seed=1.5", "seed=1.5"),
    ("optim.lr=nan", "optim.lr=nan"),
    ("optim.lr=inf", "optim.lr=inf"),
    ("trainer.val_check_interval=0", "trainer.val_check_interval=0"),
    ("trainer.devices=0", "trainer.devices=0"),
    ("data.num_workers=-2", "data.num_workers=-2"),
    ("checkpoint.every_n_minutes=-5", "checkpoint.every_n_minutes=-5"),
    ("train_tokens=-100", "train_tokens=-100"),
]


@pytest.mark.parametrize("override, named", BAD)
def test_bad_values_are_one_line_naming_the_key_before_any_work(override, named, compose_tiny, tmp_path):
    from ffnlab.training.run import run

    with pytest.raises(ConfigError) as error:
        run(compose_tiny(tmp_path / "run", override))
    message = str(error.value)
    assert named in message and ("give" in message or "must" in message) and "\n" not in message
    # Nothing ran (no checkpoint, no history); the record says why, for a sweep's report.
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.json"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["error"] == f"ConfigError: {message}"


@pytest.mark.parametrize("args, named", [
    ([str(REPO / "train.py"), "seed=1.5"], "seed=1.5"),
    ([str(REPO / "train.py"), "trainer.max_steps=-1"], "trainer.max_steps=-1"),
    ([str(REPO / "scripts" / "params.py"), "model.dmodel=3"], "model.dmodel"),
    ([str(REPO / "scripts" / "prepare_data.py"), "data.batch_size=x"], "data.batch_size"),
])
def test_the_commands_exit_non_zero_in_at_most_three_lines(args, named, tmp_path):
    done = subprocess.run([sys.executable, *args, f"hydra.run.dir={tmp_path}/run"] if "train.py" in args[0]
                          else [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and named in output and "Traceback" not in output, output[-2000:]
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert 1 <= len(errors) <= 3


def test_hydra_no_longer_lists_the_schemas_as_choices():
    done = subprocess.run([sys.executable, str(REPO / "train.py"), "ffn=foo"], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    listed = done.stdout + done.stderr
    assert "Available options in 'ffn'" in listed and "swiglu" in listed and "schema" not in listed.split(
        "Config search path")[0]


def train_cli_env(*args: str, env: dict) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, **env})


@pytest.mark.parametrize("env, words", [
    ({"FFNLAB_OUTPUT_DIR": "{file}"}, "the output root"),
    ({"FFNLAB_OUTPUT_DIR": "{file}/sub"}, "the output root"),
    ({"FFNLAB_CACHE_DIR": "{file}/cache"}, "the token cache"),
])
def test_an_unusable_output_root_or_cache_fails_before_any_work(tmp_path, env, words):
    """A file where a directory is expected (tests run as root: modes would not stop a write)."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    done = train_cli_env(env={key: value.format(file=a_file) for key, value in env.items()})
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and "Traceback" not in output and len(output.splitlines()) == 1, output[-2000:]
    assert words in output and "is a file, not a directory" in output


def test_an_existing_read_only_run_dir_fails_before_any_work(tmp_path):
    run_dir = tmp_path / "run"
    (tmp_path / "src").mkdir()
    run_dir.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(tmp_path / "src"), str(run_dir)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"no read-only bind mount here: {mounted.stderr.decode().strip()}")
    try:
        done = train_cli_env(f"hydra.run.dir={run_dir}", env={})
    finally:
        subprocess.run(["umount", "--lazy", str(run_dir)], check=False)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and "Traceback" not in output and "is not writable" in output, output[-2000:]
