"""Where a run writes, checked before Hydra touches it (issue 14): Hydra makes the run dir and writes `.hydra/` and its
log file before any of ffnlab's code runs, so a bad location would otherwise be a traceback from inside Hydra.

Checked from the command line and the environment: the output root (`$FFNLAB_OUTPUT_DIR`, `paths.output_root=`,
default `<repo>/outputs`), explicit run and sweep dirs (`hydra.run.dir=`, `hydra.sweep.dir=`), and the token cache
(`$FFNLAB_CACHE_DIR`, `paths.cache_dir=`, default `<repo>/.cache`), which may be read-only (a prepared cache is
only read) but must exist or be creatable. Writability is tried, not read off the mode bits: root ignores those.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ffnlab.config.schemas import REPO_ROOT


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def problem_with(path: Path, what: str, must_write: bool) -> str | None:
    """None when `path` can serve as `what`; otherwise one line saying why and what to do."""
    path = Path(os.path.expanduser(str(path))).absolute()
    existing = _nearest_existing(path)
    if not existing.is_dir():
        return f"{what} {path} cannot be made: {existing} is a file, not a directory; choose another location"
    if existing == path and not must_write:
        return None
    try:
        with tempfile.TemporaryFile(dir=existing):
            return None
    except OSError as error:
        return (f"{what} {path} is not writable ({error.strerror or error}); mount it writable or choose another "
                "location (FFNLAB_OUTPUT_DIR / FFNLAB_CACHE_DIR, or the override)")


def check(argv: list[str]) -> str | None:
    """The first problem with the locations this command line would write, or None."""
    given = dict(arg.partition("=")[::2] for arg in argv if "=" in arg and not arg.startswith("-"))
    output_root = given.get("paths.output_root") or os.environ.get("FFNLAB_OUTPUT_DIR") or REPO_ROOT / "outputs"
    cache = given.get("paths.cache_dir") or os.environ.get("FFNLAB_CACHE_DIR") or REPO_ROOT / ".cache"
    checks = [(output_root, "the output root", True)]
    checks += [(given[key], key, True) for key in ("hydra.run.dir", "hydra.sweep.dir") if given.get(key)]
    checks += [(cache, "the token cache", False)]
    for path, what, must_write in checks:
        found = problem_with(Path(str(path).strip("'\"")), what, must_write)
        if found:
            return found
    return None
