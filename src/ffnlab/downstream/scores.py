"""The fine-tuning metrics of Shazeer 2020 (Tables 2-4) as T5 computes them, on T5's 0-100 scale.

Each follows the function T5 lists for the task (t5/data/glue_utils.py GLUE_METRICS / SUPERGLUE_METRICS,
t5/evaluation/metrics.py), computed with scikit-learn and scipy as T5 does, so a score here means what the paper's does:
  - a classification prediction is first mapped to its label's index, and text that is no label name becomes -1
    (T5's `string_label_to_class_id`): it never matches a gold label, so it always counts as wrong;
  - binary F1 (MRPC, QQP, MultiRC) turns an invalid prediction into the wrong class (T5's `f1_score_with_invalid`),
    so that it cannot count as a true negative either; MCC keeps -1 as a class of its own, as T5 passes it on;
  - CB's F1 is the unweighted mean of the 3 classes' F1 (`mean_multiclass_f1(num_classes=3)`);
  - STS-B correlates the gold score as trained on (rounded to 0.2, T5's postprocessed target) with the prediction
    parsed as a float, -1 when it is not a number (`string_to_float`);
  - SQuAD and ReCoRD take the best EM / token F1 over the gold answers after the SQuAD v1.1 normalisation.
    Token F1 over bags of words is the one metric here no library offers; it is the official v1.1 script's
    definition (T5's qa_utils) and is tested against hand-computed values.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Hashable, Sequence

import numpy as np
import scipy.stats
import sklearn.metrics

INVALID = -1  # T5's class index for a prediction that is no label name


def class_ids(texts: Sequence[str], label_names: Sequence[str]) -> np.ndarray:
    """Each text's index in label_names, INVALID when it is none of them (compared exactly, as T5 does)."""
    index = {name: i for i, name in enumerate(label_names)}
    return np.array([index.get(text, INVALID) for text in texts], dtype=np.int64)


def accuracy(gold, predicted) -> float:
    return 100 * float(sklearn.metrics.accuracy_score(gold, predicted))


def mcc(gold, predicted) -> float:
    return 100 * float(sklearn.metrics.matthews_corrcoef(gold, predicted))


def f1_with_invalid(gold, predicted) -> float:
    """Binary F1 of class 1 where a prediction that is neither 0 nor 1 is taken as the wrong class."""
    gold, predicted = np.asarray(gold), np.array(predicted)
    invalid = (predicted != 0) & (predicted != 1)
    predicted[invalid] = 1 - gold[invalid]
    # zero_division=0 is sklearn's default value, without its warning (no positive gold or predicted at all)
    return 100 * float(sklearn.metrics.f1_score(gold, predicted, zero_division=0))


def mean_multiclass_f1(gold, predicted, num_classes: int) -> float:
    """Unweighted mean of the per-class F1 over classes 0..num_classes-1 (an invalid prediction is a miss)."""
    return 100 * float(sklearn.metrics.f1_score(gold, predicted, labels=list(range(num_classes)), average="macro",
                                                zero_division=0))


def to_float(text: str, default: float = -1.0) -> float:
    """A prediction read as a number (STS-B): `default` when it is not one, as T5's `string_to_float`."""
    try:
        return float(text)
    except ValueError:
        return default


def pearson(gold, predicted) -> float:
    """Pearson r x 100 (nan when either side is constant, as scipy and T5 give it)."""
    return 100 * float(scipy.stats.pearsonr(gold, predicted).statistic)


def spearman(gold, predicted) -> float:
    return 100 * float(scipy.stats.spearmanr(gold, predicted).statistic)


def grouped_exact_match(gold, predicted, groups: Sequence[Hashable]) -> float:
    """MultiRC's EM: per group (question), 1 when every answer option is labelled right; the mean over groups."""
    by_group: dict[Hashable, list[bool]] = collections.defaultdict(list)
    for group, g, p in zip(groups, gold, predicted, strict=True):
        by_group[group].append(g == p)
    return 100 * float(np.mean([all(hits) for hits in by_group.values()]))


# ---------------------------------------------------------------------------------------------- SQuAD v1.1


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lowercase, drop ASCII punctuation, the articles a/an/the, and extra whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(gold: str, predicted: str) -> float:
    """F1 of the normalised texts' bags of words (0 when they share none)."""
    gold_tokens, predicted_tokens = gold.split(), predicted.split()
    common = sum((collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad(answers: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, float]:
    """{"em", "f1"}: the mean over examples of the best score over that example's gold answers."""
    em, f1 = [], []
    for golds, prediction in zip(answers, predictions, strict=True):
        golds, prediction = [normalize_answer(a) for a in golds], normalize_answer(prediction)
        em.append(max(float(g == prediction) for g in golds))
        f1.append(max(token_f1(g, prediction) for g in golds))
    return {"em": 100 * float(np.mean(em)), "f1": 100 * float(np.mean(f1))}
