"""The paired comparisons of one group, each with its power.

- every variant vs the baseline, seed by seed: one family of tests, Holm-corrected (7 tests, or 17 with
  every activation, would otherwise call a difference "beyond seed noise" by chance; issue 8);
- gated vs ungated: declared before any run, so it is tested on its own at alpha, outside that family.

Power is stated at the alpha each test is judged at: alpha/m for the Holm family (its first, strictest
step), alpha for the family test.
"""

from __future__ import annotations

import numpy as np

from ffnlab.report.power import detectable_difference, seeds_needed
from ffnlab.report.stats import ALPHA, holm, paired_test
from ffnlab.report.variants import BASELINE, PAPER_LOG_PPL, family, paper_delta

Losses = dict[str, dict[int, float]]  # variant -> seed -> final loss (finite runs at the chosen LR)


def _with_power(test: dict, alpha: float | None, paper: float | None) -> dict:
    return {
        **test,
        "alpha": alpha,
        "detectable_diff": detectable_difference(test["std"], test["n"], alpha),
        "paper_delta": paper,
        "seeds_for_paper_delta": seeds_needed(paper, test["std"], alpha),
    }


def vs_baseline(losses: Losses, order: list[str]) -> list[dict]:
    """Per variant: loss(variant, seed) - loss(baseline, seed) over shared seeds, raw and Holm-adjusted p."""
    if BASELINE not in losses:
        return []
    base = losses[BASELINE]
    tests = []
    for variant in order:
        if variant != BASELINE:
            seeds = sorted(losses[variant].keys() & base.keys())
            test = paired_test([losses[variant][s] for s in seeds], [base[s] for s in seeds])
            tests.append({"variant": variant, "seeds": seeds, **test})
    adjusted = holm([t["p"] for t in tests])
    m = sum(p is not None for p in adjusted)
    alpha = ALPHA / m if m else None
    return [
        _with_power({**t, "p_holm": p, "m": m, "beyond_noise": None if p is None else p < ALPHA},
                    alpha, paper_delta(t["variant"]))
        for t, p in zip(tests, adjusted)
    ]


def gated_vs_ungated(losses: Losses) -> dict:
    """Per seed, mean over gated variants - mean over ungated ones, on seeds every one of them ran.

    The paper's counterpart is the same difference of its log-ppl over the same variants (None unless the
    paper ran all of them).
    """
    members = {f: sorted(v for v in losses if family(v) == f) for f in ("gated", "ungated")}
    seeds: list[int] = []
    gated: list[float] = []
    ungated: list[float] = []
    if members["gated"] and members["ungated"]:
        seeds = sorted(set.intersection(*(set(losses[v]) for v in members["gated"] + members["ungated"])))
        gated = [float(np.mean([losses[v][s] for v in members["gated"]])) for s in seeds]
        ungated = [float(np.mean([losses[v][s] for v in members["ungated"]])) for s in seeds]
    test = paired_test(gated, ungated)
    everyone = members["gated"] + members["ungated"]
    paper = None
    if everyone and all(v in PAPER_LOG_PPL for v in everyone):
        paper = float(np.mean([PAPER_LOG_PPL[v] for v in members["gated"]])
                      - np.mean([PAPER_LOG_PPL[v] for v in members["ungated"]]))
    verdict = None if test["p"] is None else test["p"] < ALPHA
    return _with_power({"seeds": seeds, **test, "beyond_noise": verdict}, None if verdict is None else ALPHA, paper)
