"""One group of comparable runs -> table rows, best LRs, paired tests vs ReLU, family summary, stacks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ffnlab.report.stats.comparisons import Losses, gated_vs_ungated, vs_baseline
from ffnlab.report.studies.downstream import analyse_downstream
from ffnlab.report.studies.finetune import analyse_finetune
from ffnlab.report.records import Group, Run
from ffnlab.report.stacks import stack_summary
from ffnlab.report.stats.paired import ALPHA, median_std, pooled_std, sample_std, spearman
from ffnlab.report.variants import BASELINE, FAMILIES, PAPER_LOG_PPL, Families, paper_delta


def _lr_order(lr: float | None) -> tuple:
    return (lr is None, lr or 0.0)


def _common(values: list):
    """The value all runs agree on; None when missing or when runs disagree (shown as n/a)."""
    present = [v for v in values if v is not None]
    return present[0] if present and all(v == present[0] for v in present) else None


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def final_loss(run: Run, split: str) -> float:
    return run.test_loss if split == "test" else run.val_loss


def cell_row(variant: str, lr: float | None, runs: list[Run], split: str) -> dict:
    """The summary of one (variant, lr) cell over its finite seeds; diverged seeds are counted apart."""
    runs = sorted(runs, key=lambda r: r.seed)
    finite = [r for r in runs if not r.diverged]
    losses = [final_loss(r, split) for r in finite]
    val_losses = [r.val_loss for r in finite]
    tests = [r.test_loss for r in finite]
    speeds = [r.metrics["tokens_per_s"] for r in finite if isinstance(r.metrics.get("tokens_per_s"), (int, float))]
    return {
        "variant": variant,
        "lr": lr,
        "family": _common([r.family for r in runs]),
        "n_seeds": len(finite),
        "n_diverged": len(runs) - len(finite),
        "seeds": [r.seed for r in finite],
        "loss_mean": _mean(losses),
        "loss_std": sample_std(losses),
        "val_loss_mean": _mean(val_losses),
        "val_loss_std": sample_std(val_losses),
        "test_loss_mean": _mean(tests) if tests and None not in tests else None,
        # exp of the mean log-loss (a geometric mean of perplexities), not the mean of exp.
        "val_ppl": math.exp(_mean(val_losses)) if val_losses else None,
        "params_ffn": _common([r.metrics.get("params_ffn") for r in runs]),
        "params_total": _common([r.metrics.get("params_total") for r in runs]),
        "flops_per_token": _common([r.metrics.get("flops_per_token") for r in runs]),
        "tokens_per_s": _mean(speeds),
        "paper_log_ppl": PAPER_LOG_PPL.get(variant),
        "paper_delta": paper_delta(variant),
        "run_dirs": [r.run_dir for r in finite],
    }


def _split_note(lr_sweep: bool, split: str, n_runs: int, n_with_test: int) -> str:
    if not lr_sweep:
        if split == "test":
            return "Final loss = **test** loss (every finite run in this group has one)."
        return f"Final loss = **validation** loss ({n_runs - n_with_test} of {n_runs} finite runs have no test loss)."
    chooser = (
        "LR sweep: every variant (the baseline too) is compared at its own best LR, the LR with the lowest mean "
        "**validation** loss over seeds (an LR where any seed diverged counts as the worst)"
    )
    if split == "test":
        return f"{chooser}; the comparison at that LR is reported on the **test** split, which played no part in it."
    return (
        f"{chooser}; the comparison is reported on the **validation** split too, because "
        f"{n_runs - n_with_test} of {n_runs} finite runs have no test loss, so it is optimistically biased."
    )


def paired_sentence(tests: list[dict]) -> str:
    if not tests:
        return f"No paired test: the group has no {BASELINE} baseline."
    beyond = [t["variant"] for t in tests if t["beyond_noise"] is True]
    within = [t["variant"] for t in tests if t["beyond_noise"] is False]
    unknown = [t["variant"] for t in tests if t["beyond_noise"] is None]
    parts = [
        f"Beyond seed noise (Holm-adjusted p < 0.05 over {tests[0]['m']} tests): {', '.join(beyond) or 'none'}.",
        f"Not distinguishable from seed noise: {', '.join(within) or 'none'}.",
    ] if tests[0]["m"] else []
    raw_only = [t["variant"] for t in tests if t["beyond_noise"] is False and t["p"] < ALPHA]
    if raw_only:
        parts.append(f"Raw p < 0.05 but not after correction: {', '.join(raw_only)}.")
    if unknown:
        parts.append(f"No test (fewer than 2 seeds shared with {BASELINE}, or no spread): {', '.join(unknown)}.")
    return " ".join(parts)


def family_means(rows: list[dict]) -> list[dict]:
    """Mean of variant means per family (for the table and plot; the test is paired by seed)."""
    families = []
    for name in FAMILIES:
        members = [r for r in rows if r["family"] == name]
        if members:
            families.append({"family": name, "variants": [r["variant"] for r in members],
                             "mean_of_means": _mean([r["loss_mean"] for r in members])})
    return families


@dataclass
class Choice:
    """A group's runs at each variant's best LR: what every comparison of the group (or across groups) uses."""

    split: str  # "test" when every finite run has a test loss, else "val"
    lrs: list
    cells: dict  # (variant, lr) -> runs
    best_lr: dict  # variant -> its LR with the lowest mean validation loss
    unstable: list  # variants that diverged at every LR
    chosen: dict  # variant -> its runs at best_lr (not for unstable variants)
    n_finite: int
    n_with_test: int
    families: Families  # variant label -> family, from the runs' records


def choose(group: Group) -> Choice:
    runs = group.runs
    lrs = sorted({r.lr for r in runs}, key=_lr_order)
    finite = [r for r in runs if not r.diverged]
    n_with_test = sum(r.test_loss is not None for r in finite)
    split = "test" if finite and n_with_test == len(finite) else "val"

    cells: dict[tuple[str, float | None], list[Run]] = {}
    for run in runs:
        cells.setdefault((run.variant, run.lr), []).append(run)
    variants = sorted({v for v, _ in cells})

    # Best LR by validation loss even when the table reports test: choosing on test would leak it.
    # An LR where any seed diverged is the worst there is (dropping the seed would flatter unstable LRs).
    # Ties go to the smaller LR. Without an LR sweep each variant has one cell, so this is a no-op.
    def cell_val_loss(cell: tuple) -> tuple:
        diverged = any(r.diverged for r in cells[cell])
        return (math.inf if diverged else float(np.mean([r.val_loss for r in cells[cell]])), _lr_order(cell[1]))

    best_lr = {v: min((c for c in cells if c[0] == v), key=cell_val_loss)[1] for v in variants}
    # A variant whose best LR still has a diverged seed diverged at every LR: it ranks below all the
    # others and has no mean to compare.
    unstable = [v for v in variants if any(r.diverged for r in cells[(v, best_lr[v])])]
    chosen = {v: cells[(v, best_lr[v])] for v in variants if v not in unstable}
    families = {r.variant: r.family for r in runs if r.family is not None}
    return Choice(split, lrs, cells, best_lr, unstable, chosen, len(finite), n_with_test, families)


def seed_losses(choice: Choice, split: str) -> Losses:
    """variant -> seed -> final loss on `split`, at the variant's best LR."""
    return {v: {r.seed: final_loss(r, split) for r in runs} for v, runs in choice.chosen.items()}


def analyse_group(group: Group) -> dict:
    runs = group.runs
    choice = choose(group)
    split, lrs, cells, best_lr, unstable, chosen = (
        choice.split, choice.lrs, choice.cells, choice.best_lr, choice.unstable, choice.chosen)
    lr_sweep = len(lrs) > 1

    rows = [cell_row(v, best_lr[v], chosen[v], split) for v in chosen]
    rows.sort(key=lambda r: (r["loss_mean"], r["variant"]))
    base = next((r for r in rows if r["variant"] == BASELINE), None)
    for row in rows:
        row["delta_vs_relu"] = row["loss_mean"] - base["loss_mean"] if base else None
        row["delta_vs_relu_pct"] = 100 * row["delta_vs_relu"] / base["loss_mean"] if base else None
    order = [r["variant"] for r in rows]

    lr_rows = []
    if lr_sweep:
        for v in order + unstable:
            for lr in lrs:
                if (v, lr) in cells:
                    lr_rows.append({**cell_row(v, lr, cells[(v, lr)], split), "best": lr == best_lr[v]})

    in_paper = [r for r in rows if r["paper_log_ppl"] is not None]
    losses = seed_losses(choice, split)
    paired = vs_baseline(losses, order)
    by_variant = [list(losses[v].values()) for v in order]
    experiments = sorted({r.experiment for r in runs if r.experiment})
    # lm-eval scores of the runs at each variant's chosen LR, when scripts/evaluate.py has scored them
    at_best_lr = Group(group.index, group.setting, [r for rs in chosen.values() for r in rs], group.finetune)
    downstream = analyse_downstream(at_best_lr, order)
    return {
        "index": group.index,
        "setting": group.setting,
        "experiments": experiments,
        "n_runs": len(runs),
        "n_diverged": len(runs) - choice.n_finite,
        **stack_summary(runs),
        "lr_sweep": lr_sweep,
        "lrs": lrs,
        "best_lr": best_lr if lr_sweep else None,
        "split": split,
        "split_note": _split_note(lr_sweep, split, choice.n_finite, choice.n_with_test),
        "rows": rows,
        "diverged_at_every_lr": unstable,
        "lr_rows": lr_rows,
        "spearman_vs_paper": spearman([r["loss_mean"] for r in in_paper], [r["paper_log_ppl"] for r in in_paper]),
        "spearman_variants": [r["variant"] for r in in_paper],
        "paired_vs_relu": paired,
        "paired_sentence": paired_sentence(paired),
        "seed_std_pooled": pooled_std(by_variant),
        "seed_std_median": median_std(by_variant),
        "families": family_means(rows),
        "gated_minus_ungated": gated_vs_ungated(losses, choice.families),
        **({"downstream": downstream} if downstream else {}),
        # a fine-tuning group's scores (its loss rows above are the fine-tune's validation loss); the key marks it
        **({"finetune": analyse_finetune(at_best_lr, order)} if group.finetune else {}),
    }
