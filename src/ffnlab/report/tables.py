"""The report as text: comparison.md for people, comparison.csv for spreadsheets."""

from __future__ import annotations

import csv
from pathlib import Path

from ffnlab.report.analysis import BASELINE

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


def lr_text(x: float | None) -> str:
    return NA if x is None else f"{x:g}"


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _main_table(g: dict) -> list[str]:
    split = g["split"]
    header = ["variant"] + (["best lr"] if g["lr_sweep"] else []) + [
        f"final {split} loss, mean ± std", "n seeds", "val ppl", f"Δ vs {BASELINE} (nats)", f"Δ vs {BASELINE} (%)",
        "paper log-ppl", f"paper Δ vs {BASELINE}", "params_ffn", "params_total", "FLOPs/token", "tokens/s",
    ]
    rows = [
        [r["variant"]] + ([lr_text(r["lr"])] if g["lr_sweep"] else []) + [
            mean_std(r["loss_mean"], r["loss_std"]), str(r["n_seeds"]), f"{r['val_ppl']:.2f}",
            signed(r["delta_vs_relu"]), signed(r["delta_vs_relu_pct"], 2, "%"),
            NA if r["paper_log_ppl"] is None else f"{r['paper_log_ppl']:.3f}", signed(r["paper_delta"], 3),
            count(r["params_ffn"]), count(r["params_total"]), sci(r["flops_per_token"]), count(r["tokens_per_s"]),
        ]
        for r in g["rows"]
    ]
    return md_table(header, rows)


def _lr_table(g: dict) -> list[str]:
    split = g["split"]
    header = ["variant", "lr", "best (by val)", "val loss, mean ± std", f"{split} loss, mean ± std", "n seeds",
              "val ppl"]
    rows = [
        [r["variant"], lr_text(r["lr"]), "✓" if r["best"] else "", mean_std(r["val_loss_mean"], r["val_loss_std"]),
         mean_std(r["loss_mean"], r["loss_std"]), str(r["n_seeds"]), f"{r['val_ppl']:.2f}"]
        for r in g["lr_rows"]
    ]
    return md_table(header, rows)


def _paired_section(g: dict) -> list[str]:
    lines = [f"### Paired differences vs {BASELINE} (same seeds)", ""]
    if g["paired_vs_relu"]:
        yes_no = {True: "yes", False: "no", None: NA}
        lines += md_table(
            ["variant", "seeds paired", "mean diff", "std of diffs", "95% t-interval", "beyond seed noise"],
            [[t["variant"], ", ".join(map(str, t["seeds"])) or "none", signed(t["mean"]), loss(t["std"]),
              NA if t["ci_low"] is None else f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]", yes_no[t["beyond_noise"]]]
             for t in g["paired_vs_relu"]],
        )
    lines += [g["paired_sentence"], ""]
    lines += [
        f"Seed noise of the final loss: per-variant std in the table above; pooled std over variants "
        f"{loss(g['seed_std_pooled'])}, median {loss(g['seed_std_median'])}.",
        "",
    ]
    return lines


def _family_section(g: dict) -> list[str]:
    lines = ["### Gated vs ungated", ""]
    lines += md_table(
        ["family", "variants", f"mean of variant means ({g['split']})"],
        [[f["family"], ", ".join(f["variants"]), loss(f["mean_of_means"])] for f in g["families"]],
    )
    d = g["gated_minus_ungated"]
    if d["n"] == 0:
        lines += ["No paired family difference: no gated or no ungated variant, or no seed that all of them ran.", ""]
        return lines
    ci = NA if d["ci_low"] is None else f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
    lines += [
        f"Paired by seed (seeds {', '.join(map(str, d['seeds']))}, each seed: mean over gated variants − mean over "
        f"ungated variants): mean {signed(d['mean'])}, std {loss(d['std'])}, 95% t-interval {ci}.",
        "",
    ]
    return lines


def _group_title(g: dict, differences: dict[str, list]) -> str:
    i = g["index"] - 1
    tag = ", ".join(f"{k}={v[i]}" for k, v in differences.items())
    return f"## Group {g['index']}" + (f": {tag}" if tag else "") + f" ({g['n_runs']} runs)"


def render_markdown(report: dict) -> str:
    groups, problems, differences = report["groups"], report["problems"], report["group_differences"]
    lines = [
        "# FFN variant comparison" + (f": {', '.join(report['experiments'])}" if report["experiments"] else ""),
        "",
        f"Sweep `{report['sweep_dir']}`: {report['n_run_dirs']} run dirs, {sum(g['n_runs'] for g in groups)} finished "
        f"runs used in {len(groups)} group(s), {len(problems)} not used (listed below).",
        "",
        "Runs are compared only with runs of an identical `setting` (data, tokenizer, model size, steps, "
        "batch, FFN matching, schedule ...); variant, seed and LR are what varies inside a group.",
        "",
    ]
    if problems:
        lines += ["## Runs not used", ""]
        problem_rows = [[f"`{p['run_dir']}`", p["kind"].upper(), p["reason"]] for p in problems]
        lines += md_table(["run dir", "status", "reason"], problem_rows)
    if len(groups) > 1:
        lines += [f"## Why {len(groups)} groups", "", "Their settings differ in these keys, so they are never pooled:",
                  ""]
        lines += md_table(["setting key"] + [f"group {g['index']}" for g in groups],
                          [[f"`{k}`"] + [str(v) for v in values] for k, values in differences.items()])
    if not groups:
        lines += ["No finished run to compare.", ""]
    for g in groups:
        lines += [_group_title(g, differences), ""]
        lines += ["Setting: " + ", ".join(f"`{k}={v}`" for k, v in g["setting"].items()), ""]
        lines += [
            g["split_note"],
            f"Val ppl = exp(mean validation loss over seeds). Δ vs {BASELINE} = mean(variant) − mean({BASELINE}) "
            f"on the same split, in nats and % of {BASELINE}. Std is over seeds (ddof=1; n/a for one seed). "
            "Paper = Shazeer 2020 Table 1, log-perplexity at 65,536 steps.",
            "",
        ]
        lines += _main_table(g)
        rho = g["spearman_vs_paper"]
        lines += [
            f"Spearman rank correlation of our ordering with the paper's over {len(g['spearman_variants'])} paper "
            f"variants ({', '.join(g['spearman_variants']) or 'none'}): {NA if rho is None else f'{rho:.3f}'}.",
            "",
        ]
        if g["lr_sweep"]:
            lines += ["### Every (variant, lr)", ""] + _lr_table(g)
        lines += _paired_section(g) + _family_section(g)
        lines += ["### Plots", ""] + [f"![{kind}]({name})" for kind, name in g["plots"].items()] + [""]
        if "val_curves" not in g["plots"]:
            lines += ["(No validation curves: no run in this group has val/loss in csv/metrics.csv.)", ""]
    return "\n".join(lines)


CSV_COLUMNS = [
    "group", "table", "variant", "lr", "best_lr", "split", "n_seeds", "loss_mean", "loss_std", "val_loss_mean",
    "val_ppl", "test_loss_mean", "delta_vs_relu", "delta_vs_relu_pct", "paper_log_ppl", "paper_delta",
    "params_ffn", "params_total", "flops_per_token", "tokens_per_s",
]


def write_csv(report: dict, path: Path) -> None:
    """One row per variant (table=comparison), plus one per (variant, lr) for LR sweeps (table=lr_sweep)."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for g in report["groups"]:
            tagged = [("comparison", r) for r in g["rows"]] + [("lr_sweep", r) for r in g["lr_rows"]]
            for table, row in tagged:
                best = row.get("best", True) if g["lr_sweep"] else None
                values = {k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in row.items()}
                writer.writerow({**values, "group": g["index"], "table": table, "best_lr": best, "split": g["split"]})
