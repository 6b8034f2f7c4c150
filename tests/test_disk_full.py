"""A full disk costs nothing (issue 23.3), with real processes on a real small filesystem: a tmpfs mounted with a size
limit (as root), or, where mounting is not permitted, a file-size limit (RLIMIT_FSIZE: the kernel refuses the write
with EFBIG, which ffnlab treats as it treats ENOSPC). Either way the write fails inside the kernel, not in a mock.

What must hold: one line naming the file and the space (no traceback), no partial file, no lock left behind, the
previous checkpoint and record whole, and a re-run once there is space resumes from the last good checkpoint and ends
as the uninterrupted run."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from ffnlab.training.checkpoint import TEST_SIGNAL_AT_STEP

pytestmark = pytest.mark.slow

CHECKPOINT_KB = 280  # a tiny run's checkpoint (conftest.TINY_SETTINGS): about 275 KB


def can_mount(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], check=True)
    return True


class SmallDisk:
    """`room` KB for the run dir: a tmpfs of that size, or a per-file size limit of that size for the process."""

    def __init__(self, root: Path):
        self.root = root / "disk"
        self.mounted = can_mount(self.root)

    def limit(self, kb: int):
        """The train_cli preexec_fn that runs a process with `kb` KB of room (None: the tmpfs is resized instead)."""
        if self.mounted:
            subprocess.run(["mount", "-o", f"remount,size={kb}k", str(self.root)], check=True)
            return None
        return lambda: (signal.signal(signal.SIGXFSZ, signal.SIG_IGN),
                        resource.setrlimit(resource.RLIMIT_FSIZE, (kb * 1024, kb * 1024)))

    def unlimited(self):
        return self.limit(64 * 1024) if self.mounted else None

    def no_room_for_a_second_checkpoint(self):
        """Room for one checkpoint and the small files, not for the next one beside it (a file-size limit counts one
        file at a time: then less than one checkpoint)."""
        return self.limit(2 * CHECKPOINT_KB - 60 if self.mounted else CHECKPOINT_KB - 80)

    @contextlib.contextmanager
    def session(self):
        if self.mounted:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(self.root)], check=True)
        try:
            yield self
        finally:
            if self.mounted:
                subprocess.run(["umount", str(self.root)], check=False)


@pytest.fixture
def disk(tmp_path):
    with SmallDisk(tmp_path).session() as small:
        yield small


def test_a_full_disk_while_checkpointing_is_one_line_and_the_rerun_resumes(train_cli, disk, tmp_path):
    run_dir = disk.root / "run"
    args = ("ffn=relu", "seed=0", f"hydra.run.dir={run_dir}")
    whole = train_cli("ffn=relu", "seed=0", f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-3000:]

    # attempt 1: killed in step 5, its checkpoint (step 3) saved with room to spare
    killed = train_cli(*args, preexec_fn=disk.unlimited(), env={TEST_SIGNAL_AT_STEP: "4:SIGKILL"})
    assert killed.returncode == -signal.SIGKILL
    good = (run_dir / "checkpoints" / "last.ckpt").read_bytes()

    # attempt 2: resumes from step 3; the save at step 6 needs room for a second checkpoint and finds none
    full = train_cli(*args, preexec_fn=disk.no_room_for_a_second_checkpoint())
    assert full.returncode == 1
    out = full.stdout + full.stderr
    assert "Traceback" not in out, out[-3000:]
    said = [line for line in out.splitlines() if "writing " in line and "last.ckpt" in line]
    assert len(said) == 1 and ("No space left on device" in said[0] or "File too large" in said[0]), out[-3000:]
    assert "free there, about" in said[0] and "KB needed" in said[0]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]  # no partial file
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == good  # the good checkpoint untouched
    assert not (run_dir / ".lock").exists()
    assert not [p for p in run_dir.rglob("*") if p.is_file() and p.stat().st_size == 0]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] in ("failed", "running")

    # attempt 3, with room: resumes from the last good checkpoint and ends as the uninterrupted run
    again = train_cli(*args, preexec_fn=disk.unlimited())
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from step 3" in again.stdout + again.stderr
    finished = json.loads((run_dir / "metrics.json").read_text())
    assert abs(finished["val_loss"] - json.loads((tmp_path / "whole" / "metrics.json").read_text())["val_loss"]) <= 1e-6


def test_a_full_disk_before_the_run_starts_is_one_line_and_leaves_no_empty_file(train_cli, disk):
    """Hydra writes its files (.hydra/, the log) before ffnlab's code runs: there too, one line, no empty file."""
    run_dir = disk.root / "run"
    full = train_cli("ffn=relu", f"hydra.run.dir={run_dir}", preexec_fn=disk.limit(4 if disk.mounted else 1))
    assert full.returncode == 1
    out = full.stdout + full.stderr
    assert "Traceback" not in out and "Set the environment variable HYDRA_FULL_ERROR" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "writing " in lines[0] and "free there" in lines[0], out[-3000:]
    assert not [p for p in run_dir.rglob("*") if p.is_file() and p.stat().st_size == 0]


def test_a_full_disk_while_preparing_the_token_store_is_one_line(train_cli, disk, tmp_path):
    cache = disk.root / "cache"
    full = train_cli("ffn=relu", f"hydra.run.dir={tmp_path / 'run'}", preexec_fn=disk.limit(40),
                     env={"FFNLAB_CACHE_DIR": str(cache)})
    assert full.returncode == 1
    out = full.stdout + full.stderr
    assert "Traceback" not in out, out[-3000:]
    said = [line for line in out.splitlines() if "DiskFull" in line]
    assert len(said) == 1 and "/tokens/" in said[0] and "KB needed" in said[0], out[-3000:]
    assert not list(cache.rglob("*.tmp"))
