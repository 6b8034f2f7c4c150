"""`cpu_keep_freed_memory`: let glibc keep freed tensor memory in the process instead of handing it back.

torch's CPU tensors come from malloc. glibc serves a block of 128 KiB to 32 MiB (its dynamic threshold) or more
with a fresh mmap and gives it back to the kernel on free, and the heap's free top is trimmed back too. A training
step frees and re-allocates the same activations every step, so every step faults those pages in again and the
kernel zeroes each one: at the benchmark's reference shape, 38 k page faults per step (about 150 MB), against
3 k with the memory kept. The values a step computes do not change, only where their memory comes from, so this
is not part of a run's identity.

The cost is that the process keeps its peak: memory a step freed stays in the process for the next step, which
needs it again. `false` leaves the allocator as the process found it (a process that already kept its memory
keeps doing so; malloc's settings are the process's, not a run's).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt(3) parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Blocks below this come from the heap and are reused; above it (1 GiB: larger than any CPU activation we run)
# they are still mmapped, so one huge tensor is still returned to the system when freed.
MMAP_THRESHOLD = 1 << 30
# The heap's free top is returned to the kernel only when it exceeds this.
TRIM_THRESHOLD = 1 << 31


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when they were set (Linux with glibc),
    False where there is no glibc (macOS, musl): those allocators are left alone."""
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success, 0 when glibc refuses the value
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                     TRIM_THRESHOLD))


def apply_allocator(cfg) -> bool:
    """`cfg.cpu_keep_freed_memory` (default true): keep freed memory; returns whether the setting took effect."""
    if not cfg.get("cpu_keep_freed_memory", True):
        return False
    return keep_freed_memory()
