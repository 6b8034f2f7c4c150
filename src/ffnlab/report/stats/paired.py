"""Paired t-tests, Holm's correction, Spearman and the spread of seeds.

scipy does the arithmetic: the hand-written t table this replaced fell back to 1.96 past 30 degrees of
freedom, which made intervals about 4% too narrow (issue 8).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

ALPHA = 0.05  # two-sided, for every test in the report


def sample_std(xs: list[float]) -> float | None:
    """Standard deviation with ddof=1; None for fewer than two values (one seed says nothing of noise)."""
    return float(np.std(xs, ddof=1)) if len(xs) >= 2 else None


def paired_test(mine: list[float], base: list[float]) -> dict:
    """Paired t-test of mine - base (seed by seed): mean, std, 95% interval and raw two-sided p.

    Interval and p are None below two pairs or when every difference is equal (the t statistic is 0/0):
    "not known", which the report keeps apart from "no".
    """
    diffs = np.subtract(mine, base)
    out = {"n": len(diffs), "mean": float(diffs.mean()) if len(diffs) else None, "std": sample_std(diffs),
           "ci_low": None, "ci_high": None, "p": None}
    if out["std"]:
        result = stats.ttest_rel(mine, base)
        ci = result.confidence_interval(1 - ALPHA)
        out.update(ci_low=float(ci.low), ci_high=float(ci.high), p=float(result.pvalue))
    return out


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (Holm 1979); None (no test) stays None and is not counted in m.

    The i-th smallest of m p-values (i = 0, 1, ...) is multiplied by m - i, capped at 1, and never allowed
    below the adjusted p before it, so a hypothesis is rejected only when every smaller one is. Adjusted
    p < alpha is then exactly Holm's step-down test at family-wise error rate alpha.
    """
    tested = sorted((i for i, p in enumerate(pvalues) if p is not None), key=lambda i: pvalues[i])
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def bonferroni(pvalues: list[float | None]) -> list[float | None]:
    """Bonferroni-adjusted p-values: p times m (the tests that ran), capped at 1; None stays None.

    For comparisons declared one by one in an analysis plan (the compute ladder's 2 gaps x budgets), where
    the plan fixed Bonferroni; adjusted p < alpha is exactly raw p < alpha / m.
    """
    m = sum(p is not None for p in pvalues)
    return [None if p is None else min(1.0, m * p) for p in pvalues]


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rho (average ranks for ties); None when undefined (fewer than 2 points, or a constant side)."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs two sequences of equal length")
    if len(xs) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)  # a constant side is the None case below
        rho = float(stats.spearmanr(xs, ys).statistic)
    return None if np.isnan(rho) else rho


def pooled_std(groups: list[list[float]]) -> float | None:
    """sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over groups with at least two values."""
    usable = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in usable)
    if dof == 0:
        return None
    return float(np.sqrt(sum((len(g) - 1) * np.var(g, ddof=1) for g in usable) / dof))


def median_std(groups: list[list[float]]) -> float | None:
    stds = [s for s in (sample_std(g) for g in groups) if s is not None]
    return float(np.median(stds)) if stds else None
