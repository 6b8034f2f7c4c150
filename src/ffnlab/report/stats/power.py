"""What a paired t-test with this many seeds can see: the smallest detectable difference, and the seeds
a given difference would need. Both come from the noncentral t distribution (scipy.stats.nct).

With n pairs whose differences have sd s, a true mean difference d gives t ~ nct(n - 1, d * sqrt(n) / s);
the two-sided test at alpha rejects when |t| > t_{1 - alpha/2, n - 1}.
"""

from __future__ import annotations

import math

from scipy import optimize, stats

POWER = 0.8
MAX_SEEDS = 1_000_000  # past this a difference is "not detectable with seeds" (None)


def power(effect: float, n: int, alpha: float) -> float:
    """Power of a two-sided paired t-test with n pairs, at standardized effect = difference / sd."""
    df = n - 1
    crit = stats.t.isf(alpha / 2, df)
    noncentrality = effect * math.sqrt(n)
    # P(T < -crit) written as P(T' > crit) with T' ~ nct(df, -noncentrality): scipy 1.17.1's nct.cdf returns
    # nan deep in the left tail (e.g. df 2, nc 10.4), where sf returns the tiny number it should.
    return float(stats.nct.sf(crit, df, noncentrality) + stats.nct.sf(crit, df, -noncentrality))


def detectable_difference(sd: float | None, n: int, alpha: float | None, target: float = POWER) -> float | None:
    """The difference (in sd's units) that n pairs detect with probability `target`; None if undefined."""
    if not sd or n < 2 or alpha is None:
        return None
    high = 1.0
    while power(high, n, alpha) < target:  # power rises with the effect; double until bracketed
        high *= 2
    return sd * optimize.brentq(lambda effect: power(effect, n, alpha) - target, 0.0, high, xtol=1e-12)


def seeds_needed(difference: float | None, sd: float | None, alpha: float | None, target: float = POWER) -> int | None:
    """The fewest pairs (seeds) that detect `difference` with probability `target`; None if undefined."""
    if not difference or not sd or alpha is None:
        return None
    effect = abs(difference) / sd
    if power(effect, 2, alpha) >= target:
        return 2
    low, high = 2, 4  # power(low) < target throughout; power rises with n, so bisect on integers
    while power(effect, high, alpha) < target:
        low, high = high, 2 * high
        if high > MAX_SEEDS:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if power(effect, mid, alpha) >= target else (mid, high)
    return high
