"""The fine-tuning tasks (ffnlab.downstream.text_tasks): T5's text-to-text formats read from hub-shaped local rows
(tests/assets/hub, written by its make_fixtures.py), their metrics against hand-computed values, T5's benchmark
averages, and the offline shakespeare_speaker task."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ffnlab.data.module import split_text
from ffnlab.downstream import glue, scores
from ffnlab.downstream.text_tasks import (GLUE_TASKS, SUPER_GLUE_TASKS, TASKS, Example, benchmark_averages,
                                          make_task)
from ffnlab.config.errors import ConfigError, DataConfigError

HUB = Path(__file__).parent / "assets" / "hub"
CORPUS = Path(__file__).resolve().parents[1] / "data" / "tinyshakespeare" / "input.txt"
HUB_TASKS = [name for name in TASKS if name != "shakespeare_speaker"]


def local(name: str):
    return make_task(name, local_dir=str(HUB))


def eval_examples(name: str) -> list[Example]:
    task = local(name)
    (split,) = set(task.eval_sets.values())
    return task.examples(split)


# -------------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("name", HUB_TASKS)
def test_every_hub_task_reads_its_local_rows_in_order(name):
    task = local(name)
    assert task.benchmark == ("glue" if name.startswith("glue") else "super_glue" if "super" in name else None)
    for split in (task.train_split, *task.eval_sets.values()):
        examples = task.examples(split)
        assert examples and all(e.input and e.target for e in examples)
        assert task.examples(split) == examples  # deterministic
    assert sorted(task.source()["files"]) == sorted(
        str(p.relative_to(HUB / task.rows.hub_path)) for split in (task.train_split, *task.eval_sets.values())
        for p in (HUB / task.rows.hub_path / task.rows.hub_name).glob(f"{split}-*.parquet"))


def test_glue_formats_are_t5s():
    cola = local("glue_cola").examples("validation")
    assert cola[0] == Example("cola sentence: The sailors rode the breeze clear of the rocks.", "acceptable")
    assert cola[4].target == "unacceptable"
    assert local("glue_cola").examples("test")[0].target == "<unk>"  # the hub's test rows have label -1
    # features in sorted order: MNLI's hypothesis comes before its premise (the premise's trailing space is kept)
    mnli = local("glue_mnli").examples("validation_matched")[0]
    assert mnli.input == ("mnli hypothesis: Everyone really likes the newest benefits  premise: "
                          "The new rights are nice enough")
    assert mnli.target == "neutral"
    qqp = local("glue_qqp").examples("validation")[0]
    assert qqp == Example("qqp question1: Why are African-Americans so beautiful? question2: Why are hispanics so "
                          "beautiful?", "not_duplicate")


def test_stsb_targets_are_rounded_to_a_fifth_as_t5_does():
    targets = [e.target for e in local("glue_stsb").examples("validation")]
    assert targets == ["5.0", "4.8", "4.2", "2.4", "0.4"]  # 4.25 and 0.5 are ties: to the even fifth, like tf.round
    assert glue.stsb_target(3.35) == "3.4" and glue.stsb_target(0.0) == "0.0"


def test_super_glue_formats_are_t5s():
    boolq = local("super_glue_boolq").examples("train")[0]
    assert boolq.input.startswith("boolq passage: Persian language") and boolq.target == "True"
    copa = local("super_glue_copa").examples("validation")[0]
    assert copa == Example("copa choice1: The toilet filled with water. choice2: Water flowed from the spout. "
                           "premise: The man turned on the faucet. question: effect", "choice2")
    wic = local("super_glue_wic").examples("validation")[0]
    assert wic.input == "wic sentence1: Room and board . sentence2: He nailed boards across the windows . word: board"
    cb = local("super_glue_cb").examples("validation")[0]
    assert cb.input.startswith("cb hypothesis: Valence was helping premise: ") and cb.target == "contradiction"


def test_multirc_drops_markup_and_numbers_questions():
    examples = local("super_glue_multirc").examples("validation")
    assert examples[0].input == (
        "multirc question: What continued its rounds? answer: Diplomacy paragraph: Sent 1: While this process moved "
        "along, diplomacy continued its rounds. Sent 2: Direct pressure on the Taliban had proved unsuccessful. ")
    assert [e.group for e in examples] == [0, 0, 1, 1, 1]
    assert [e.target for e in examples] == ["True", "False", "True", "False", "True"]


def test_record_joins_highlights_and_trains_on_every_answer():
    task = local("super_glue_record")
    train = task.examples("train")
    assert [e.target for e in train] == ["HRW", "Human Rights Watch"]
    assert all(e.answers == ("HRW", "Human Rights Watch") for e in train)
    validation = task.examples("validation")
    assert len(validation) == 2 and [e.group for e in validation] == [0, 1]
    assert validation[0].input == (
        "record query: Women in @placeholder are jailed for 'moral crimes' entities: Afghanistan, Human Rights Watch "
        "passage: The harrowing stories of women and children locked up for so-called 'moral crimes' in Afghanistan "
        "have been told. Human Rights Watch says 400 women and girls are in prison. Most were detained for 'moral "
        "crimes'")


def test_wsc_marks_the_pronoun_and_trains_on_right_referents_only():
    task = local("super_glue_wsc")
    train = task.examples("train")
    assert [e.target for e in train] == ["John", "the magic pebble"]  # the row labelled 0 ("boy") is not trained on
    assert train[0].input.endswith('John laughed out quite loud. "Good for *him* ," he said. ')  # T5's hand fix
    assert "might want to use *it* , but" in train[1].input  # span2_index names "use": T5's other hand fix
    validation = task.examples("validation")
    assert validation[1] == Example("wsc: Mark told Pete many lies about himself, which Pete included in his book. "
                                    "*He* should have been more truthful.", "Pete", label=1)
    assert [e.label for e in validation] == [0, 1]


def test_squad_pads_punctuation_as_t5():
    example = local("squad").examples("validation")[1]
    assert example.input.startswith("question: What was the final score ? context: Super Bowl 50 was")
    assert "League ( NFL ) for the 2015 season ." in example.input
    assert example.target == "24 - 10" and example.answers == ("24 - 10", "24–10")


def test_bad_names_and_places_are_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="Unknown fine-tuning task 'glue_wnli'; accepted: glue_cola"):
        make_task("glue_wnli")
    with pytest.raises(ConfigError, match="takes no options"):
        make_task("glue_cola", speakers=3)
    with pytest.raises(DataConfigError, match=r"no validation-\*\.parquet in .*nyu-mll/glue/cola"):
        make_task("glue_cola", local_dir=str(tmp_path)).examples("validation")


# -------------------------------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("name", HUB_TASKS)
def test_perfect_predictions_score_100(name):
    task = local(name)
    for split in task.eval_sets.values():
        examples = task.examples(split)
        # WSC: the right answer names the candidate when it is the referent, and something else when not
        right = [e.target if e.label in (None, 1) else "Bill" for e in examples]
        if name == "super_glue_cb":  # mean F1 over 3 classes needs all 3: score one example of each
            examples = [Example("x", t) for t in ("entailment", "contradiction", "neutral")]
            right = [e.target for e in examples]
        assert all(value == pytest.approx(100) for value in task.metrics(right, examples).values())


def test_metric_keys_are_the_papers():
    keys = {}
    for name in HUB_TASKS:
        task = local(name)
        for score_name, split in task.eval_sets.items():
            examples = task.examples(split)
            keys[score_name] = set(task.metrics([e.target for e in examples], examples))
    assert keys == {
        "glue_cola": {"mcc"}, "glue_sst2": {"accuracy"}, "glue_mrpc": {"f1", "accuracy"},
        "glue_stsb": {"pearson", "spearman"}, "glue_qqp": {"f1", "accuracy"}, "glue_mnli_matched": {"accuracy"},
        "glue_mnli_mismatched": {"accuracy"}, "glue_qnli": {"accuracy"}, "glue_rte": {"accuracy"},
        "super_glue_boolq": {"accuracy"}, "super_glue_cb": {"f1", "accuracy"}, "super_glue_copa": {"accuracy"},
        "super_glue_multirc": {"f1", "em"}, "super_glue_record": {"f1", "em"}, "super_glue_rte": {"accuracy"},
        "super_glue_wic": {"accuracy"}, "super_glue_wsc": {"accuracy"}, "squad": {"em", "f1"}}


def test_mcc_on_a_hand_checked_case():
    # gold 1,1,0,0 predicted 1,0,0,0: TP=1 TN=2 FP=0 FN=1 -> (1*2 - 0*1) / sqrt(1*2*2*3) = 2/sqrt(12)
    examples = [Example("x", t) for t in ("acceptable", "acceptable", "unacceptable", "unacceptable")]
    predicted = ["acceptable", "unacceptable", "unacceptable", "unacceptable"]
    assert local("glue_cola").metrics(predicted, examples)["mcc"] == pytest.approx(100 * 2 / math.sqrt(12))


def test_a_prediction_that_is_no_label_is_wrong():
    examples = [Example("x", "positive"), Example("x", "negative")]
    assert local("glue_sst2").metrics(["positive", "Negative"], examples) == {"accuracy": 50.0}
    # MRPC's F1: the invalid prediction for a gold 0 becomes a false positive (P=1/2, R=1), not a true negative
    examples = [Example("x", "equivalent"), Example("x", "not_equivalent")]
    assert local("glue_mrpc").metrics(["equivalent", "maybe"], examples) == pytest.approx(
        {"f1": 100 * 2 / 3, "accuracy": 50.0})


def test_cb_f1_is_the_mean_over_its_three_classes():
    # per class F1: entailment 1, contradiction 0 (its one example predicted "?"), neutral 1; "?" is no 4th class
    examples = [Example("x", t) for t in ("entailment", "contradiction", "neutral", "neutral")]
    result = local("super_glue_cb").metrics(["entailment", "?", "neutral", "neutral"], examples)
    assert result == pytest.approx({"f1": 100 * 2 / 3, "accuracy": 75.0})


def test_stsb_parses_predictions_and_scores_an_unparsable_one_as_minus_one():
    examples = [Example("x", t) for t in ("1.0", "2.0", "3.0", "4.0")]
    result = local("glue_stsb").metrics(["1.0", "2.0", "oops", "4.0"], examples)
    # predicted 1, 2, -1, 4: Pearson r of (1,2,3,4) and (1,2,-1,4) by hand: cov 3.5/3, sd 1.291 and 2.160
    gold, predicted = [1, 2, 3, 4], [1, 2, -1, 4]
    mean_g, mean_p = 2.5, 1.5
    cov = sum((g - mean_g) * (p - mean_p) for g, p in zip(gold, predicted))
    r = cov / math.sqrt(sum((g - mean_g) ** 2 for g in gold) * sum((p - mean_p) ** 2 for p in predicted))
    assert result["pearson"] == pytest.approx(100 * r)
    assert result["spearman"] == pytest.approx(100 * 0.4)  # ranks 1,2,3,4 vs 2,3,1,4: 1 - 6*6/(4*15)


def test_squad_normalisation_and_best_answer():
    assert scores.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert scores.normalize_answer("an Apple, a day") == "apple day"
    examples = [Example("x", "Denver Broncos", ("Denver Broncos", "the Broncos")), Example("x", "24 - 10")]
    result = local("squad").metrics(["Broncos", "24-10"], examples)
    # "broncos" vs "broncos": EM 1 on the second answer; "2410" vs "24 10": nothing shared
    assert result == pytest.approx({"em": 50.0, "f1": 50.0})
    partial_ = local("squad").metrics(["the Denver Broncos team"], [Example("x", "Denver Broncos")])
    assert partial_ == pytest.approx({"em": 0.0, "f1": 100 * 2 * (2 / 3) * 1 / (2 / 3 + 1)})


def test_multirc_em_is_over_questions_and_f1_over_all_answers():
    examples = eval_examples("super_glue_multirc")  # gold True False | True False True, questions 0 | 1
    result = local("super_glue_multirc").metrics(["True", "False", "True", "False", "False"], examples)
    # question 0 all right, question 1 one answer wrong: EM 1/2; F1 over answers: TP=2 FN=1 FP=0 -> 0.8
    assert result == pytest.approx({"em": 50.0, "f1": 80.0})


def test_record_scores_each_query_once():
    examples = local("super_glue_record").examples("train")  # one query, two training copies
    assert local("super_glue_record").metrics(["HRW", "wrong"], examples) == pytest.approx({"em": 100.0, "f1": 100.0})


def test_wsc_prediction_names_the_candidate_as_t5_checks():
    assert glue.names_referent("magic pebble", "the magic pebble") == 1
    assert glue.names_referent("The Pebble", "the magic pebble") == 1
    assert glue.names_referent("Bob", "Bob's hat") == 0
    assert glue.names_referent("the", "the magic pebble") == -1  # only a determiner: empty, never right
    examples = eval_examples("super_glue_wsc")  # candidates Mark (label 0), Pete (label 1)
    assert local("super_glue_wsc").metrics(["Pete", "Pete"], examples) == {"accuracy": 100.0}
    assert local("super_glue_wsc").metrics(["Mark", "Mark"], examples) == {"accuracy": 0.0}


# ----------------------------------------------------------------------------------------- benchmark averages

GLUE_SCORES = {"glue_cola": {"mcc": 10.0}, "glue_sst2": {"accuracy": 20.0},
               "glue_mrpc": {"f1": 30.0, "accuracy": 50.0}, "glue_stsb": {"pearson": 60.0, "spearman": 80.0},
               "glue_qqp": {"f1": 0.0, "accuracy": 100.0}, "glue_mnli_matched": {"accuracy": 70.0},
               "glue_mnli_mismatched": {"accuracy": 90.0}, "glue_qnli": {"accuracy": 30.0},
               "glue_rte": {"accuracy": 40.0}}


def test_glue_average_averages_each_task_first_and_mnli_once():
    # tasks: 10, 20, (30+50)/2, (60+80)/2, (0+100)/2, MNLI (70+90)/2, 30, 40 -> 340 / 8 (MNLI twice would be 420/9)
    assert benchmark_averages(GLUE_SCORES) == {"glue": pytest.approx(42.5)}
    assert set(GLUE_SCORES) == set(GLUE_TASKS)


def test_an_average_needs_every_task_of_its_benchmark():
    missing = {k: v for k, v in GLUE_SCORES.items() if k != "glue_rte"}
    assert benchmark_averages(missing) == {}
    assert benchmark_averages({**GLUE_SCORES, "glue_mrpc": {"accuracy": 50.0}}) == {}  # its F1 is missing
    super_glue = {name: {"accuracy": 60.0} for name in SUPER_GLUE_TASKS}
    super_glue |= {"super_glue_cb": {"f1": 40.0, "accuracy": 80.0}, "super_glue_multirc": {"f1": 70.0, "em": 30.0},
                   "super_glue_record": {"f1": 90.0, "em": 70.0}}
    # boolq 60, cb 60, copa 60, multirc 50, record 80, rte 60, wic 60, wsc 60 -> 490 / 8
    assert benchmark_averages({**super_glue, **missing}) == {"super_glue": pytest.approx(61.25)}


# ------------------------------------------------------------------------------------------ shakespeare_speaker


@pytest.fixture(scope="module")
def speaker():
    return make_task("shakespeare_speaker", files=str(CORPUS), split_fractions=[0.9, 0.05, 0.05])


def test_speaker_task_on_tinyshakespeare_is_as_documented(speaker):
    assert speaker.candidates == ("PETRUCHIO", "LUCENTIO", "HORTENSIO", "GREMIO", "TRANIO")
    train, test = speaker.examples("train"), speaker.examples(speaker.eval_sets["shakespeare_speaker"])
    assert (len(train), len(test)) == (115, 111)
    assert speaker.metrics(["PETRUCHIO"] * len(test), test) == pytest.approx(
        {"accuracy": 100 * 50 / 111, "macro_f1": 100 * (2 * (50 / 111) / (1 + 50 / 111)) / 5})
    assert speaker.metrics([e.target for e in test], test) == {"accuracy": 100.0, "macro_f1": 100.0}
    assert speaker.metrics(["Petruchio"] * len(test), test) == {"accuracy": 0.0, "macro_f1": 0.0}
    again = make_task("shakespeare_speaker", files=[str(CORPUS)])
    assert again.examples("test") == test and again.examples("train") == train


def test_speaker_texts_use_only_characters_of_the_train_split(speaker):
    vocabulary = set(split_text(CORPUS.read_text(encoding="utf-8"), (0.9, 0.05, 0.05))["train"])
    for example in speaker.examples("train") + speaker.examples("test"):
        assert set(example.input + example.target) <= vocabulary and "\n" not in example.input
        assert example.input.startswith("speaker speech: ") and len(example.input) <= 16 + 96


def test_speaker_examples_come_from_their_own_split(tmp_path):
    # 40 numbered speeches, ANNE/BEN/CLEO in turn: where each block starts says which split its example belongs to
    blocks = [f"{('ANNE', 'BEN', 'CLEO')[i % 3]}:\nspeech {i} begins\nand ends.\n\n" for i in range(40)]
    text = "".join(blocks)
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    task = make_task("shakespeare_speaker", files=[str(tmp_path / "c.txt")], split_fractions=[0.5, 0.2, 0.3],
                     speakers=2, min_train_speeches=3)
    starts = [sum(map(len, blocks[:i])) for i in range(40)]
    train_end, test_start = int(len(text) * 0.5), int(len(text) * 0.7)
    assert starts[20] + len("CLEO:") == train_end and starts[28] < test_start < starts[29]

    def numbers(examples):
        return [int(e.input.split()[3]) for e in examples]

    # test blocks 29..39: ANNE 4, CLEO 4, BEN 3 speeches -> ANNE and CLEO (block 28 is cut by the split: left out)
    assert task.candidates == ("ANNE", "CLEO")
    assert task.split_speeches["test"][0] == ("CLEO", "speech 29 begins and ends.")  # not ("N", "speech 28 ...")
    assert numbers(task.examples("test")) == [i for i in range(29, 40) if i % 3 != 1]
    # train: blocks 0..19 (block 20 keeps only its name, "CLEO:", before the cut)
    assert numbers(task.examples("train")) == [i for i in range(20) if i % 3 != 1]
    assert task.examples("test")[0] == Example("speaker speech: speech 29 begins and ends.", "CLEO")


def test_speaker_options_are_checked():
    with pytest.raises(ConfigError, match="unknown option"):
        make_task("shakespeare_speaker", speaker=3)
    with pytest.raises(ConfigError, match="revision and local_dir do not apply"):
        make_task("shakespeare_speaker", local_dir=str(HUB))
    with pytest.raises(ConfigError, match="split_fractions"):
        make_task("shakespeare_speaker", split_fractions=[0.9, 0.2])
    with pytest.raises(DataConfigError, match="not a non-empty file"):
        make_task("shakespeare_speaker", files=["/nonexistent/input.txt"])


def test_a_hub_task_reads_the_commit_its_identity_names(tmp_path, monkeypatch):
    """Without local_dir a task reads the hub through datasets.load_dataset, at the commit its revision resolves to
    (here from a hub-shaped HF cache, offline), and that commit is in the task's source (the fine-tune's identity).
    `datasets` cannot read an HF hub cache offline (tests/test_hub_provenance.py), so load_dataset serves the local
    parquet rows of the commit asked for."""
    import datasets
    import huggingface_hub.constants

    from ffnlab.downstream import hub_task

    sha = "c" * 40
    repo = tmp_path / "hub" / "datasets--nyu-mll--glue"
    (repo / "snapshots" / sha / "cola").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    hub_task._resolved.cache_clear()
    expected = local("glue_cola").examples("validation")
    asked = []

    def load_dataset(path, name=None, split=None, revision=None, **_):
        asked.append((path, name, split, revision))
        files = sorted(str(p) for p in (HUB / path / name).glob(f"{split}-*.parquet"))
        return datasets.Dataset.from_parquet(files)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    task = make_task("glue_cola")
    assert task.source()["resolved_revision"] == sha
    assert task.examples("validation") == expected
    assert asked == [("nyu-mll/glue", "cola", "validation", sha)]
    hub_task._resolved.cache_clear()
