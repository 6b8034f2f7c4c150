"""The report's tables, each one pandas DataFrame of a group's records, emitted as markdown and CSV.

A table is (key in the group, columns for the CSV, columns for the markdown). The CSV keeps the raw numbers
(tidy: one file, a `group` and a `table` column); the markdown formats the same frame for people. Markdown
is rendered here in a few lines rather than with DataFrame.to_markdown, which needs `tabulate` for no gain.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ffnlab.report.variants import BASELINE

NA = "n/a"


def loss(x: float | None) -> str:
    return NA if x is None else f"{x:.4f}"


def signed(x: float | None, digits: int = 4, unit: str = "") -> str:
    return NA if x is None else f"{x:+.{digits}f}{unit}"


def mean_std(m: float | None, s: float | None) -> str:
    return f"{loss(m)} ± {loss(s)}"


def count(x) -> str:
    return NA if x is None else f"{x:,.0f}"


def sci(x) -> str:
    return NA if x is None else f"{x:.3g}"


def pvalue(x: float | None) -> str:
    return NA if x is None else f"{x:.2g}" if x < 0.001 else f"{x:.4f}"


def lr_text(x: float | None) -> str:
    return NA if x is None else f"{x:g}"


def interval(r) -> str:
    return NA if r["ci_low"] is None else f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"


def seeds_text(r) -> str:
    return ", ".join(map(str, r["seeds"])) or "none"


def n_seeds(r) -> str:
    return f"{r['n_seeds']}" + (f" + {r['n_diverged']} diverged" if r["n_diverged"] else "")


YES_NO = {True: "yes", False: "no", None: NA}
Column = tuple[str, Callable[[dict], str]]  # markdown title, cell text from the row


def comparison_md(split: str, lr_sweep: bool) -> list[Column]:
    return [("variant", lambda r: r["variant"])] + ([("best lr", lambda r: lr_text(r["lr"]))] if lr_sweep else []) + [
        (f"final {split} loss, mean ± std", lambda r: mean_std(r["loss_mean"], r["loss_std"])),
        ("n seeds", n_seeds),
        ("val ppl", lambda r: f"{r['val_ppl']:.2f}"),
        (f"Δ vs {BASELINE} (nats)", lambda r: signed(r["delta_vs_relu"])),
        (f"Δ vs {BASELINE} (%)", lambda r: signed(r["delta_vs_relu_pct"], 2, "%")),
        ("paper log-ppl", lambda r: NA if r["paper_log_ppl"] is None else f"{r['paper_log_ppl']:.3f}"),
        (f"paper Δ vs {BASELINE}", lambda r: signed(r["paper_delta"], 3)),
        ("params_ffn", lambda r: count(r["params_ffn"])),
        ("params_total", lambda r: count(r["params_total"])),
        ("FLOPs/token", lambda r: sci(r["flops_per_token"])),
        ("tokens/s", lambda r: count(r["tokens_per_s"])),
    ]


def lr_md(split: str) -> list[Column]:
    def diverged_or(text: Callable[[dict], str]) -> Callable[[dict], str]:
        return lambda r: f"diverged ({r['n_diverged']} of {r['n_seeds'] + r['n_diverged']} seeds)" \
            if r["n_diverged"] else text(r)

    return [
        ("variant", lambda r: r["variant"]),
        ("lr", lambda r: lr_text(r["lr"])),
        ("best (by val)", lambda r: "✓" if r["best"] else ""),
        ("val loss, mean ± std", diverged_or(lambda r: mean_std(r["val_loss_mean"], r["val_loss_std"]))),
        (f"{split} loss, mean ± std", diverged_or(lambda r: mean_std(r["loss_mean"], r["loss_std"]))),
        ("n seeds", n_seeds),
        ("val ppl", diverged_or(lambda r: f"{r['val_ppl']:.2f}")),
    ]


POWER_MD: list[Column] = [
    ("detectable diff (80% power)", lambda r: NA if r["detectable_diff"] is None else f"±{r['detectable_diff']:.4f}"),
    ("paper Δ", lambda r: signed(r["paper_delta"], 3)),
    ("seeds for paper Δ", lambda r: count(r["seeds_for_paper_delta"])),
]

PAIRED_TEST_MD: list[Column] = [  # what every paired test shows before its verdict
    ("seeds paired", seeds_text),
    ("mean diff", lambda r: signed(r["mean"])),
    ("std of diffs", lambda r: loss(r["std"])),
    ("95% t-interval", interval),
    ("p", lambda r: pvalue(r["p"])),
]

PAIRED_MD: list[Column] = [("variant", lambda r: r["variant"])] + PAIRED_TEST_MD + [
    ("p (Holm)", lambda r: pvalue(r["p_holm"])),
    ("beyond seed noise", lambda r: YES_NO[r["beyond_noise"]]),
] + POWER_MD

FAMILY_TEST_MD: list[Column] = PAIRED_TEST_MD + [("beyond seed noise", lambda r: YES_NO[r["beyond_noise"]])] + POWER_MD

ROW_CSV = [
    "variant", "lr", "best", "n_seeds", "n_diverged", "loss_mean", "loss_std", "val_loss_mean", "val_ppl",
    "test_loss_mean", "delta_vs_relu", "delta_vs_relu_pct", "paper_log_ppl", "paper_delta", "params_ffn",
    "params_total", "flops_per_token", "tokens_per_s",
]
TEST_CSV = ["variant", "n", "mean", "std", "ci_low", "ci_high", "p", "p_holm", "m", "beyond_noise", "alpha",
            "detectable_diff", "paper_delta", "seeds_for_paper_delta"]


def frames(g: dict) -> dict[str, pd.DataFrame]:
    """Every table of a group, by name: the records report.json holds, as DataFrames."""
    family_test = {"variant": "gated - ungated", **g["gated_minus_ungated"]}
    return {
        "comparison": pd.DataFrame.from_records([{**r, "best": True} for r in g["rows"]]),
        "lr_sweep": pd.DataFrame.from_records(g["lr_rows"]),
        "paired_vs_relu": pd.DataFrame.from_records(g["paired_vs_relu"]),
        "gated_vs_ungated": pd.DataFrame.from_records([family_test] if family_test["n"] else []),
    }


def _cell(value) -> str:
    return " ".join(str(value).split("\n")).replace("|", "\\|")


def markdown(df: pd.DataFrame, columns: list[Column]) -> list[str]:
    """A GitHub table: one line per row of df, each cell the column's text of that row."""
    df = df.astype(object).where(df.notna(), None)  # one kind of missing (None) for the formatters
    # A cell is one line without a bare `|` (an error message can hold both), or the table breaks.
    shown = [[_cell(text(row)) for _, text in columns] for _, row in df.iterrows()]
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in shown] + [""]


def raw_frames(g: dict) -> dict[str, pd.DataFrame]:
    """A group's non-empty tables with their raw-number columns: what the CSV and wandb get."""
    return {name: df.reindex(columns=TEST_CSV if name in ("paired_vs_relu", "gated_vs_ungated") else ROW_CSV)
            for name, df in frames(g).items() if len(df)}


def write_csv(report: dict, path: Path) -> None:
    """All groups' tables in one tidy CSV: `group` and `table` say where a row belongs; numbers are raw."""
    parts = [df.assign(group=g["index"], table=name, split=g["split"])
             for g in report["groups"] for name, df in raw_frames(g).items()]
    columns = ["group", "table", "split"] + list(dict.fromkeys(ROW_CSV + TEST_CSV))
    # Missing values make a column object-typed, which float_format would skip: infer floats back.
    table = (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()).infer_objects()
    table.reindex(columns=columns).to_csv(path, index=False, float_format="%.10g", lineterminator="\n")
