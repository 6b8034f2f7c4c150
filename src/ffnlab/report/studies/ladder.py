"""Compute ladders: groups whose settings differ only in the budget keys (records.BUDGET_KEYS).

Each group is a rung (a budget). At each rung every variant is taken at its own best LR, chosen on validation
within the rung as its group section does, and the compute_ladder plan (docs/results/compute_ladder/PLAN.md)
fixes what is reported:
- final loss against training FLOPs (flops_per_token x tokens_seen) per variant, mean and seed min-max;
- SwiGLU - ReLU and gated - ungated (family means per seed) at each rung, paired by seed, Bonferroni over
  (gaps x rungs): 6 pre-declared tests for 2 gaps x 3 budgets;
- how each gap moves from the smallest budget to the largest, paired by seed (the plan claims a trend only
  if this difference is beyond noise);
- train - validation loss: the largest budget is ~16 passes over the training split, so overfitting shows
  as a training loss below the validation loss.
"""

from __future__ import annotations

import numpy as np

from ffnlab.report.analysis import choose, final_loss, seed_losses
from ffnlab.report.stats.comparisons import Losses, family_seed_means, judged, paired_by_seed, paper_family_delta
from ffnlab.report.studies.histories import train_tail_loss
from ffnlab.report.records import BUDGET_KEYS, Group, Run, differing_keys
from ffnlab.report.stats.paired import sample_std
from ffnlab.report.variants import Families, paper_delta

SWIGLU_RELU = "swiglu - relu"
GATED_UNGATED = "gated - ungated"


def find_ladders(groups: list[Group]) -> list[list[Group]]:
    """Sets of 2+ groups linked by differing only in budget keys, each ordered by budget."""
    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, a in enumerate(groups):
        for j in range(i + 1, len(groups)):
            keys = differing_keys(a.setting, groups[j].setting)
            if keys and set(keys) <= set(BUDGET_KEYS):
                parent[root(j)] = root(i)
    components: dict[int, list[Group]] = {}
    for i, group in enumerate(groups):
        components.setdefault(root(i), []).append(group)
    budget = lambda g: tuple(g.setting.get(k) or 0 for k in BUDGET_KEYS)  # noqa: E731
    return [sorted(c, key=budget) for c in components.values() if len(c) > 1]


def _rung(group: Group, base_steps) -> dict:
    steps, warmup = group.setting.get("trainer.max_steps"), group.setting.get("optim.warmup_steps")
    multiple = steps / base_steps if steps and base_steps else None
    label = f"{steps} steps" + (f" ({multiple:g}×)" if multiple else "")
    return {"group": group.index, "max_steps": steps, "optim_warmup_steps": warmup, "multiple": multiple,
            "label": label}


def _gap_sides(losses: Losses, gap: str, members: list[str], families: Families) -> tuple[dict, dict]:
    """(minuend, subtrahend) by seed for one gap at one rung."""
    if gap == SWIGLU_RELU:
        return losses["swiglu"], losses["relu"]
    seeds, gated, ungated = family_seed_means({v: losses[v] for v in members}, families)
    return dict(zip(seeds, gated)), dict(zip(seeds, ungated))


def _spread(values: list[float]) -> dict:
    return {"n": len(values), "mean": float(np.mean(values)) if values else None, "std": sample_std(values)}


def _point(rung: dict, variant: str, lr, runs: list[Run], split: str) -> dict:
    runs = sorted((r for r in runs if not r.diverged), key=lambda r: r.seed)
    losses = [final_loss(r, split) for r in runs]
    flops = [r.metrics["flops_per_token"] * r.metrics["tokens_seen"] for r in runs
             if isinstance(r.metrics.get("flops_per_token"), (int, float))
             and isinstance(r.metrics.get("tokens_seen"), (int, float))]
    return {"rung": rung["label"], "group": rung["group"], "variant": variant, "lr": lr,
            "seeds": [r.seed for r in runs], "n": len(runs),
            "train_flops": float(np.mean(flops)) if len(flops) == len(runs) and flops else None,
            "loss_mean": float(np.mean(losses)), "loss_std": sample_std(losses),
            "loss_min": float(min(losses)), "loss_max": float(max(losses))}


def _train_val(rung: dict, variant: str, lr, runs: list[Run]) -> dict:
    pairs = [(train_tail_loss(r.path), r.val_loss) for r in sorted(runs, key=lambda r: r.seed) if not r.diverged]
    pairs = [(t, v) for t, v in pairs if t is not None]  # a run without a csv history has no training loss
    gap = _spread([t - v for t, v in pairs])
    return {"rung": rung["label"], "group": rung["group"], "variant": variant, "lr": lr, "n": gap["n"],
            "train_loss_mean": _spread([t for t, _ in pairs])["mean"],
            "val_loss_mean": _spread([v for _, v in pairs])["mean"], "gap_mean": gap["mean"], "gap_std": gap["std"]}


def analyse_ladder(groups: list[Group]) -> dict:
    choices = [choose(g) for g in groups]
    # Test only when every rung has it for every run: a gap's trend must compare one split with itself.
    split = "test" if all(c.split == "test" for c in choices) else "val"
    rungs = [_rung(g, groups[0].setting.get("trainer.max_steps")) for g in groups]
    losses = [seed_losses(c, split) for c in choices]
    # The same members at every rung, so a gap's change with budget is not a change of who is in it.
    members = sorted(set.intersection(*(set(lv) for lv in losses)))
    gaps = ([SWIGLU_RELU] if {"swiglu", "relu"} <= set(members) else []) + [GATED_UNGATED]
    families = {label: family for c in choices for label, family in c.families.items()}
    papers = {SWIGLU_RELU: paper_delta("swiglu"), GATED_UNGATED: paper_family_delta(members, families)}

    tests, sides = [], {}
    for gap in gaps:
        for rung, rung_losses in zip(rungs, losses):
            sides[gap, rung["label"]] = _gap_sides(rung_losses, gap, members, families)
            tests.append({"gap": gap, "rung": rung["label"], "group": rung["group"],
                          **paired_by_seed(*sides[gap, rung["label"]])})
    tests = [t for t in tests if t["n"]]  # gated - ungated needs both families among the members
    by_seed = {key: {s: mine[s] - base[s] for s in mine.keys() & base.keys()} for key, (mine, base) in sides.items()}
    first, last = rungs[0]["label"], rungs[-1]["label"]
    trends = [{"gap": gap, "from": first, "to": last, **paired_by_seed(by_seed[gap, last], by_seed[gap, first])}
              for gap in gaps if by_seed[gap, first] and by_seed[gap, last]]

    points, train_val = [], []
    for rung, choice in zip(rungs, choices):
        rung["best_lr"] = dict(choice.best_lr) if len(choice.lrs) > 1 else None
        for variant in sorted(choice.chosen):
            lr = choice.best_lr[variant]
            points.append(_point(rung, variant, lr, choice.chosen[variant], split))
            train_val.append(_train_val(rung, variant, lr, choice.chosen[variant]))
    return {
        "budget_keys": list(BUDGET_KEYS),
        "groups": [g.index for g in groups],
        "split": split,
        "rungs": rungs,
        "members": members,
        "points": points,
        "gaps": judged(tests, "bonferroni", [papers[t["gap"]] for t in tests]),
        "trends": trends,
        "train_val": train_val,
    }
