"""What a user reads in the terminal (issue 25): each fact once, no tips or third-party deprecation noise, a
progress bar in optimizer steps, and one summary line per run; Hydra's train.log still gets every record."""

from __future__ import annotations

import re
from collections import Counter

import pytest

# A log record's prefix: Hydra's "[time][logger][LEVEL] - " or Lightning's own handler's "LEVEL: ". Without it, a
# record printed by two handlers is the same line twice.
RECORD_PREFIX = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[[A-Z]+\] - |^[A-Z]+: ")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # tqdm's cursor moves between nested bars


def said(output: str) -> list[str]:
    """The non-empty lines of a console, as a reader sees them: a progress bar's frames (joined by carriage
    returns) as their last frame, record prefixes dropped."""
    # split("\n"), not splitlines(): splitlines also splits at the \r between a bar's frames.
    lines = (ANSI.sub("", line).split("\r")[-1].strip() for line in output.split("\n"))
    return [RECORD_PREFIX.sub("", line) for line in lines if line]


@pytest.fixture(scope="module")
def five_steps(train_cli, tmp_path_factory):
    """A 5-step tiny run with its progress bar on: (run dir, stdout + stderr)."""
    run_dir = tmp_path_factory.mktemp("console") / "run"
    done = train_cli("trainer.max_steps=5", "trainer.val_check_interval=5", "trainer.enable_progress_bar=true",
                     f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run_dir, done.stdout + done.stderr


def test_no_line_is_said_twice(five_steps):
    _, output = five_steps
    twice = [line for line, count in Counter(said(output)).items() if count > 1]
    assert not twice, output


def test_no_tips_and_no_third_party_deprecations(five_steps):
    _, output = five_steps
    for noise in ("Tip", "litlogger", "deprecated"):
        assert noise not in output, output


def test_the_progress_bar_counts_steps_with_loss_and_throughput(five_steps):
    _, output = five_steps
    bar = [line for line in said(output) if "5/5" in line]
    assert bar and "train/loss" in bar[-1] and "tokens/s" in bar[-1], output
    assert "Epoch" not in output and "v_num" not in output


def test_one_summary_line_per_run(five_steps):
    run_dir, output = five_steps
    summary = [line for line in said(output) if "finished: val_loss" in line]
    assert len(summary) == 1, output
    for part in ("ffn=swiglu", "seed=0", "val_ppl", "test_loss", "tokens/s", " s wall", str(run_dir)):
        assert part in summary[0], summary[0]


def test_hydra_log_file_still_gets_lightning_and_ffnlab_records(five_steps):
    run_dir, _ = five_steps
    logged = (run_dir / "train.log").read_text()
    assert "[lightning.pytorch.utilities.rank_zero][INFO] - GPU available" in logged
    assert "`Trainer.fit` stopped" in logged and "finished: val_loss" in logged
