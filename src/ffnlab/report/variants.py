"""What the report knows about variants by name: the baseline, the families and the paper's numbers.

Kept by name here, not imported from ffnlab.ffn (the report must not import torch); ffn.VARIANTS marks
the same six as kind "gated".
"""

from __future__ import annotations

BASELINE = "relu"

# Shazeer 2020, "GLU Variants Improve Transformer", Table 1: log-perplexity on C4 after 65,536 steps.
PAPER_LOG_PPL = {
    "relu": 1.997, "gelu": 1.983, "swish": 1.994, "glu": 1.982,
    "bilinear": 1.960, "reglu": 1.953, "geglu": 1.942, "swiglu": 1.944,
}

GATED = frozenset({"glu", "bilinear", "reglu", "geglu", "swiglu", "gtu"})
FAMILIES = ("gated", "ungated", "maxout")


def family(variant: str) -> str:
    """The family of a variant label: `geglu[gelu_approximate=tanh]` is gated like `geglu`."""
    name = variant.split("[", 1)[0]
    if name in GATED:
        return "gated"
    return "maxout" if name == "maxout" else "ungated"


def paper_delta(variant: str) -> float | None:
    """The paper's log-ppl difference vs the baseline; None for a label the paper did not run."""
    if variant not in PAPER_LOG_PPL:
        return None
    return PAPER_LOG_PPL[variant] - PAPER_LOG_PPL[BASELINE]
