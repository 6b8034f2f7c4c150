"""A full disk is one line, not a traceback (issue 23.3): which file could not be written, the free space there, and
what the write needed. Every file ffnlab writes goes through ffnlab.runs.atomic, which removes its partial temporary file
and raises `DiskFull` naming the file; what was written before stays whole (the previous checkpoint, the record, the
token store), so a re-run after space is freed resumes from the last good checkpoint."""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path

# No space, over quota, or over the file-size limit (ulimit -f): each a write the disk refused, cured alike.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFull(OSError):
    """A write refused for want of space at `path`; `needed` (bytes) when the writer knows it."""

    def __init__(self, path: Path, reason: str, needed: int | None = None):
        super().__init__(errno.ENOSPC, reason, str(path))
        self.path, self.reason, self.needed = Path(path), reason, needed

    def __str__(self) -> str:
        free = free_bytes(self.path)
        needs = f", about {size(self.needed)} needed" if self.needed else ""
        return (f"{self.reason} writing {self.path} ({size(free) if free is not None else 'unknown'} free there{needs}); "
                "its partial file was removed and what was written before is whole: free space and re-run (an "
                "unfinished run resumes from its last good checkpoint)")


def is_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in FULL


def disk_full_in(error: BaseException) -> DiskFull | None:
    """The DiskFull behind `error` (itself, or what it was raised from), if any."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, DiskFull):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def free_bytes(path: Path) -> int | None:
    for candidate in (Path(path), *Path(path).parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} TB"


def guard_hydra_files() -> None:
    """Hydra writes `.hydra/*.yaml` and the job's log before ffnlab's code runs; on a full disk it printed a
    traceback and left empty files. Its runner is wrapped (Hydra has no hook there) so that failure is this module's
    one line, and the empty files it left are removed: a re-run then writes them whole."""
    import hydra._internal.utils as hydra_utils

    run_and_report = hydra_utils.run_and_report
    if getattr(run_and_report, "ffnlab_guarded", False):
        return

    def guarded(func):
        def run():
            try:
                return func()
            except OSError as error:
                if not is_full(error) or isinstance(error, DiskFull):
                    raise
                where = _hydra_output_dir(error)
                for empty in ([*where.glob(".hydra/*"), *where.glob("*.log")] if where else []):
                    if empty.is_file() and empty.stat().st_size == 0:
                        empty.unlink(missing_ok=True)
                print(f"error: {DiskFull(Path(error.filename or where or '.'), error.strerror or 'no space')}",
                      file=sys.stderr)
                sys.exit(1)

        return run_and_report(run)

    guarded.ffnlab_guarded = True
    hydra_utils.run_and_report = guarded


def _hydra_output_dir(error: BaseException) -> Path | None:
    """The run dir Hydra was writing: run_job's `output_dir`, read off the failed call's frames (Hydra's runtime
    config is not set yet at that point)."""
    tb = error.__traceback__
    while tb is not None:
        where = tb.tb_frame.f_locals.get("output_dir")
        if where:
            return Path(str(where))
        tb = tb.tb_next
    return None
