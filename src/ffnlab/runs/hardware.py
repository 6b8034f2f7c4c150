"""Peak dense bf16 tensor-core FLOP/s per GPU, for MFU = achieved model FLOP/s / peak.

Lightning's own table (lightning.fabric.utilities.throughput) maps "NVIDIA L40S" to the L4 (121 TFLOP/s instead
of 362) and lists the RTX 4090 at its non-tensor fp32 rate; MFU against it would be 3x and 2x too high. This table
holds dense figures only (NVIDIA quotes "with sparsity" figures at 2x) from the vendors' datasheets:
  H100 SXM / H200: 989.4 (H100 datasheet, "BF16 Tensor Core 1,979 TFLOPS*", * = with sparsity)
  H100 NVL: 835.5 (1,671 with sparsity, per GPU); H100 PCIe: 756.5 (1,513 with sparsity)
  A100 (SXM and PCIe): 312; A10: 125; L40S: 362.05 (733 with sparsity); L40: 181.05; L4: 121 (242 with sparsity)
  RTX 4090: 165.2 (Ada whitepaper, "Peak BF16 Tensor TFLOPS with FP32 Accumulate"); RTX 3090: 71 (Ampere GA102)
Order matters: the first pattern found in the lower-cased device name wins ("l40s" before "l40" before "l4").
"""

from __future__ import annotations

import torch

BF16_PEAK_FLOPS: tuple[tuple[str, str, float], ...] = (
    # (substring of torch.cuda.get_device_name().lower(), chip, dense bf16 FLOP/s)
    ("h200", "H200", 989.4e12),
    ("h100 nvl", "H100 NVL", 835.5e12),
    ("h100 pcie", "H100 PCIe", 756.5e12),
    ("h100", "H100 SXM", 989.4e12),  # "NVIDIA H100 80GB HBM3" is the SXM part
    ("a100", "A100", 312e12),
    ("l40s", "L40S", 362.05e12),
    ("l40", "L40", 181.05e12),
    ("l4", "L4", 121e12),
    ("a10", "A10", 125e12),
    ("rtx 4090", "RTX 4090", 165.2e12),
    ("rtx 3090", "RTX 3090", 71e12),
)


def bf16_peak(device_name: str) -> tuple[str, float] | None:
    """(chip, dense bf16 FLOP/s) for a CUDA device name, or None when the chip is not in the table."""
    name = device_name.lower()
    for pattern, chip, flops in BF16_PEAK_FLOPS:
        if pattern in name:
            return chip, flops
    return None


def peak_flops(device: torch.device, precision: str, override: float | None = None) -> float | None:
    """The peak FLOP/s one device of this run can reach, for MFU: `override` when given (e.g. a CPU's measured
    sgemm rate), else the table's bf16 figure for a GPU training in bf16; None when unknown (MFU not logged)."""
    if override is not None:
        return float(override)
    if device.type != "cuda" or "bf16" not in str(precision):
        return None
    found = bf16_peak(torch.cuda.get_device_name(device))
    return found[1] if found else None
