"""Atomic file writes: readers (other jobs, the report, a re-run sweep) see the old file or the whole new one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object], previous: Path | None = None,
                 size: int | None = None) -> None:
    """`write(tmp)` into a temporary name beside `path`, flush it to disk, then rename it onto `path`. With `previous`,
    the file `path` held is renamed to `previous` first (two generations: a kill between the two renames leaves the
    older one whole under `previous`). Whatever fails, the temporary file is removed, and a write the disk refused (no
    space, over quota) is raised as ffnlab.runs.diskfull.DiskFull naming `path` (and `size`, the bytes it needed, when
    the caller knows them)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            write(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # a crash right after the rename must not leave an empty file behind the new name
            finally:
                os.close(fd)
        except Exception as error:
            _raise_if_full(path, error, size)
            raise
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _raise_if_full(path: Path, error: Exception, size: int | None) -> None:
    """Raise DiskFull for `path` when `error` is (or was raised from) a write the disk refused."""
    from ffnlab.runs.diskfull import DiskFull, is_full

    if isinstance(error, DiskFull):
        return
    for cause in (error, error.__cause__, error.__context__):
        if cause is not None and is_full(cause):
            raise DiskFull(path, cause.strerror or "no space left on device", size) from error
