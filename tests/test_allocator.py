"""ffnlab.training.allocator: with the setting, a step's freed activations are reused, not page-faulted back in."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting acts on glibc's malloc")

# A 64 MiB tensor (the logits of 4096 tokens over a 4096 vocabulary; above the 32 MiB up to which glibc learns to
# serve freed sizes from its heap, so glibc alone mmaps it afresh every time) is made, written and freed 20 times;
# the child prints the page faults per MiB written over the last 10.
CHILD = """
import resource, sys, torch
from ffnlab.training.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def cycle():
    t = torch.empty(16 << 20)  # 64 MiB of float32
    t.fill_(1.0)
    del t
for _ in range(10):
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (10 * 64))
"""


def faults_per_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def test_kept_memory_is_not_faulted_in_again_each_step():
    # 4 KiB pages: 256 faults per MiB when every page is new
    assert faults_per_mib("system") > 100  # the test can fail: glibc alone returns the block every time
    assert faults_per_mib("keep") < 5

