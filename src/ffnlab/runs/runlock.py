"""One run directory, one run (issue 14): a lock file in the run dir, held by rank 0 of the run for its whole life.

Two identical commands started together would write into the same directory (every CSV row twice). The first takes
`<run dir>/.lock` (created exclusively: O_CREAT | O_EXCL) and refreshes a heartbeat in it every `HEARTBEAT_S`; the
second exits at once, in one line naming the holder. A lock is stale, and taken over, when
  - its process is dead on this host,
  - its heartbeat is older than `STALE_AFTER_S` (a holder on another host that died, or a frozen file system), or
  - it belongs to this job's `SLURM_JOB_ID` (a requeued job lands on another node while its old lock remains).
The other ranks of the run do not lock: rank 0 decides for them (ffnlab.distributed.launch).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from ffnlab.runs.atomic import write_atomic
from ffnlab.config.errors import ConfigError

LOCK = ".lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0  # ten missed heartbeats


class RunInUse(ConfigError):
    """Another live run holds this run dir."""


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "heartbeat": time.time()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(holder: dict) -> str | None:
    """Why `holder`'s lock no longer counts, or None when it does."""
    me = _me()
    if holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
        return f"its process {holder.get('pid')} is gone"
    if time.time() - float(holder.get("heartbeat", 0)) > STALE_AFTER_S:
        return f"its heartbeat is older than {STALE_AFTER_S:.0f} s"
    if holder.get("slurm_job_id") and holder.get("slurm_job_id") == me["slurm_job_id"]:
        return f"it belongs to this SLURM job ({me['slurm_job_id']}, requeued)"
    return None


def _as_full(path: Path, error: OSError) -> OSError:
    """A refused write as DiskFull naming the lock (one line, ffnlab.runs.diskfull); any other error as itself."""
    from ffnlab.runs.diskfull import DiskFull, is_full

    return DiskFull(path, error.strerror or "no space left on device") if is_full(error) else error


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError as error:
                if not isinstance(error, FileExistsError):
                    raise _as_full(self.path, error) from error
                holder = self._read()
                reason = stale_reason(holder) if holder is not None else "it is unreadable"
                if reason is None:
                    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("heartbeat", 0)))
                    raise RunInUse(
                        f"{self.path.parent} is in use by pid {holder.get('pid')} on {holder.get('host')}"
                        f"{' (SLURM job ' + holder['slurm_job_id'] + ')' if holder.get('slurm_job_id') else ''}, "
                        f"alive at {since}; wait for it to finish, or run elsewhere (a new experiment_name)"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: take it over (the exclusive create decides the race)
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(_me()))
            except OSError as error:  # a full disk: no empty lock left behind to be judged by the next run
                self.path.unlink(missing_ok=True)
                raise _as_full(self.path, error) from error
            self._thread = threading.Thread(target=self._beat, daemon=True, name="ffnlab-run-lock")
            self._thread.start()
            return
        raise RunInUse(f"{self.path} could not be taken (another process keeps taking it over)")

    def _read(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if (self._read() or {}).get("pid") != os.getpid():
                return  # taken over (declared stale by another host): not ours to refresh
            try:
                write_atomic(self.path, lambda tmp: tmp.write_text(json.dumps(_me())))
            except OSError:  # a full disk: this beat is skipped, the lock still names its live holder
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if (self._read() or {}).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
