"""comparison.md: the report for people, a group at a time, its tables from ffnlab.report.render.tables."""

from __future__ import annotations

import pandas as pd

from ffnlab.report.studies.downstream import downstream_markdown
from ffnlab.report.render.document_studies import factor_section, ladder_section
from ffnlab.report.render.document_plots import forest_lines, plot_lines
from ffnlab.report.studies.finetune import SECTION_NOTE, finetune_markdown
from ffnlab.report.stacks import describe
from ffnlab.report.render.tables import (
    FAMILY_TEST_MD, NA, PAIRED_MD, Column, comparison_md, frames, loss, lr_md, markdown,
)
from ffnlab.report.variants import BASELINE

PROBLEMS_MD: list[Column] = [
    ("run dir", lambda p: f"`{p['run_dir']}`"), ("status", lambda p: p["kind"].upper()),
    ("reason", lambda p: p["reason"]),
]
FAMILIES_MD: list[Column] = [
    ("family", lambda f: f["family"]), ("variants", lambda f: ", ".join(f["variants"])),
    ("mean of variant means", lambda f: loss(f["mean_of_means"])),
]

POWER_NOTE = (
    "Detectable diff = the smallest true difference a paired t-test over these seeds finds with 80% power, at "
    "the observed std of the differences and the test's two-sided alpha (0.05/m in the Holm family, 0.05 for "
    "gated vs ungated). Seeds for paper Δ = the seeds needed to find the paper's difference with 80% power at "
    "that std and alpha (the paper's Δ is log-ppl on C4, so this is a guide to scale, not a prediction)."
)


def _stack_lines(g: dict) -> list[str]:
    if g["mixed_stacks"]:
        listed = "; ".join(f"{s['n_runs']} run(s): {describe(s['stack'])}" for s in g["stacks"])
        return [f"**Warning: mixed stacks.** This group's runs ran on {len(g['stacks'])} different software/hardware "
                f"stacks ({listed}). CPU runs are deterministic per machine and thread count, not across machines, "
                "so a verdict near the threshold may be a machine effect.", ""]
    return [f"Stack (every run): {describe(g['stacks'][0]['stack'])}.", ""]


def _paired_section(g: dict) -> list[str]:
    lines = [f"### Paired differences vs {BASELINE} (same seeds)", ""]
    if g["paired_vs_relu"]:
        m = g["paired_vs_relu"][0]["m"]
        if m:
            lines += [f"One family of {m} paired t-tests, Holm-corrected: \"beyond seed noise\" means Holm-adjusted "
                      "p < 0.05. The 95% t-interval is per test (not adjusted).", ""]
        lines += markdown(frames(g)["paired_vs_relu"], PAIRED_MD)
    lines += [g["paired_sentence"], ""]
    lines += [
        f"Seed noise of the final loss: per-variant std in the table above; pooled std over variants "
        f"{loss(g['seed_std_pooled'])}, median {loss(g['seed_std_median'])}.",
        "",
    ]
    return lines


def _family_section(g: dict) -> list[str]:
    lines = ["### Gated vs ungated (pre-declared, tested on its own)", ""]
    lines += markdown(pd.DataFrame.from_records(g["families"]), FAMILIES_MD)
    d = g["gated_minus_ungated"]
    if d["n"] == 0:
        return lines + ["No paired family difference: no gated or no ungated variant, or no seed that all ran.", ""]
    lines += ["Paired by seed (each seed: mean over gated variants − mean over ungated variants), two-sided "
              "alpha 0.05:", ""]
    return lines + markdown(frames(g)["gated_vs_ungated"], FAMILY_TEST_MD)


def _group_title(g: dict, differences: dict[str, list]) -> str:
    i = g["index"] - 1
    tag = ", ".join(f"{k}={v[i]}" for k, v in differences.items())
    return f"## Group {g['index']}" + (f": {tag}" if tag else "") + f" ({g['n_runs']} runs)"


def _group(g: dict, differences: dict[str, list]) -> list[str]:
    lines = [_group_title(g, differences), ""]
    lines += ["Setting: " + ", ".join(f"`{k}={v}`" for k, v in g["setting"].items()), ""]
    lines += _stack_lines(g)
    lines += [
        g["split_note"],
        f"Val ppl = exp(mean validation loss over seeds). Δ vs {BASELINE} = mean(variant) − mean({BASELINE}) "
        f"on the same split, in nats and % of {BASELINE}. Std is over seeds (ddof=1; n/a for one seed). "
        "Paper = Shazeer 2020 Table 1, log-perplexity at 65,536 steps.",
        "",
    ]
    tables = frames(g)
    lines += markdown(tables["comparison"], comparison_md(g["split"], g["lr_sweep"]))
    if g["diverged_at_every_lr"]:
        lines += [f"Diverged at every LR (a seed diverged at each; ranked below every variant above, no mean): "
                  f"{', '.join(g['diverged_at_every_lr'])}.", ""]
    rho = g["spearman_vs_paper"]
    lines += [
        f"Spearman rank correlation of our ordering with the paper's over {len(g['spearman_variants'])} paper "
        f"variants ({', '.join(g['spearman_variants']) or 'none'}): {NA if rho is None else f'{rho:.3f}'}.",
        "",
    ]
    lines += forest_lines(g)
    if g["lr_sweep"]:
        lines += ["### Every (variant, lr)", ""] + markdown(tables["lr_sweep"], lr_md(g["split"]))
    lines += _paired_section(g) + _family_section(g) + [POWER_NOTE, ""]
    lines += downstream_markdown(g.get("downstream", []))
    lines += finetune_markdown(g.get("finetune", []))
    lines += plot_lines(g)
    return lines


def render_markdown(report: dict) -> str:
    groups, problems, differences = report["groups"], report["problems"], report["group_differences"]
    n_diverged = sum(g["n_diverged"] for g in groups)
    holds = report.get("sweep_dir_holds_report")  # a report.json from before the key: False
    lines = [
        "# FFN variant comparison" + (f": {', '.join(report['experiments'])}" if report["experiments"] else ""),
        "",
        f"Run records `{report['sweep_dir']}`{' (the directory holding this report)' if holds else ''}: "
        f"{report['n_run_dirs']} run dirs, {sum(g['n_runs'] for g in groups)} "
        f"runs used in {len(groups)} group(s) ({n_diverged} of them diverged), "
        f"{len(problems) - n_diverged} not used (listed below).",
        "",
        "Runs are compared only with runs of an identical `setting` (data, tokenizer, model size, steps, "
        "batch, FFN matching, schedule ...); variant, seed and LR are what varies inside a group.",
        "",
    ]
    if problems:
        lines += ["## Runs not used, or diverged", ""]
        lines += markdown(pd.DataFrame.from_records(problems), PROBLEMS_MD)
    if len(groups) > 1:
        lines += [f"## Why {len(groups)} groups", "", "Their settings differ in these keys, so they are never pooled:",
                  "", "| setting key | " + " | ".join(f"group {g['index']}" for g in groups) + " |",
                  "|" + "---|" * (len(groups) + 1)]
        lines += [f"| `{k}` | " + " | ".join(str(v) for v in values) + " |" for k, values in differences.items()]
        lines += [""]
    for factor in report.get("factors", []):
        lines += factor_section(factor)
    for ladder in report.get("ladders", []):
        lines += ladder_section(ladder)
    if not groups:
        lines += ["No finished run to compare.", ""]
    for g in groups:  # pre-training groups first (ffnlab.report.records.group_by_setting), then fine-tuning ones
        if g is next((h for h in groups if "finetune" in h), None):
            lines += SECTION_NOTE
        lines += _group(g, differences)
    return "\n".join(lines)
