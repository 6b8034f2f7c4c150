"""Which software and hardware stacks a group's runs ran on.

CPU runs are deterministic per machine and thread count, not across machines: a quick study re-run on a
second machine of the same kind moved two variant means by 0.0013 and flipped the gated-vs-ungated verdict
(issue 8). So a group that mixes stacks is flagged; a record without "stack" counts as "unknown".
"""

from __future__ import annotations

import json
from collections import Counter

from ffnlab.report.records import Run

UNKNOWN = "unknown"


def stack_summary(runs: list[Run]) -> dict:
    """{"stacks": [{"stack": dict | "unknown", "n_runs": k}, ...] (stable order), "mixed_stacks": bool}."""
    counts = Counter(json.dumps(r.metrics.get("stack") or UNKNOWN, sort_keys=True) for r in runs)
    stacks = [{"stack": json.loads(key), "n_runs": n} for key, n in sorted(counts.items())]
    return {"stacks": stacks, "mixed_stacks": len(stacks) > 1}


def describe(stack: dict | str) -> str:
    return stack if isinstance(stack, str) else ", ".join(f"{k}={v}" for k, v in stack.items())
