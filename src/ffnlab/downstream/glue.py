"""GLUE, SuperGLUE and SQuAD v1.1 in T5's text-to-text formats (Raffel et al. 2019), scored as T5 scores them.

The formats follow google-research/text-to-text-transfer-transformer (t5/data/preprocessors.py, glue_utils.py,
tasks.py), so that fine-tuning reads what the paper's models read:
  - most tasks: "<task> <feature>: <value> ..." over the features in sorted order (T5's `glue` preprocessor without
    `feature_names`), the label's name as target: "mnli hypothesis: ... premise: ..." -> "neutral". MultiRC and WiC
    name their features (question, answer, paragraph; sentence1, sentence2, word) and MultiRC's <br>/<b> markup goes;
  - STS-B: the score rounded to the nearest 0.2 as text ("3.4"), in float32 with ties to even as tf.round does;
  - ReCoRD: "record query: ... entities: a, b passage: ..." (@highlight lines joined into sentences); the train
    split gives one example per gold answer, as T5 trains, the others one per query (T5 scores each query once);
  - WSC: T5's `wsc_simple`, "wsc: ... *pronoun* ..." -> the candidate referent (span1_text); training keeps only the
    rows whose candidate is right, and a prediction is right when it names the candidate exactly when the label
    says the candidate is the referent (T5's `wsc_simple` postprocessor). WNLI is left out, as T5's GLUE mixture and
    average leave it out (they train on WSC instead) and the paper's Table 2 has no WNLI column;
  - SQuAD: "question: ... context: ..." with spaces around ASCII punctuation (T5's `_pad_punctuation`) -> the first
    gold answer, padded alike; ends stripped, as SentencePiece drops them in T5.
A row without a label (the hub's test splits, label -1) has T5's target "<unk>".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from ffnlab.downstream import scores
from ffnlab.downstream.example import Example
from ffnlab.downstream.hub_task import Formatter, HubRows, HubTask, Scorer
from ffnlab.config.errors import DataConfigError

UNK = "<unk>"
BOOL = ("False", "True")
ENTAILMENT = ("entailment", "not_entailment")


def label_name(row: dict, names: Sequence[str]) -> str:
    return UNK if row["label"] == -1 else names[row["label"]]


def glue_input(benchmark: str, row: dict, features: Sequence[str]) -> str:
    return " ".join([benchmark, *(part for key in features for part in (f"{key}:", row[key]))])


def classification(benchmark: str, features: Sequence[str], names: Sequence[str]) -> Formatter:
    def to_examples(row: dict, training: bool) -> list[Example]:
        return [Example(glue_input(benchmark, row, features), label_name(row, names))]

    return to_examples


def multirc(row: dict, training: bool) -> list[Example]:
    text = glue_input("multirc", row, ("question", "answer", "paragraph"))
    text = re.sub("<(/)?b>", "", text.replace("<br>", " "))
    return [Example(text, label_name(row, BOOL))]


def stsb_target(score: float) -> str:
    """'3.4' for 3.35: the nearest multiple of 0.2, computed as T5's tf ops do (float32, ties to even)."""
    five = np.float32(5)
    return f"{np.round(np.float32(score) * five) / five:.1f}"


def stsb(row: dict, training: bool) -> list[Example]:
    return [Example(glue_input("stsb", row, ("sentence1", "sentence2")), stsb_target(row["label"]))]


def record_input(row: dict) -> str:
    passage = re.sub(r"([.?!\"'])\n@highlight\n", r"\1 ", row["passage"]).replace("\n@highlight\n", ". ")
    return f"record query: {row['query']} entities: {', '.join(row['entities'])} passage: {passage}"


def record(row: dict, training: bool) -> list[Example]:
    text, answers = record_input(row), tuple(row["answers"])
    if training:
        return [Example(text, answer, answers) for answer in answers] or [Example(text, UNK)]
    return [Example(text, answers[0] if answers else UNK, answers)]


def mark_pronoun(row: dict) -> str:
    """The text with its pronoun (span2) as *pronoun*. The word at span2_index is the pronoun in all rows but two,
    which T5 fixes by hand: there the pronoun is the next word, or carries punctuation (him," -> *him* ,")."""
    words, pronoun, at = row["text"].split(" "), row["span2_text"], row["span2_index"]
    nearby = sorted((j for j in range(at - 2, at + 3) if 0 <= j < len(words)), key=lambda j: abs(j - at))
    exact = [j for j in nearby if words[j] == pronoun]
    prefixed = [j for j in nearby if words[j].startswith(pronoun)]
    if not (exact or prefixed):
        raise DataConfigError(f"WSC row {row['idx']}: no word {pronoun!r} near word {at} of {row['text']!r}")
    j = (exact or prefixed)[0]
    rest = words[j][len(pronoun):]
    words[j] = f"*{pronoun}*" + (f" {rest}" if rest else "")
    return " ".join(words)


def wsc(row: dict, training: bool) -> list[Example]:
    if training and row["label"] != 1:
        return []  # T5 trains on the rows whose candidate is the referent (wsc_simple's correct_referent_only)
    return [Example(f"wsc: {mark_pronoun(row)}", row["span1_text"], label=row["label"])]


def pad_punctuation(text: str) -> str:
    """Spaces around ASCII punctuation, whitespace runs as one space (RE2's [[:punct:]] and \\s, as T5 runs them)."""
    return re.sub(r"[\t\n\f\r ]+", " ", re.sub(r"([!-/:-@\[-`{-~])", r" \1 ", text))


def squad(row: dict, training: bool) -> list[Example]:
    answers = tuple(pad_punctuation(answer).strip() for answer in row["answers"]["text"])
    text = " ".join(["question:", pad_punctuation(row["question"]), "context:", pad_punctuation(row["context"])])
    text = re.sub(" +", " ", text).strip()
    return [Example(text, answers[0] if answers else "", answers)]


# ------------------------------------------------------------------------------------------------- scoring


def by_label(names: Sequence[str], **metrics: Callable) -> Scorer:
    """Scores of predictions and targets mapped to label indices (-1: not a label name, always wrong)."""

    def score(predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
        gold = scores.class_ids([e.target for e in examples], names)
        predicted = scores.class_ids(predictions, names)
        return {key: fn(gold, predicted) for key, fn in metrics.items()}

    return score


def score_stsb(predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
    gold, predicted = [float(e.target) for e in examples], [scores.to_float(p) for p in predictions]
    return {"pearson": scores.pearson(gold, predicted), "spearman": scores.spearman(gold, predicted)}


def score_multirc(predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
    if any(e.group is None for e in examples):
        raise ValueError("super_glue_multirc: every example needs its question (Example.group) for EM")
    gold, predicted = scores.class_ids([e.target for e in examples], BOOL), scores.class_ids(predictions, BOOL)
    return {"f1": scores.f1_with_invalid(gold, predicted),
            "em": scores.grouped_exact_match(gold, predicted, [e.group for e in examples])}


def score_record(predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
    """SQuAD's EM/F1 over each query's first example (training-style copies, one per answer, count once)."""
    seen, answers, kept = set(), [], []
    for i, (prediction, example) in enumerate(zip(predictions, examples)):
        key = i if example.group is None else example.group
        if key not in seen:
            seen.add(key)
            answers.append(example.gold_answers)
            kept.append(prediction)
    return scores.squad(answers, kept)


DETERMINERS = frozenset("a an few her his each every many much my our some that the their these this those which "
                        "whose your".split())


def names_referent(prediction: str, referent: str) -> int:
    """T5's wsc_simple postprocessor: 1 when the prediction names the candidate (case and determiners aside, either
    word set inside the other, a possessive on both or neither), 0 when not, -1 for an empty prediction."""

    def words(text: str) -> list[str]:
        return [w for w in text.strip().lower().split(" ") if w not in DETERMINERS]

    predicted, candidate = words(prediction), words(referent)
    if not " ".join(predicted):
        return -1
    if ("'" in " ".join(predicted)) != ("'" in " ".join(candidate)):
        return 0  # "Bob" does not name "Bob's hat"
    return int(set(predicted) <= set(candidate) or set(candidate) <= set(predicted))


def score_wsc(predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
    gold = [e.label for e in examples]
    return {"accuracy": scores.accuracy(gold, [names_referent(p, e.target) for p, e in zip(predictions, examples)])}


def score_squad(predictions: Sequence[str], examples: Sequence[Example]) -> dict[str, float]:
    return scores.squad([e.gold_answers for e in examples], predictions)


# ------------------------------------------------------------------------------------------------ registry

GLUE, SUPER_GLUE, SQUAD = ("nyu-mll/glue", "glue"), ("aps/super_glue", "super_glue"), ("rajpurkar/squad", None)
ACC = {"accuracy": scores.accuracy}
F1_ACC = {"f1": scores.f1_with_invalid, "accuracy": scores.accuracy}


def spec(source, config, formatter, scorer, keys, eval_sets=None, group_of=None) -> dict:
    return dict(hub_path=source[0], benchmark=source[1], hub_name=config, to_examples=formatter, score=scorer,
                metric_keys=tuple(keys), eval_sets=eval_sets, group_of=group_of)


def labelled(source, config, features, names, **metrics) -> dict:
    return spec(source, config, classification(config, features, names), by_label(names, **metrics), metrics)


SPECS = {
    "glue_cola": labelled(GLUE, "cola", ("sentence",), ("unacceptable", "acceptable"), mcc=scores.mcc),
    "glue_sst2": labelled(GLUE, "sst2", ("sentence",), ("negative", "positive"), **ACC),
    "glue_mrpc": labelled(GLUE, "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), **F1_ACC),
    "glue_stsb": spec(GLUE, "stsb", stsb, score_stsb, ("pearson", "spearman")),
    "glue_qqp": labelled(GLUE, "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), **F1_ACC),
    "glue_mnli": {**labelled(GLUE, "mnli", ("hypothesis", "premise"), ("entailment", "neutral", "contradiction"),
                             **ACC),
                  "eval_sets": {"glue_mnli_matched": "validation_matched",
                                "glue_mnli_mismatched": "validation_mismatched"}},
    "glue_qnli": labelled(GLUE, "qnli", ("question", "sentence"), ENTAILMENT, **ACC),
    "glue_rte": labelled(GLUE, "rte", ("sentence1", "sentence2"), ENTAILMENT, **ACC),
    "super_glue_boolq": labelled(SUPER_GLUE, "boolq", ("passage", "question"), BOOL, **ACC),
    "super_glue_cb": labelled(SUPER_GLUE, "cb", ("hypothesis", "premise"), ("entailment", "contradiction", "neutral"),
                              f1=partial(scores.mean_multiclass_f1, num_classes=3), **ACC),
    "super_glue_copa": labelled(SUPER_GLUE, "copa", ("choice1", "choice2", "premise", "question"),
                                ("choice1", "choice2"), **ACC),
    "super_glue_multirc": spec(SUPER_GLUE, "multirc", multirc, score_multirc, ("f1", "em"),
                               group_of=lambda row: (row["idx"]["paragraph"], row["idx"]["question"])),
    "super_glue_record": spec(SUPER_GLUE, "record", record, score_record, ("em", "f1"),
                              group_of=lambda row: (row["idx"]["passage"], row["idx"]["query"])),
    "super_glue_rte": labelled(SUPER_GLUE, "rte", ("hypothesis", "premise"), ENTAILMENT, **ACC),
    "super_glue_wic": labelled(SUPER_GLUE, "wic", ("sentence1", "sentence2", "word"), BOOL, **ACC),
    "super_glue_wsc": spec(SUPER_GLUE, "wsc.fixed", wsc, score_wsc, ("accuracy",)),
    "squad": spec(SQUAD, "plain_text", squad, score_squad, ("em", "f1")),
}


def make_hub_task(name: str, revision: str | None = None, local_dir: str | None = None) -> HubTask:
    settings = dict(SPECS[name])
    rows = HubRows(settings.pop("hub_path"), settings.pop("hub_name"), revision, local_dir)
    eval_sets = settings.pop("eval_sets") or {name: "validation"}
    return HubTask(name=name, rows=rows, eval_sets=eval_sets, **settings)
