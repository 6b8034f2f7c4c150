"""What a run ran on. CPU runs are deterministic per machine and thread count, not across machines: the report
flags a group whose runs were computed on different stacks."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        match = None
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


def blas_backend() -> str:
    """The BLAS and oneDNN builds torch was compiled with, and the CPU kernels it dispatches to (AVX2/AVX512
    kernels sum in different orders), e.g. `BLAS_INFO=mkl; MKL-DNN v3.12.0; cpu=AVX512`."""
    config = torch.__config__.show()
    found = re.findall(r"BLAS_INFO=\w+", config) + re.findall(r"MKL-DNN v[\w.]+", config)
    return "; ".join(found + [f"cpu={torch.backends.cpu.get_cpu_capability()}"])


def software_stack(device: torch.device | str = "cpu") -> dict:
    """torch and CUDA versions, the device's model, the CPU thread count and the BLAS backend."""
    device = torch.device(device)
    on_gpu = device.type == "cuda" and torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if on_gpu else None,
        "device": torch.cuda.get_device_name(device) if on_gpu else cpu_model(),
        "cpu_threads": torch.get_num_threads(),
        "blas": blas_backend(),
    }
