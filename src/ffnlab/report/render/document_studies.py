"""comparison.md's sections across groups: a paired factor (e.g. init) and a compute ladder."""

from __future__ import annotations

import pandas as pd

from ffnlab.report.studies.histories import TRAIN_TAIL
from ffnlab.report.render.tables import NA, PAIRED_TEST_MD, POWER_MD, YES_NO, Column, loss, lr_text, markdown, pvalue, sci, \
    signed

SPLIT_NAME = {"test": "test", "val": "validation"}


def _tested(adjusted: str) -> list[Column]:
    """The columns of a paired test judged in a corrected family; `adjusted` names its adjusted-p key."""
    return PAIRED_TEST_MD + [
        (f"p ({adjusted.split('_')[1].capitalize()})", lambda r: pvalue(r[adjusted])),
        ("beyond seed noise", lambda r: YES_NO[r["beyond_noise"]]),
        ("detectable diff (80% power)", POWER_MD[0][1]),
    ]


def _table(records: list[dict], columns: list[Column]) -> list[str]:
    return markdown(pd.DataFrame.from_records(records), columns)


def _lr_note(best_lr: dict | None, where: str) -> list[str]:
    if not best_lr:
        return []
    chosen = ", ".join(f"{v} {lr_text(lr)}" for v, lr in best_lr.items())
    return [f"{where}: an LR sweep; each variant at its best LR by mean validation loss ({chosen}).", ""]


def factor_section(f: dict) -> list[str]:
    key, (a, b) = f["key"], f["levels"]
    lines = [f"## Factor `{key}`: {b} − {a}, paired (groups {f['groups'][0]} and {f['groups'][1]})", "",
             f"The two groups differ only in `{key}`. Each variant's effect is loss(`{key}={b}`) − loss(`{key}={a}`) "
             f"for the same seed, on the final **{SPLIT_NAME[f['split']]}** loss (test when every run of both groups "
             "has one), over the seeds both ran: a paired t-test per variant, Holm-corrected over the variants.", ""]
    for level, best in zip(f["levels"], f["best_lr"] or []):
        lines += _lr_note(best, f"`{key}={level}`")
    lines += _table(f["tests"], [("variant", lambda r: r["variant"])] + _tested("p_holm"))
    lines += [f["sentence"], ""]
    fam = f["gated_minus_ungated"]
    if any(t["n"] for t in fam):
        lines += [f"Gated − ungated at each `{key}` (mean over gated − mean over ungated variants, paired by seed; "
                  f"the test of each group's section), Bonferroni over the {len(fam)} levels: beyond seed noise "
                  f"means p < 0.05/{len(fam)}.", ""]
        lines += _table(fam, [(key, lambda r: str(r["level"]))] + _tested("p_bonferroni")
                        + [("paper Δ", POWER_MD[1][1])])
    rhos = "; ".join(f"`{key}={s['level']}` {NA if s['rho'] is None else format(s['rho'], '.3f')} "
                     f"over {len(s['variants'])} variants" for s in f["spearman_vs_paper"])
    lines += [f"Spearman rank correlation with the paper's ordering (descriptive, no test): {rhos}.", ""]
    return lines + ["Detectable diff: as in the group sections, at alpha/m of this table's correction.", ""]


POINTS_MD: list[Column] = [
    ("budget", lambda r: r["rung"]), ("variant", lambda r: r["variant"]), ("lr", lambda r: lr_text(r["lr"])),
    ("training FLOPs", lambda r: sci(r["train_flops"])), ("n seeds", lambda r: str(r["n"])),
    ("final loss, mean ± std", lambda r: f"{loss(r['loss_mean'])} ± {loss(r['loss_std'])}"),
    ("seed min–max", lambda r: f"{loss(r['loss_min'])}–{loss(r['loss_max'])}"),
]
TRAIN_VAL_MD: list[Column] = [
    ("budget", lambda r: r["rung"]), ("variant", lambda r: r["variant"]), ("n seeds", lambda r: str(r["n"])),
    ("train loss (last 10% of steps)", lambda r: loss(r["train_loss_mean"])),
    ("final val loss", lambda r: loss(r["val_loss_mean"])),
    ("train − val, mean ± std", lambda r: f"{signed(r['gap_mean'])} ± {loss(r['gap_std'])}"),
]


def ladder_section(ladder: dict) -> list[str]:
    keys = " and ".join(f"`{k}`" for k in ladder["budget_keys"])
    budgets = "; ".join(f"{r['label']} = group {r['group']}, warmup {r['optim_warmup_steps']}" for r in ladder["rungs"])
    split = SPLIT_NAME[ladder["split"]]
    lines = [f"## Compute ladder (groups {', '.join(map(str, ladder['groups']))})", "", f"Budgets: {budgets}.", "",
             f"These groups differ only in the budget keys {keys} (the step cadences of validation and logging are "
             "not part of a run's setting). At each budget every variant is at its best LR by mean validation loss, "
             f"and losses are final **{split}** losses (test when every run of every budget has one).", ""]
    for rung in ladder["rungs"]:
        lines += _lr_note(rung["best_lr"], rung["label"])
    if ladder.get("plot"):
        lines += [f"![final loss vs training FLOPs]({ladder['plot']})", ""]
    lines += ["Training FLOPs = flops_per_token × tokens_seen.", ""] + _table(ladder["points"], POINTS_MD)
    members = ", ".join(ladder["members"])
    m = ladder["gaps"][0]["m"] if ladder["gaps"] else 0
    lines += ["### Gaps at each budget (pre-declared)", "",
              "SwiGLU − ReLU, and gated − ungated (per seed, mean over the gated minus mean over the ungated of the "
              f"variants present at every budget: {members}), paired by seed. Bonferroni over the {m} tests "
              f"(gaps × budgets): beyond seed noise means p < 0.05/{m}.", ""]
    lines += _table(ladder["gaps"], [("gap", lambda r: r["gap"]), ("budget", lambda r: r["rung"])]
                    + _tested("p_bonferroni") + [("paper Δ", POWER_MD[1][1])])
    if ladder["trends"]:
        lines += ["How each gap moves with budget: gap(largest) − gap(smallest), paired by seed (same init and data "
                  "order). Negative = the gap grows in the paper's direction. One test per gap, not corrected; the "
                  "plan claims a trend only if it is beyond noise.", ""]
        lines += _table(ladder["trends"], [("gap", lambda r: r["gap"]),
                                           ("from → to", lambda r: f"{r['from']} → {r['to']}")] + PAIRED_TEST_MD)
    lines += ["### Train − validation gap", "",
              f"Train loss = mean of csv/metrics.csv's train/loss over the last {TRAIN_TAIL:.0%} of the run's logged "
              "training steps (batches seen during those steps, with the LR still decaying); validation = final "
              "validation loss. A negative gap, growing with budget, is overfitting.", ""]
    return lines + _table(ladder["train_val"], TRAIN_VAL_MD)
