"""The fine-tuning tasks of Shazeer 2020 (GLUE, SuperGLUE, SQuAD v1.1: Tables 2-4) as T5 text-to-text examples with
their metrics, and `shakespeare_speaker`, a task that runs offline at demo scale. `make_task(name)` builds one.

    task = make_task("glue_cola")                  # rows from the hub (or local_dir=<a copy laid out as the hub's>)
    train = task.examples(task.train_split)        # [Example(input="cola sentence: ...", target="acceptable"), ...]
    for score_name, split in task.eval_sets.items():
        examples = task.examples(split)
        scores[score_name] = task.metrics(predictions_for(examples), examples)   # {"mcc": 23.1}
    benchmark_averages(scores)                     # {"glue": ..., "super_glue": ...} once all their tasks are in

Formats and metrics: ffnlab.downstream.glue (T5's), ffnlab.downstream.speakers, ffnlab.downstream.scores.
"""

from __future__ import annotations

import collections

import numpy as np

from ffnlab.downstream import glue, speakers
from ffnlab.downstream.example import Example, Task
from ffnlab.config.errors import ConfigError

__all__ = ["Example", "Task", "TASKS", "GLUE_TASKS", "SUPER_GLUE_TASKS", "make_task", "benchmark_averages"]

TASKS: tuple[str, ...] = (*glue.SPECS, speakers.NAME)
# The score names (eval sets) each benchmark average is over: T5's, and the paper's Table 2 and 3 columns.
GLUE_TASKS: tuple[str, ...] = ("glue_cola", "glue_sst2", "glue_mrpc", "glue_stsb", "glue_qqp", "glue_mnli_matched",
                               "glue_mnli_mismatched", "glue_qnli", "glue_rte")
SUPER_GLUE_TASKS: tuple[str, ...] = ("super_glue_boolq", "super_glue_cb", "super_glue_copa", "super_glue_multirc",
                                     "super_glue_record", "super_glue_rte", "super_glue_wic", "super_glue_wsc")
# The metrics each eval set reports, and the group T5 averages them in before the benchmark average: a task's own
# metrics form one group, and MNLI's matched and mismatched accuracies one group between them.
METRIC_KEYS = {score_name: spec["metric_keys"] for name, spec in glue.SPECS.items()
               for score_name in (spec["eval_sets"] or {name: None})}
GROUPS = {name: "glue_mnli" if name.startswith("glue_mnli") else name for name in GLUE_TASKS + SUPER_GLUE_TASKS}


def make_task(name: str, *, revision: str | None = None, local_dir: str | None = None, **options) -> Task:
    """The task `name` (one of TASKS). Hub tasks read `revision` of the hub dataset, or its files under `local_dir`,
    and take no options; shakespeare_speaker reads local text (`files`, `split_fractions`, `speakers`,
    `min_train_speeches`: ffnlab.downstream.speakers) and no hub."""
    if name in glue.SPECS:
        if options:
            raise ConfigError(f"Task {name} takes no options (got {', '.join(sorted(options))}); "
                              "accepted: revision, local_dir")
        return glue.make_hub_task(name, revision, local_dir)
    if name == speakers.NAME:
        if revision is not None or local_dir is not None:
            raise ConfigError(f"Task {name} reads local text, not the hub: revision and local_dir do not apply; "
                              "accepted options: files, split_fractions, speakers, min_train_speeches")
        unknown = sorted(set(options) - {"files", "split_fractions", "speakers", "min_train_speeches"})
        if unknown:
            raise ConfigError(f"Task {name}: unknown option(s) {', '.join(unknown)}; "
                              "accepted: files, split_fractions, speakers, min_train_speeches")
        if isinstance(options.get("files"), str):
            options["files"] = [options["files"]]
        return speakers.SpeakerTask(**{key: tuple(value) if key in ("files", "split_fractions") else value
                                       for key, value in options.items()})
    raise ConfigError(f"Unknown fine-tuning task {name!r}; accepted: {', '.join(TASKS)}")


def benchmark_averages(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """The GLUE and SuperGLUE averages as T5 computes them (t5/evaluation/eval_utils.py `compute_avg_glue`): the
    metrics of each task are averaged first (MRPC's F1 and accuracy, STS-B's Pearson and Spearman, ...), MNLI's
    matched and mismatched accuracies are averaged together as one task, and the benchmark's score is the mean over
    its tasks (8 for GLUE without WNLI, 8 for SuperGLUE). A benchmark is left out unless every metric of every one
    of its eval sets is in `scores`; a nan metric (STS-B against a constant prediction) makes its average nan."""
    averages = {}
    for benchmark, eval_sets in (("glue", GLUE_TASKS), ("super_glue", SUPER_GLUE_TASKS)):
        if not all(key in scores.get(name, {}) for name in eval_sets for key in METRIC_KEYS[name]):
            continue
        groups = collections.defaultdict(list)
        for name in eval_sets:
            groups[GROUPS[name]] += [scores[name][key] for key in METRIC_KEYS[name]]
        averages[benchmark] = float(np.mean([np.mean(values) for values in groups.values()]))
    return averages
