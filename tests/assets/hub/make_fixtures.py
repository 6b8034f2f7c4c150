"""Writes the hub-shaped fixtures tests/test_text_tasks.py reads: a few rows per split of each GLUE, SuperGLUE and
SQuAD config, as `<hub_path>/<hub_name>/<split>-00000-of-00001.parquet` with the hub's columns, types, label encodings
and `huggingface` feature metadata. Rows are real or look it; labels are ints (ClassLabel), -1 in test splits.

    .venv/bin/python tests/assets/hub/make_fixtures.py     # rewrites the files next to this script
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, Features, Sequence, Value

HERE = Path(__file__).resolve().parent
S, I32 = Value("string"), Value("int32")


def label(*names: str) -> ClassLabel:
    return ClassLabel(names=list(names))


BOOL = label("False", "True")
ENTAILMENT = label("entailment", "not_entailment")


def rows(columns: tuple[str, ...], *values: tuple) -> list[dict]:
    return [dict(zip(columns, row, strict=True)) for row in values]


GLUE = {
    "cola": (Features(sentence=S, label=label("unacceptable", "acceptable"), idx=I32), {
        "train": rows(("sentence", "label", "idx"),
                      ("Our friends won't buy this analysis, let alone the next one we propose.", 1, 0),
                      ("They drank the pub.", 0, 1),
                      ("The more we study verbs, the crazier they get.", 1, 2)),
        "validation": rows(("sentence", "label", "idx"),
                           ("The sailors rode the breeze clear of the rocks.", 1, 0),
                           ("The weights made the rope stretch over the pulley.", 1, 1),
                           ("The car honked its way down the road.", 1, 2),
                           ("Bill whistled past the house.", 1, 3),
                           ("The man lost his way the house.", 0, 4)),
        "test": rows(("sentence", "label", "idx"), ("Bill whistled past the house.", -1, 0)),
    }),
    "sst2": (Features(sentence=S, label=label("negative", "positive"), idx=I32), {
        "train": rows(("sentence", "label", "idx"), ("hide new secretions from the parental units ", 0, 0),
                      ("that loves its characters and communicates something rather beautiful about human nature ",
                       1, 1)),
        "validation": rows(("sentence", "label", "idx"), ("it 's a charming and often affecting journey . ", 1, 0),
                           ("unflinchingly bleak and desperate ", 0, 1)),
    }),
    "mrpc": (Features(sentence1=S, sentence2=S, label=label("not_equivalent", "equivalent"), idx=I32), {
        "train": rows(("sentence1", "sentence2", "label", "idx"),
                      ('Amrozi accused his brother , whom he called " the witness " , of deliberately distorting his '
                       'evidence .', 'Referring to him as only " the witness " , Amrozi accused his brother of '
                       'deliberately distorting his evidence .', 1, 0),
                      ("Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 billion .",
                       "Yucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway for $ 1.8 billion "
                       "in 1998 .", 0, 1)),
        "validation": rows(("sentence1", "sentence2", "label", "idx"),
                           ("He said the foodservice pie business doesn 't fit the company 's long-term growth "
                            "strategy .", '" The foodservice pie business does not fit our long-term growth '
                            'strategy .', 1, 0),
                           ("Magnarelli said Racicot hated the Iraqi regime and looked forward to using his long "
                            "years of training in the war .", "His wife said he was \" 100 percent behind George Bush "
                            "\" and looked forward to using his years of training in the war .", 0, 1)),
    }),
    "qqp": (Features(question1=S, question2=S, label=label("not_duplicate", "duplicate"), idx=I32), {
        "train": rows(("question1", "question2", "label", "idx"),
                      ("How is the life of a math student? Could you describe your own experiences?",
                       "Which level of prepration is enough for the exam jlpt5?", 0, 0),
                      ("How do I control my horny emotions?", "How do you control your horniness?", 1, 1)),
        "validation": rows(("question1", "question2", "label", "idx"),
                           ("Why are African-Americans so beautiful?", "Why are hispanics so beautiful?", 0, 0),
                           ("How do I get rid of my belly fat?", "How can I lose belly fat?", 1, 1)),
    }),
    "stsb": (Features(sentence1=S, sentence2=S, label=Value("float32"), idx=I32), {
        "train": rows(("sentence1", "sentence2", "label", "idx"),
                      ("A plane is taking off.", "An air plane is taking off.", 5.0, 0),
                      ("A man is playing a large flute.", "A man is playing a flute.", 3.8, 1),
                      ("A man is slicing a bun.", "A man is slicing a tomato.", 1.3, 2)),
        "validation": rows(("sentence1", "sentence2", "label", "idx"),
                           ("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0, 0),
                           ("A young child is riding a horse.", "A child is riding a horse.", 4.75, 1),
                           ("A man is feeding a mouse to a snake.", "The man is feeding a mouse to the snake.",
                            4.25, 2),
                           ("A woman is playing the guitar.", "A man is playing guitar.", 2.4, 3),
                           ("A woman is slicing an onion.", "A man is cutting a potato.", 0.5, 4)),
    }),
    "mnli": (Features(premise=S, hypothesis=S, label=label("entailment", "neutral", "contradiction"), idx=I32), {
        "train": rows(("premise", "hypothesis", "label", "idx"),
                      ("Conceptually cream skimming has two basic dimensions - product and geography.",
                       "Product and geography are what make cream skimming work. ", 1, 0),
                      ("you know during the season and i guess at at your level uh you lose them to the next level "
                       "if if they decide to recall the the parent team the Braves decide to call to recall a guy "
                       "from triple A then a double A guy goes up to replace him and a single A guy goes up to "
                       "replace him", "You lose the things to the following level if the people recall.", 0, 1)),
        "validation_matched": rows(("premise", "hypothesis", "label", "idx"),
                                   ("The new rights are nice enough", "Everyone really likes the newest benefits ",
                                    1, 0),
                                   ("This site includes a list of all award winners and a searchable database of "
                                    "Government Executive articles.", "The Government Executive articles housed on "
                                    "the website are not able to be searched.", 2, 1)),
        "validation_mismatched": rows(("premise", "hypothesis", "label", "idx"),
                                      ("Your contribution helped make it possible for us to provide our students "
                                       "with a quality education.", "Your contributions were of no help with our "
                                       "students' education.", 2, 0),
                                      ("The answer has nothing to do with their cause, however, but with the simple "
                                       "fact that dictionaries are not exercises in bi-unique substitutability.",
                                       "Dictionaries are indeed exercises in bi-unique substitutability.", 2, 1)),
    }),
    "qnli": (Features(question=S, sentence=S, label=ENTAILMENT, idx=I32), {
        "train": rows(("question", "sentence", "label", "idx"),
                      ("When did the third Digimon series begin?", "Unlike the two seasons before it and most of the "
                       "seasons that followed, Digimon Tamers takes a darker and more realistic approach to its "
                       "story featuring Digimon who do not reincarnate after their deaths and more complex character "
                       "development in the original Japanese.", 1, 0)),
        "validation": rows(("question", "sentence", "label", "idx"),
                           ("What came into force after the new constitution was herald?", "As of that day, the new "
                            "constitution heralding the Second Republic came into force.", 0, 0)),
    }),
    "rte": (Features(sentence1=S, sentence2=S, label=ENTAILMENT, idx=I32), {
        "train": rows(("sentence1", "sentence2", "label", "idx"),
                      ("No Weapons of Mass Destruction Found in Iraq Yet.", "Weapons of Mass Destruction Found in "
                       "Iraq.", 1, 0)),
        "validation": rows(("sentence1", "sentence2", "label", "idx"),
                           ("Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age "
                            "44, according to the Christopher Reeve Foundation.", "Christopher Reeve had an "
                            "accident.", 1, 0)),
    }),
}

RECORD_PASSAGE = ("The harrowing stories of women and children locked up for so-called 'moral crimes' in Afghanistan "
                  "have been told.\n@highlight\nHuman Rights Watch says 400 women and girls are in prison\n@highlight\n"
                  "Most were detained for 'moral crimes'")
RECORD_SPANS = {"text": ["Afghanistan", "Human Rights Watch"], "start": [98, 124], "end": [108, 141]}
WSC_PONY = ('The boy continued to whip the pony , and eventually the pony threw him over. John laughed out quite '
            'loud. "Good for him," he said. ')
WSC_PEBBLE = ("When they had eventually calmed down a bit , and had gotten home, Mr. Farley put the magic pebble in "
              "an iron safe . Some day they might want to use it , but really for now, what more could they wish "
              "for?")
MULTIRC_TEXT = ("<b>Sent 1: </b>While this process moved along, diplomacy continued its rounds.<br><b>Sent 2: </b>"
                "Direct pressure on the Taliban had proved unsuccessful.<br>")

SUPER_GLUE = {
    "boolq": (Features(question=S, passage=S, idx=I32, label=BOOL), {
        "train": rows(("question", "passage", "idx", "label"),
                      ("do iran and afghanistan speak the same language", "Persian language -- Persian is a "
                       "pluricentric language.", 0, 1)),
        "validation": rows(("question", "passage", "idx", "label"),
                           ("does ethanol take more energy make that produces", "Ethanol fuel -- All biomass goes "
                            "through at least some of these steps.", 0, 0)),
    }),
    "cb": (Features(premise=S, hypothesis=S, idx=I32, label=label("entailment", "contradiction", "neutral")), {
        "train": rows(("premise", "hypothesis", "idx", "label"),
                      ("It was a complex language. Not written down but handed down. One might say it was peeled "
                       "down.", "the language was peeled down", 0, 0)),
        "validation": rows(("premise", "hypothesis", "idx", "label"),
                           ("Valence the void-brain, Valence the virtuous valet. Why couldn't the figger choose his "
                            "own portion of titanic anatomy to shaft?", "Valence was helping", 0, 1)),
    }),
    "copa": (Features(premise=S, choice1=S, choice2=S, question=S, idx=I32, label=label("choice1", "choice2")), {
        "train": rows(("premise", "choice1", "choice2", "question", "idx", "label"),
                      ("My body cast a shadow over the grass.", "The sun was rising.", "The grass was cut.", "cause",
                       0, 0)),
        "validation": rows(("premise", "choice1", "choice2", "question", "idx", "label"),
                           ("The man turned on the faucet.", "The toilet filled with water.",
                            "Water flowed from the spout.", "effect", 0, 1)),
    }),
    "multirc": (Features(paragraph=S, question=S, answer=S, idx={"paragraph": I32, "question": I32, "answer": I32},
                         label=BOOL), {
        "train": rows(("paragraph", "question", "answer", "idx", "label"),
                      (MULTIRC_TEXT, "What did diplomacy do?", "Continued its rounds",
                       {"paragraph": 0, "question": 0, "answer": 0}, 1)),
        "validation": rows(("paragraph", "question", "answer", "idx", "label"),
                           (MULTIRC_TEXT, "What continued its rounds?", "Diplomacy",
                            {"paragraph": 0, "question": 0, "answer": 0}, 1),
                           (MULTIRC_TEXT, "What continued its rounds?", "The Taliban",
                            {"paragraph": 0, "question": 0, "answer": 1}, 0),
                           (MULTIRC_TEXT, "What proved unsuccessful?", "Direct pressure on the Taliban",
                            {"paragraph": 0, "question": 1, "answer": 0}, 1),
                           (MULTIRC_TEXT, "What proved unsuccessful?", "Diplomacy",
                            {"paragraph": 0, "question": 1, "answer": 1}, 0),
                           (MULTIRC_TEXT, "What proved unsuccessful?", "Pressure",
                            {"paragraph": 0, "question": 1, "answer": 2}, 1)),
    }),
    "record": (Features(passage=S, query=S, entities=Sequence(S),
                        entity_spans=Sequence({"text": S, "start": I32, "end": I32}), answers=Sequence(S),
                        idx={"passage": I32, "query": I32}), {
        "train": rows(("passage", "query", "entities", "entity_spans", "answers", "idx"),
                      (RECORD_PASSAGE, "@placeholder says most women were detained for moral crimes",
                       ["Afghanistan", "HRW", "Human Rights Watch"], RECORD_SPANS, ["HRW", "Human Rights Watch"],
                       {"passage": 0, "query": 0})),
        "validation": rows(("passage", "query", "entities", "entity_spans", "answers", "idx"),
                           (RECORD_PASSAGE, "Women in @placeholder are jailed for 'moral crimes'",
                            ["Afghanistan", "Human Rights Watch"], RECORD_SPANS, ["Afghanistan"],
                            {"passage": 0, "query": 0}),
                           (RECORD_PASSAGE, "@placeholder counted 400 women and girls in prison",
                            ["Afghanistan", "Human Rights Watch"], RECORD_SPANS, ["Human Rights Watch"],
                            {"passage": 0, "query": 1})),
    }),
    "rte": (Features(premise=S, hypothesis=S, idx=I32, label=ENTAILMENT), {
        "train": rows(("premise", "hypothesis", "idx", "label"),
                      ("No Weapons of Mass Destruction Found in Iraq Yet.", "Weapons of Mass Destruction Found in "
                       "Iraq.", 0, 1)),
        "validation": rows(("premise", "hypothesis", "idx", "label"),
                           ("Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44.",
                            "Christopher Reeve had an accident.", 0, 1)),
    }),
    "wic": (Features(word=S, sentence1=S, sentence2=S, start1=I32, start2=I32, end1=I32, end2=I32, idx=I32,
                     label=BOOL), {
        "train": rows(("word", "sentence1", "sentence2", "start1", "start2", "end1", "end2", "idx", "label"),
                      ("carry", "You must carry your camping gear .", "Sound carries well over water .", 9, 6, 14, 13,
                       0, 0)),
        "validation": rows(("word", "sentence1", "sentence2", "start1", "start2", "end1", "end2", "idx", "label"),
                           ("board", "Room and board .", "He nailed boards across the windows .", 9, 10, 14, 16, 0,
                            0)),
    }),
    "wsc.fixed": (Features(text=S, span1_index=I32, span2_index=I32, span1_text=S, span2_text=S, idx=I32,
                           label=BOOL), {
        "train": rows(("text", "span1_index", "span2_index", "span1_text", "span2_text", "idx", "label"),
                      (WSC_PONY, 15, 22, "John", "him", 0, 1),
                      (WSC_PONY, 1, 22, "boy", "him", 1, 0),
                      (WSC_PEBBLE, 16, 30, "the magic pebble", "it", 2, 1)),
        "validation": rows(("text", "span1_index", "span2_index", "span1_text", "span2_text", "idx", "label"),
                           ("Mark told Pete many lies about himself, which Pete included in his book. He should have "
                            "been more truthful.", 0, 13, "Mark", "He", 0, 0),
                           ("Mark told Pete many lies about himself, which Pete included in his book. He should have "
                            "been more truthful.", 2, 13, "Pete", "He", 1, 1)),
    }),
}

SQUAD_CONTEXT = ("Super Bowl 50 was an American football game to determine the champion of the National Football "
                 "League (NFL) for the 2015 season. The American Football Conference (AFC) champion Denver Broncos "
                 "defeated the National Football Conference (NFC) champion Carolina Panthers 24-10.")
SQUAD_FEATURES = Features(id=S, title=S, context=S, question=S,
                          answers=Sequence({"text": S, "answer_start": I32}))
SQUAD = {
    "plain_text": (SQUAD_FEATURES, {
        "train": rows(("id", "title", "context", "question", "answers"),
                      ("5733be284776f41900661182", "University_of_Notre_Dame", "Architecturally, the school has a "
                       "Catholic character. It is a replica of the grotto at Lourdes, France where the Virgin Mary "
                       "reputedly appeared to Saint Bernadette Soubirous in 1858.", "To whom did the Virgin Mary "
                       "allegedly appear in 1858 in Lourdes France?",
                       {"text": ["Saint Bernadette Soubirous"], "answer_start": [151]})),
        "validation": rows(("id", "title", "context", "question", "answers"),
                           ("56be4db0acb8001400a502ec", "Super_Bowl_50", SQUAD_CONTEXT, "Which NFL team represented "
                            "the AFC at Super Bowl 50?", {"text": ["Denver Broncos", "Denver Broncos"],
                                                          "answer_start": [177, 177]}),
                           ("56be4db0acb8001400a502ee", "Super_Bowl_50", SQUAD_CONTEXT, "What was the final score?",
                            {"text": ["24-10", "24–10"], "answer_start": [263, 263]})),
    }),
}


def write(hub_path: str, configs: dict) -> None:
    for config, (features, splits) in configs.items():
        for split, split_rows in splits.items():
            path = HERE / hub_path / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(split_rows, schema=features.arrow_schema), path)


if __name__ == "__main__":
    write("nyu-mll/glue", GLUE)
    write("aps/super_glue", SUPER_GLUE)
    write("rajpurkar/squad", SQUAD)
