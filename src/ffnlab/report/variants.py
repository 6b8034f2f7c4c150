"""What the report knows about variants: the baseline, the families and the paper's log-ppl (ffnlab.report.paper).

A run's family (gated, ungated, maxout) comes from its record (`ffn_variant`, written from the registry
ffnlab.model.variants at training time); a record from before that field falls back to the same registry, which imports no
torch. There is no second list of gated variants here.
"""

from __future__ import annotations

from ffnlab.report.paper import PAPER_LOG_PPL
from ffnlab.model.variants import VARIANTS

BASELINE = "relu"

FAMILIES = ("gated", "ungated", "maxout")
_FAMILY_OF_KIND = {"gated": "gated", "plain": "ungated", "maxout": "maxout"}

Families = dict[str, str]  # variant label -> its family, from the runs' records


def family_of_record(metrics: dict, ffn: str | None) -> str | None:
    """The family a run record states (`ffn_variant.kind`); for a record written before that field, the registry's
    kind for its ffn name; None when neither knows the variant (the report then leaves it out of family tests)."""
    kind = (metrics.get("ffn_variant") or {}).get("kind")
    if kind is None and ffn in VARIANTS:
        kind = VARIANTS[ffn].kind
    return _FAMILY_OF_KIND.get(kind)


def paper_delta(variant: str) -> float | None:
    """The paper's log-ppl difference vs the baseline; None for a label the paper did not run."""
    if variant not in PAPER_LOG_PPL:
        return None
    return PAPER_LOG_PPL[variant] - PAPER_LOG_PPL[BASELINE]
