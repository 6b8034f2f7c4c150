"""comparison.md's figures of a group, each with the caption that says what its marks are (issue 25.4)."""

from __future__ import annotations

from ffnlab.report.variants import BASELINE


def forest_lines(g: dict) -> list[str]:
    """The forest plot, beside the comparison table: the picture a reproduction is judged by."""
    if "forest" not in g["plots"]:
        return []
    return [
        f"![Δ vs {BASELINE} with 95% intervals, beside the paper's Δ]({g['plots']['forest']})", "",
        f"Left: each variant's final {g['split']} loss minus {BASELINE}'s, the mean of the per-seed differences with "
        "its 95% t-interval (the numbers of the paired table below); filled = beyond seed noise after Holm (the "
        "interval is per test, not adjusted, so it can exclude 0 on a hollow marker). Right: the paper's Δ "
        f"log-perplexity vs {BASELINE} (Shazeer 2020, Table 1: C4, 65,536 steps). The two axes have different scales "
        "(nats of this study's data and budget, log-perplexity on C4): compare the sign and the ordering, not the "
        "sizes. Left of the dashed line is better than the baseline on both.", "",
    ]


def _curves_caption(g: dict) -> str:
    windows = g.get("val_curve_windows") or []
    caption = "Validation curves: mean over seeds at each optimizer step, band = min–max."
    if not windows:
        return caption + " Every point scores the whole validation split."
    subset = " or ".join(map(str, windows))
    return caption + (
        f" Dashed: fit's validations, on the first {subset} windows of the validation split (`data.fit_val_windows`): "
        "a fixed subset, so these points compare with each other. ◇: the final validation, on the whole split (the run "
        "records' `val_loss`, the tables' val ppl). It is not joined to the dashed line: a subset and the whole split "
        "score the same weights differently, and a line would draw that difference as training."
    )


def plot_lines(g: dict) -> list[str]:
    """The group's other figures, after its tables; the curves with their caption."""
    lines = ["### Plots", ""]
    for kind, name in g["plots"].items():
        if kind != "forest":
            lines += [f"![{kind}]({name})", ""] + ([_curves_caption(g), ""] if kind == "val_curves" else [])
    if "val_curves" not in g["plots"]:
        lines += ["(No validation curves: no run in this group has val/loss in csv/metrics.csv.)", ""]
    return lines
