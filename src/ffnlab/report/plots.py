"""PNG plots: of one group (validation curves, final-loss bars, family summary, loss vs LR) and of a ladder.

Figures are built with matplotlib's object API (no pyplot), which renders with Agg and keeps no
global state between groups. They are drawn in matplotlib's default style (not a user's matplotlibrc) and
saved without the "Software" PNG text, so the same records give the same bytes (issue 8).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.style
import pandas as pd
from matplotlib.figure import Figure

from ffnlab.report.histories import read_history
from ffnlab.report.variants import BASELINE


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path.name


def plot_val_curves(result: dict, sweep_dir: Path, path: Path) -> str | None:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    drawn = 0
    for row in result["rows"]:
        histories = [h for h in (read_history(sweep_dir / d, "val/loss") for d in row["run_dirs"]) if h is not None]
        if not histories:
            continue
        # Only steps every seed logged, so the mean at a step never mixes different sets of seeds.
        table = pd.concat(histories, axis=1).dropna()
        if table.empty:
            continue
        line = ax.plot(table.index, table.mean(axis=1), label=f"{row['variant']} (n={len(histories)})")[0]
        ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=line.get_color(), alpha=0.2)
        drawn += 1
    if not drawn:
        return None
    ax.set(xlabel="step", ylabel="validation loss (nats)", title="Validation loss: mean over seeds, band = min-max")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_final_bars(result: dict, path: Path) -> str:
    rows = result["rows"]
    means = [r["loss_mean"] for r in rows]
    stds = [r["loss_std"] or 0.0 for r in rows]
    fig = Figure(figsize=(max(5, 0.8 * len(rows) + 2), 4.5))
    ax = fig.add_subplot()
    family_color = {"gated": "tab:blue", "ungated": "tab:orange", "maxout": "tab:green"}
    colors = ["tab:gray" if r["variant"] == BASELINE else family_color[r["family"]] for r in rows]
    ax.bar([r["variant"] for r in rows], means, yerr=stds, capsize=4, color=colors)
    low = min(m - s for m, s in zip(means, stds))
    high = max(m + s for m, s in zip(means, stds))
    pad = max(0.1 * (high - low), 1e-3)
    ax.set_ylim(low - pad, high + pad)  # losses differ in the 2nd decimal; a zero baseline hides that
    ax.set(ylabel=f"final {result['split']} loss (nats)", title="Final loss: mean ± std over seeds",
           xlabel="gray = relu baseline, blue = gated, orange = ungated, green = maxout")
    ax.tick_params(axis="x", rotation=45)
    return _save(fig, path)


def plot_families(result: dict, path: Path) -> str | None:
    families = result["families"]
    if not families:
        return None
    by_variant = {r["variant"]: r["loss_mean"] for r in result["rows"]}
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    names = [f["family"] for f in families]
    ax.bar(names, [f["mean_of_means"] for f in families], color="lightgray", label="mean of variant means")
    for x, fam in enumerate(families):
        ys = [by_variant[v] for v in fam["variants"]]
        ax.scatter([x] * len(ys), ys, color="black", zorder=3)
        for v, y in zip(fam["variants"], ys):
            ax.annotate(v, (x, y), xytext=(6, 0), textcoords="offset points", fontsize="small", va="center")
    values = list(by_variant.values())
    pad = max(0.1 * (max(values) - min(values)), 1e-3)
    ax.set_ylim(min(values) - pad, max(values) + pad)
    ax.set(ylabel=f"final {result['split']} loss (nats)", title="Gated vs ungated FFNs")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_loss_vs_lr(result: dict, path: Path) -> str | None:
    if not result["lr_sweep"] or any(r["lr"] is None for r in result["lr_rows"]):
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for variant in [r["variant"] for r in result["rows"]]:
        # An LR where a seed diverged has no honest mean; the table lists it.
        cells = [r for r in result["lr_rows"] if r["variant"] == variant and not r["n_diverged"]]
        lrs = [c["lr"] for c in cells]
        line = ax.errorbar(lrs, [c["val_loss_mean"] for c in cells], yerr=[c["val_loss_std"] or 0.0 for c in cells],
                           marker="o", capsize=3, label=variant)
        best = next(c for c in cells if c["best"])
        ax.scatter([best["lr"]], [best["val_loss_mean"]], marker="*", s=160, color=line.lines[0].get_color(), zorder=3)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="validation loss (nats)", title="Validation loss vs LR (star = best LR)")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_group(result: dict, sweep_dir: Path, out_dir: Path, prefix: str) -> dict[str, str]:
    """All plots of one group -> {kind: file name}; a plot without data is left out."""
    if not result["rows"]:
        return {}
    with matplotlib.style.context("default"):
        made = {
            "val_curves": plot_val_curves(result, sweep_dir, out_dir / f"{prefix}val_curves.png"),
            "final_loss": plot_final_bars(result, out_dir / f"{prefix}final_loss.png"),
            "families": plot_families(result, out_dir / f"{prefix}families.png"),
            "loss_vs_lr": plot_loss_vs_lr(result, out_dir / f"{prefix}loss_vs_lr.png"),
        }
    return {kind: name for kind, name in made.items() if name is not None}


def plot_ladder(ladder: dict, path: Path) -> str | None:
    """Final loss against training FLOPs per variant (log x): mean over seeds, bars = seed min-max."""
    points = [p for p in ladder["points"] if p["train_flops"] is not None]
    if not points:
        return None
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        for variant in sorted({p["variant"] for p in points}):
            mine = sorted((p for p in points if p["variant"] == variant), key=lambda p: p["train_flops"])
            means = [p["loss_mean"] for p in mine]
            bars = [[m - p["loss_min"] for m, p in zip(means, mine)], [p["loss_max"] - m for m, p in zip(means, mine)]]
            ax.errorbar([p["train_flops"] for p in mine], means, yerr=bars, marker="o", capsize=3, label=variant)
        ax.set_xscale("log")
        ax.set(xlabel="training FLOPs (flops_per_token × tokens_seen)", ylabel=f"final {ladder['split']} loss (nats)",
               title="Final loss vs training compute: mean over seeds, bars = min-max")
        ax.legend(fontsize="small")
        return _save(fig, path)
