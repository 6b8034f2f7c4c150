"""The forest plot: each variant's Δ vs the baseline with its 95% interval, beside the paper's Δ (issue 25.4).

It draws the paired table's numbers (ffnlab.report.stats.comparisons.vs_baseline: mean of the per-seed differences, the
t-interval, the Holm verdict), not a second computation of them. The paper's Δ (Table 1, log-perplexity on C4 after
65,536 steps) gets its own axis: our Δ is in nats of a small model early in training, so the sizes do not compare; the
sign and the ordering do.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ffnlab.report.variants import BASELINE


def forest_rows(result: dict) -> list[dict]:
    """What the plot draws, top to bottom: the paired tests vs the baseline, in the comparison table's order."""
    return [{k: t[k] for k in ("variant", "n", "mean", "ci_low", "ci_high", "beyond_noise", "paper_delta")}
            for t in result.get("paired_vs_relu") or [] if t["mean"] is not None]


def plot_forest(result: dict) -> Figure | None:
    rows = forest_rows(result)
    if not rows:
        return None
    fig = Figure(figsize=(8, 1.8 + 0.45 * len(rows)))
    ours, paper = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    ys = range(len(rows), 0, -1)  # the table's first row at the top
    for y, r in zip(ys, rows):
        # Filled: beyond seed noise after Holm; the interval is per test, so it can miss 0 on a hollow marker.
        face = "black" if r["beyond_noise"] else "white"
        if r["ci_low"] is not None:
            ours.plot([r["ci_low"], r["ci_high"]], [y, y], color="black", lw=1.5)
        ours.plot([r["mean"]], [y], "o", mfc=face, mec="black", ms=7)
        if r["paper_delta"] is None:
            paper.annotate("not in paper", (0, y), ha="center", va="center", fontsize="small", color="gray")
        else:
            paper.plot([r["paper_delta"]], [y], "D", color="tab:red", ms=6)
    for ax in (ours, paper):
        ax.axvline(0, color="gray", lw=0.8, ls="--")
        ax.grid(axis="x", alpha=0.3)
    ours.xaxis.set_major_locator(MaxNLocator(6))  # matplotlib's default crowds signed tick labels here
    ours.set_yticks(list(ys), [f"{r['variant']} (n={r['n']})" for r in rows])
    ours.set_ylim(0.4, len(rows) + 0.6)
    split = {"test": "test", "val": "validation"}.get(result["split"], result["split"])
    ours.set(xlabel=f"Δ final {split} loss vs {BASELINE} (nats)\n● beyond seed noise after Holm, ○ not",
             title="This study: paired by seed, 95% t-interval")
    paper.set(xlabel=f"Δ log-perplexity vs {BASELINE}\n(C4, 65,536 steps)", title="Shazeer 2020, Table 1")
    paper.set_xlim(min([-0.06] + [r["paper_delta"] or 0 for r in rows]) * 1.15, 0.02)
    fig.suptitle(f"Δ vs {BASELINE}, left of 0 = better than {BASELINE}; the scales differ: compare sign and order",
                 fontsize="medium")
    return fig
