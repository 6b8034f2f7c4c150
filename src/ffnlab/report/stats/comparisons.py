"""The paired comparisons of one group, each with its power.

- every variant vs the baseline, seed by seed: one family of tests, Holm-corrected (7 tests, or 17 with
  every activation, would otherwise call a difference "beyond seed noise" by chance; issue 8);
- gated vs ungated: declared before any run, so it is tested on its own at alpha, outside that family.

Power is stated at the alpha each test is judged at: alpha/m for the Holm family (its first, strictest
step), alpha for the family test. `judged` and the family helpers also serve the comparisons across groups
(ffnlab.report.studies.factors, ffnlab.report.studies.ladder).
"""

from __future__ import annotations

import numpy as np

from ffnlab.report.stats.power import detectable_difference, seeds_needed
from ffnlab.report.stats.paired import ALPHA, bonferroni, holm, paired_test
from ffnlab.report.variants import BASELINE, PAPER_LOG_PPL, Families, paper_delta

Losses = dict[str, dict[int, float]]  # variant -> seed -> final loss (finite runs at the chosen LR)


def _with_power(test: dict, alpha: float | None, paper: float | None) -> dict:
    return {
        **test,
        "alpha": alpha,
        "detectable_diff": detectable_difference(test["std"], test["n"], alpha),
        "paper_delta": paper,
        "seeds_for_paper_delta": seeds_needed(paper, test["std"], alpha),
    }


def paired_by_seed(mine: dict[int, float], base: dict[int, float]) -> dict:
    """mine - base over the seeds both have: {"seeds": [...], **paired_test}."""
    seeds = sorted(mine.keys() & base.keys())
    return {"seeds": seeds, **paired_test([mine[s] for s in seeds], [base[s] for s in seeds])}


def judged(tests: list[dict], correction: str, papers: list[float | None]) -> list[dict]:
    """One family of tests: each with its adjusted p (`p_holm` or `p_bonferroni` over the m tests that ran), the
    verdict adjusted p < alpha, and its power at alpha / m (Holm's first, strictest step; Bonferroni's every step)."""
    adjusted = (holm if correction == "holm" else bonferroni)([t["p"] for t in tests])
    m = sum(p is not None for p in adjusted)
    alpha = ALPHA / m if m else None
    return [
        _with_power({**t, f"p_{correction}": p, "m": m, "beyond_noise": None if p is None else p < ALPHA}, alpha, paper)
        for t, p, paper in zip(tests, adjusted, papers)
    ]


def vs_baseline(losses: Losses, order: list[str]) -> list[dict]:
    """Per variant: loss(variant, seed) - loss(baseline, seed) over shared seeds, raw and Holm-adjusted p."""
    if BASELINE not in losses:
        return []
    tests = [{"variant": v, **paired_by_seed(losses[v], losses[BASELINE])} for v in order if v != BASELINE]
    return judged(tests, "holm", [paper_delta(t["variant"]) for t in tests])


def family_seed_means(losses: Losses, families: Families) -> tuple[list[int], list[float], list[float]]:
    """(seeds every gated and ungated variant ran, mean over gated per seed, mean over ungated per seed);
    `families` maps each variant label to its family, as the runs' records state it."""
    members = {f: sorted(v for v in losses if families.get(v) == f) for f in ("gated", "ungated")}
    if not (members["gated"] and members["ungated"]):
        return [], [], []
    seeds = sorted(set.intersection(*(set(losses[v]) for v in members["gated"] + members["ungated"])))
    gated = [float(np.mean([losses[v][s] for v in members["gated"]])) for s in seeds]
    ungated = [float(np.mean([losses[v][s] for v in members["ungated"]])) for s in seeds]
    return seeds, gated, ungated


def paper_family_delta(variants: list[str], families: Families) -> float | None:
    """The paper's gated - ungated log-ppl over these variants; None unless the paper ran all of them."""
    gated = [PAPER_LOG_PPL.get(v) for v in variants if families.get(v) == "gated"]
    ungated = [PAPER_LOG_PPL.get(v) for v in variants if families.get(v) == "ungated"]
    if not gated or not ungated or None in gated + ungated:
        return None
    return float(np.mean(gated) - np.mean(ungated))


def gated_vs_ungated(losses: Losses, families: Families) -> dict:
    """Per seed, mean over gated variants - mean over ungated ones, on seeds every one of them ran.

    The paper's counterpart is the same difference of its log-ppl over the same variants (None unless the
    paper ran all of them).
    """
    seeds, gated, ungated = family_seed_means(losses, families)
    test = paired_test(gated, ungated)
    paper = paper_family_delta(list(losses), families)
    verdict = None if test["p"] is None else test["p"] < ALPHA
    return _with_power({"seeds": seeds, **test, "beyond_noise": verdict}, None if verdict is None else ALPHA, paper)
