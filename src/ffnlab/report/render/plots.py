"""PNG plots: of one group (validation curves, forest plot, family summary, loss vs LR) and of a ladder.

The final loss of each variant has no chart of its own (there were bars, issue 25.4): what a reader compares is the
difference from the baseline, which the forest plot draws with its paired interval. An interval per variant mean
would be wider (the seed moves every variant alike, and pairing removes that) and would invite reading an overlap
as "no difference"; the means themselves are in the comparison table.

Figures are built with matplotlib's object API (no pyplot), which renders with Agg and keeps no
global state between groups. They are drawn in matplotlib's default style (not a user's matplotlibrc) and
saved without the "Software" PNG text, so the same records give the same bytes (issue 8).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.style
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ffnlab.report.render.forest import plot_forest
from ffnlab.report.studies.histories import val_curves


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path.name


def _save_if(fig: Figure | None, path: Path) -> str | None:
    return None if fig is None else _save(fig, path)


def plot_val_curves(result: dict, sweep_dir: Path, path: Path) -> str | None:
    curves = val_curves(result["rows"], sweep_dir)
    if not curves:
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    colors = {v: f"C{i}" for i, v in enumerate(dict.fromkeys(c["variant"] for c in curves))}
    for c in curves:
        color = colors[c["variant"]]
        if c["windows"] is None and len(c["steps"]) == 1:  # the whole split after fit's subsets: not joined to them
            bar = [[c["mean"][0] - c["low"][0]], [c["high"][0] - c["mean"][0]]]
            ax.errorbar(c["steps"], c["mean"], yerr=bar, fmt="D", color=color, mfc="white", capsize=3)
            continue
        ax.plot(c["steps"], c["mean"], "--" if c["windows"] else "-", color=color)
        ax.fill_between(c["steps"], c["low"], c["high"], color=color, alpha=0.2)
    seeds = {v: max(c["n"] for c in curves if c["variant"] == v) for v in colors}
    handles = [Patch(color=color, label=f"{v} (n={seeds[v]})") for v, color in colors.items()]
    subsets = sorted({c["windows"] for c in curves if c["windows"]})
    if subsets:  # what each mark scored, in the legend: the y values of the two kinds do not compare
        handles += [Line2D([], [], color="black", ls="--", label=f"first {', '.join(map(str, subsets))} windows"),
                    Line2D([], [], color="black", ls="", marker="D", mfc="white", label="final, whole split")]
    ax.set(xlabel="optimizer step", ylabel="validation loss (nats)",
           title="Validation loss: mean over seeds, band = min-max")
    ax.legend(handles=handles, fontsize="small")
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
            "forest": _save_if(plot_forest(result), out_dir / f"{prefix}forest.png"),
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
