"""The report's fine-tuning half (issue 24.4): the scores a fine-tune run's record holds (`downstream.tasks`, eval set
-> metric -> score on 0-100, and `downstream.averages`, e.g. glue, super_glue), per variant over seeds and against the
baseline seed by seed, beside the paper's Tables 2-4 (ffnlab.report.paper). The statistics are the lm-eval half's
(ffnlab.report.studies.downstream): one Holm family per eval set and metric; Δ = variant − baseline, a gain when positive.
"""

from __future__ import annotations

from ffnlab.report.studies.downstream import PAIRED_NOTE, Scores, score_sections, score_table
from ffnlab.report.paper import PAPER_FINETUNE
from ffnlab.report.records import Group, Run
from ffnlab.report.variants import BASELINE

AVERAGE = "average"  # the metric of an average's row: the paper's "Score Average"


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def finetune_scores(run: Run) -> Scores:
    """eval set -> metric -> score from the record; an average (glue, super_glue) as its own set with metric
    `average`. A non-numeric score is left out, so the table shows the runs that have one."""
    downstream = run.metrics.get("downstream") or {}
    tasks = downstream.get("tasks") or {}
    scores = {task: {metric: _number(v) for metric, v in metrics.items()}
              for task, metrics in tasks.items() if isinstance(metrics, dict)}
    scores |= {name: {AVERAGE: _number(v)} for name, v in (downstream.get("averages") or {}).items()}
    return {task: {m: v for m, v in metrics.items() if v is not None} for task, metrics in scores.items()}


def analyse_finetune(group: Group, order: list[str]) -> list[dict]:
    """Per (eval set, metric): the score_sections rows, each with the paper's score and its Δ vs the paper's
    baseline (None where the paper has no such column or variant)."""
    sections = score_sections(group, order, finetune_scores)
    for section in sections:
        paper = PAPER_FINETUNE.get((section["task"], section["metric"]), {})
        for row in section["rows"]:
            row["paper"] = paper.get(row["variant"])
            both = row["paper"] is not None and BASELINE in paper
            row["paper_delta"] = row["paper"] - paper[BASELINE] if both else None
    return sections


def _cell(value, sign: str = "") -> str:
    return "n/a" if value is None else f"{value:{sign}.2f}"


PAPER_COLUMNS = [("paper", "---:", lambda r: _cell(r["paper"])),
                 (f"paper Δ vs {BASELINE}", "---:", lambda r: _cell(r["paper_delta"], "+"))]


def finetune_markdown(sections: list[dict]) -> list[str]:
    if not sections:
        return []
    lines = ["### Fine-tuning scores", "",
             "Dev-set scores of each fine-tuning run (its record's `downstream`, 0–100), mean and std over seeds; "
             + PAIRED_NOTE + " Paper = Shazeer 2020 Tables 2–4 (GLUE, SuperGLUE, SQuAD v1.1 dev; one fine-tuning run "
             "per variant, best checkpoint per task), n/a where it has no such score; `average` = the paper's Score "
             "Average.", ""]
    for section in sections:
        lines += score_table(section, digits=2, extra=PAPER_COLUMNS)
    return lines


SECTION_NOTE = [
    "# Fine-tuning", "",
    "Runs whose record has `downstream` are fine-tuning runs: grouped apart from pre-training runs even at an equal "
    "setting, and never a factor or ladder with them. In these groups the loss is the fine-tune's validation loss on "
    "target tokens; the paper column of their loss tables is still Table 1's pre-training log-perplexity, a guide to "
    "scale only. Their scores follow each group's loss tables.", "",
]
