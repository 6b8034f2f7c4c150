"""One group of comparable runs -> table rows, best LRs, paired tests vs ReLU, family summary."""

from __future__ import annotations

import math

from ffnlab.report.records import Group, Run
from ffnlab.report.stats import describe_differences, mean, median_std, pooled_std, sample_std, spearman

BASELINE = "relu"

# Shazeer 2020, "GLU Variants Improve Transformer", Table 1: log-perplexity on C4 after 65,536 steps.
PAPER_LOG_PPL = {
    "relu": 1.997, "gelu": 1.983, "swish": 1.994, "glu": 1.982,
    "bilinear": 1.960, "reglu": 1.953, "geglu": 1.942, "swiglu": 1.944,
}

# Kept by name here, not imported from ffnlab.ffn (the report must not import torch); ffn.VARIANTS
# marks the same six as kind "gated".
GATED = frozenset({"glu", "bilinear", "reglu", "geglu", "swiglu", "gtu"})
FAMILIES = ("gated", "ungated", "maxout")


def family(variant: str) -> str:
    """The family of a variant label: `geglu[gelu_approximate=tanh]` is gated like `geglu`."""
    name = variant.split("[", 1)[0]
    if name in GATED:
        return "gated"
    return "maxout" if name == "maxout" else "ungated"


def _lr_order(lr: float | None) -> tuple:
    return (lr is None, lr or 0.0)


def _common(values: list):
    """The value all runs agree on; None when missing or when runs disagree (shown as n/a)."""
    present = [v for v in values if v is not None]
    return present[0] if present and all(v == present[0] for v in present) else None


def final_loss(run: Run, split: str) -> float:
    return run.test_loss if split == "test" else run.val_loss


def cell_row(variant: str, lr: float | None, runs: list[Run], split: str) -> dict:
    """The summary of one (variant, lr) cell over its seeds."""
    runs = sorted(runs, key=lambda r: r.seed)
    losses = [final_loss(r, split) for r in runs]
    val_losses = [r.val_loss for r in runs]
    tests = [r.test_loss for r in runs]
    speeds = [r.metrics["tokens_per_s"] for r in runs if isinstance(r.metrics.get("tokens_per_s"), (int, float))]
    return {
        "variant": variant,
        "lr": lr,
        "family": family(variant),
        "n_seeds": len(runs),
        "seeds": [r.seed for r in runs],
        "loss_mean": mean(losses),
        "loss_std": sample_std(losses),
        "val_loss_mean": mean(val_losses),
        "val_loss_std": sample_std(val_losses),
        "test_loss_mean": mean(tests) if None not in tests else None,
        # exp of the mean log-loss (a geometric mean of perplexities), not the mean of exp.
        "val_ppl": math.exp(mean(val_losses)),
        "params_ffn": _common([r.metrics.get("params_ffn") for r in runs]),
        "params_total": _common([r.metrics.get("params_total") for r in runs]),
        "flops_per_token": _common([r.metrics.get("flops_per_token") for r in runs]),
        "tokens_per_s": mean(speeds) if speeds else None,
        "paper_log_ppl": PAPER_LOG_PPL.get(variant),
        "paper_delta": PAPER_LOG_PPL[variant] - PAPER_LOG_PPL[BASELINE] if variant in PAPER_LOG_PPL else None,
        "run_dirs": [r.run_dir for r in runs],
    }


def _split_note(lr_sweep: bool, split: str, n_runs: int, n_with_test: int) -> str:
    if not lr_sweep:
        if split == "test":
            return "Final loss = **test** loss (every run in this group has one)."
        return f"Final loss = **validation** loss ({n_runs - n_with_test} of {n_runs} runs have no test loss)."
    chooser = (
        "LR sweep: every variant (the baseline too) is compared at its own best LR, the LR with the lowest mean "
        "**validation** loss over seeds"
    )
    if split == "test":
        return f"{chooser}; the comparison at that LR is reported on the **test** split, which played no part in it."
    return (
        f"{chooser}; the comparison is reported on the **validation** split too, because "
        f"{n_runs - n_with_test} of {n_runs} runs have no test loss, so it is optimistically biased."
    )


def paired_vs_baseline(chosen: dict[str, list[Run]], order: list[str], split: str) -> list[dict]:
    """Per variant: loss(variant, seed) - loss(relu, seed) over the seeds both have."""
    if BASELINE not in chosen:
        return []
    base = {r.seed: final_loss(r, split) for r in chosen[BASELINE]}
    tests = []
    for variant in order:
        if variant == BASELINE:
            continue
        mine = {r.seed: final_loss(r, split) for r in chosen[variant]}
        seeds = sorted(mine.keys() & base.keys())
        tests.append({"variant": variant, "seeds": seeds, **describe_differences([mine[s] - base[s] for s in seeds])})
    return tests


def paired_sentence(tests: list[dict]) -> str:
    if not tests:
        return f"No paired test: the group has no {BASELINE} baseline."
    beyond = [t["variant"] for t in tests if t["beyond_noise"] is True]
    within = [t["variant"] for t in tests if t["beyond_noise"] is False]
    unknown = [t["variant"] for t in tests if t["beyond_noise"] is None]
    parts = [
        f"Larger than seed noise (95% interval excludes 0): {', '.join(beyond) or 'none'}.",
        f"Not distinguishable from seed noise (interval contains 0): {', '.join(within) or 'none'}.",
    ]
    if unknown:
        parts.append(f"No interval (fewer than 2 seeds shared with {BASELINE}): {', '.join(unknown)}.")
    return " ".join(parts)


def family_summary(rows: list[dict], chosen: dict[str, list[Run]], split: str) -> dict:
    """Mean of variant means per family, and gated - ungated paired by seed.

    The paired difference uses only seeds that every gated and every ungated variant ran, so each
    seed's family means average the same variants.
    """
    families = []
    for name in FAMILIES:
        members = [r for r in rows if r["family"] == name]
        if members:
            families.append({
                "family": name,
                "variants": [r["variant"] for r in members],
                "mean_of_means": mean([r["loss_mean"] for r in members]),
            })
    by_family = {f: [v for v in chosen if family(v) == f] for f in ("gated", "ungated")}
    paired = describe_differences([])
    seeds: list[int] = []
    if by_family["gated"] and by_family["ungated"]:
        loss = {v: {r.seed: final_loss(r, split) for r in chosen[v]} for v in by_family["gated"] + by_family["ungated"]}
        seeds = sorted(set.intersection(*(set(by_seed) for by_seed in loss.values())))
        family_mean = {f: [mean([loss[v][s] for v in by_family[f]]) for s in seeds] for f in by_family}
        paired = describe_differences([g - u for g, u in zip(family_mean["gated"], family_mean["ungated"])])
    return {"families": families, "gated_minus_ungated": {"seeds": seeds, **paired}}


def analyse_group(group: Group) -> dict:
    runs = group.runs
    lrs = sorted({r.lr for r in runs}, key=_lr_order)
    lr_sweep = len(lrs) > 1
    n_with_test = sum(r.test_loss is not None for r in runs)
    split = "test" if n_with_test == len(runs) else "val"

    cells: dict[tuple[str, float | None], list[Run]] = {}
    for run in runs:
        cells.setdefault((run.variant, run.lr), []).append(run)
    variants = sorted({v for v, _ in cells})

    # Best LR by validation loss even when the table reports test: choosing on test would leak it.
    # Ties go to the smaller LR. Without an LR sweep each variant has one cell, so this is a no-op.
    def mean_val_loss(cell: tuple) -> tuple:
        return (mean([r.val_loss for r in cells[cell]]), _lr_order(cell[1]))

    best_lr = {v: min((c for c in cells if c[0] == v), key=mean_val_loss)[1] for v in variants}
    chosen = {v: cells[(v, best_lr[v])] for v in variants}

    rows = [cell_row(v, best_lr[v], chosen[v], split) for v in variants]
    rows.sort(key=lambda r: (r["loss_mean"], r["variant"]))
    base = next((r for r in rows if r["variant"] == BASELINE), None)
    for row in rows:
        row["delta_vs_relu"] = row["loss_mean"] - base["loss_mean"] if base else None
        row["delta_vs_relu_pct"] = 100 * row["delta_vs_relu"] / base["loss_mean"] if base else None
    order = [r["variant"] for r in rows]

    lr_rows = []
    if lr_sweep:
        for v in order:
            for lr in lrs:
                if (v, lr) in cells:
                    lr_rows.append({**cell_row(v, lr, cells[(v, lr)], split), "best": lr == best_lr[v]})

    in_paper = [r for r in rows if r["paper_log_ppl"] is not None]
    paired = paired_vs_baseline(chosen, order, split)
    seed_losses = [[final_loss(r, split) for r in chosen[v]] for v in order]
    experiments = sorted({r.experiment for r in runs if r.experiment})
    return {
        "index": group.index,
        "setting": group.setting,
        "experiments": experiments,
        "n_runs": len(runs),
        "lr_sweep": lr_sweep,
        "lrs": lrs,
        "best_lr": best_lr if lr_sweep else None,
        "split": split,
        "split_note": _split_note(lr_sweep, split, len(runs), n_with_test),
        "rows": rows,
        "lr_rows": lr_rows,
        "spearman_vs_paper": spearman([r["loss_mean"] for r in in_paper], [r["paper_log_ppl"] for r in in_paper]),
        "spearman_variants": [r["variant"] for r in in_paper],
        "paired_vs_relu": paired,
        "paired_sentence": paired_sentence(paired),
        "seed_std_pooled": pooled_std(seed_losses),
        "seed_std_median": median_std(seed_losses),
        **family_summary(rows, chosen, split),
    }
