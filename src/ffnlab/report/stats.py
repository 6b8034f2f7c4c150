"""Small statistics for a handful of seeds: sample std, t-intervals, paired differences, Spearman.

Written out by hand (no scipy) because the report must run anywhere a sweep can be copied to.
"""

from __future__ import annotations

import math
from statistics import median

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30; beyond 30 the normal 1.96 is used
# (the error is < 2% of the interval's width from df = 31 on).
T_975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def sample_std(xs: list[float]) -> float | None:
    """Standard deviation with ddof=1; None for fewer than two values (one seed says nothing of noise)."""
    if len(xs) < 2:
        return None
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return T_975[df - 1] if df <= len(T_975) else 1.96


def t_interval(xs: list[float]) -> tuple[float, float] | None:
    """95% t-interval for the mean of xs; None for fewer than two values."""
    sd = sample_std(xs)
    if sd is None:
        return None
    half = t_quantile_975(len(xs) - 1) * sd / math.sqrt(len(xs))
    m = mean(xs)
    return (m - half, m + half)


def describe_differences(diffs: list[float]) -> dict:
    """Mean, std and 95% interval of paired differences, and whether the interval excludes zero."""
    if not diffs:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None, "beyond_noise": None}
    ci = t_interval(diffs)
    return {
        "n": len(diffs),
        "mean": mean(diffs),
        "std": sample_std(diffs),
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        # None when there is no interval: "not known", which the report keeps apart from "no".
        "beyond_noise": (ci[0] > 0 or ci[1] < 0) if ci else None,
    }


def pooled_std(groups: list[list[float]]) -> float | None:
    """sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over groups with at least two values."""
    usable = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in usable)
    if dof == 0:
        return None
    return math.sqrt(sum((len(g) - 1) * sample_std(g) ** 2 for g in usable) / dof)


def median_std(groups: list[list[float]]) -> float | None:
    stds = [s for s in (sample_std(g) for g in groups) if s is not None]
    return median(stds) if stds else None


def average_ranks(xs: list[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and xs[order[end + 1]] == xs[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rho: Pearson correlation of average ranks (exact with ties); None if undefined."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs two sequences of equal length")
    if len(xs) < 2:
        return None
    rx, ry = average_ranks(xs), average_ranks(ys)
    mx, my = mean(rx), mean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)
