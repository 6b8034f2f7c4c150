"""Paired factors: two groups whose settings differ in exactly one key, e.g. `init` (gpt2 | t5).

The same variant and seed under both values of the key start from the same seed and see the same batches, so
the factor's effect on a variant is measured seed by seed: loss(B) - loss(A), one paired t-test per variant,
Holm-corrected over the variants (the init_compare plan, docs/results/init_compare/PLAN.md, comparison 3).
Each level's gated - ungated test, already in its group's section, is judged again here with Bonferroni over
the levels (the plan's comparison 2: one pre-declared test per level).

The budget keys are not factors: groups that differ only in them form a compute ladder (ffnlab.report.studies.ladder).
"""

from __future__ import annotations

from ffnlab.report.analysis import choose, seed_losses
from ffnlab.report.stats.comparisons import family_seed_means, judged, paired_by_seed, paper_family_delta
from ffnlab.report.records import BUDGET_KEYS, Group, differing_keys
from ffnlab.report.stats.paired import paired_test


def _level_order(value) -> tuple:
    """Numbers in numeric order, anything else by its text: A (the reference) is the first level."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (not number, value if number else str(value))


def find_factors(groups: list[Group]) -> list[tuple[str, Group, Group]]:
    """(key, group at level A, group at level B) for every pair of groups differing in one non-budget key."""
    found = []
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            keys = differing_keys(a.setting, b.setting)
            if len(keys) == 1 and keys[0] not in BUDGET_KEYS:
                key = keys[0]
                low, high = sorted((a, b), key=lambda g: _level_order(g.setting.get(key)))
                found.append((key, low, high))
    return found


def _family_per_level(levels: list[tuple], split: str) -> list[dict]:
    """Each level's gated - ungated (mean per seed), Bonferroni over the levels that have one."""
    tests, papers = [], []
    for value, group, losses, families in levels:
        seeds, gated, ungated = family_seed_means(losses, families)
        tests.append({"level": value, "group": group.index, "seeds": seeds, **paired_test(gated, ungated)})
        papers.append(paper_family_delta(list(losses), families))
    return judged(tests, "bonferroni", papers)


def analyse_factor(key: str, a: Group, b: Group, spearman_by_group: dict[int, dict]) -> dict | None:
    """The factor's paired effect per variant; None when no variant and seed ran under both levels."""
    choice_a, choice_b = choose(a), choose(b)
    # Test only when every run on both sides has one: a difference must compare one split with itself.
    split = "test" if choice_a.split == choice_b.split == "test" else "val"
    losses_a, losses_b = seed_losses(choice_a, split), seed_losses(choice_b, split)
    variants = sorted(losses_a.keys() & losses_b.keys())
    tests = [{"variant": v, **paired_by_seed(losses_b[v], losses_a[v])} for v in variants]
    if not any(t["n"] for t in tests):
        return None
    tests = judged(tests, "holm", [None] * len(tests))  # the paper did not vary the init: no paper Δ
    tests.sort(key=lambda t: (t["mean"] is None, t["mean"], t["variant"]))
    level_a, level_b = a.setting.get(key), b.setting.get(key)
    return {
        "key": key,
        "levels": [level_a, level_b],
        "groups": [a.index, b.index],
        "split": split,
        "best_lr": [{v: choice_a.best_lr[v] for v in variants}, {v: choice_b.best_lr[v] for v in variants}]
        if len(choice_a.lrs) > 1 or len(choice_b.lrs) > 1 else None,
        "tests": tests,
        "sentence": factor_sentence(key, level_a, level_b, tests),
        "gated_minus_ungated": _family_per_level(
            [(level_a, a, losses_a, choice_a.families), (level_b, b, losses_b, choice_b.families)], split),
        "spearman_vs_paper": [{"level": level, **spearman_by_group[g.index]}
                              for level, g in ((level_a, a), (level_b, b))],
    }


def factor_sentence(key: str, level_a, level_b, tests: list[dict]) -> str:
    tested = [t for t in tests if t["beyond_noise"] is not None]
    lower = [t["variant"] for t in tested if t["beyond_noise"] and t["mean"] < 0]
    higher = [t["variant"] for t in tested if t["beyond_noise"] and t["mean"] > 0]
    within = [t["variant"] for t in tested if not t["beyond_noise"]]
    untested = [t["variant"] for t in tests if t["beyond_noise"] is None]
    by_mean = sum(t["mean"] is not None and t["mean"] < 0 for t in tests)
    parts = [f"`{key}={level_b}` gives a lower mean loss than `{key}={level_a}` for {by_mean} of {len(tests)} "
             "variants."]
    if tested:
        parts += [f"Lower beyond seed noise (Holm-adjusted p < 0.05 over {tested[0]['m']} tests): "
                  f"{', '.join(lower) or 'none'}.",
                  f"Higher beyond seed noise: {', '.join(higher) or 'none'}.",
                  f"Not distinguishable from seed noise: {', '.join(within) or 'none'}."]
    if untested:
        parts.append(f"No test (fewer than 2 shared seeds, or no spread): {', '.join(untested)}.")
    return " ".join(parts)
