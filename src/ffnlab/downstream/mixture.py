"""Fine-tuning data: the text-to-text examples of one or more tasks (ffnlab.downstream.text_tasks) as a decoder-only
language model reads them, `input \\n target END`, with the loss on the target tokens (END included) only.

- The tokenizer is the pre-training run's (ffnlab.downstream.finetune hands it over): fine-tuning changes weights,
  never ids. END is the end-of-document token where the tokenizer has one (BPE), else the newline (a character
  vocabulary has no special token, and no target of ours holds a newline).
- An input too long for `seq_len` is cut at its end, as T5 truncates its inputs; the separator and the whole target
  stay (a target longer than the sequence is one line).
- Mixing is examples-proportional (T5's `rate_num_examples`): task i is drawn with probability min(n_i, K) / sum,
  K = `mixing_limit` (null: no cap, T5's GLUE/SuperGLUE mixtures). Sample s of the stream is a pure function of
  (seed, s): its task and example come from `default_rng([seed, s])`, so the stream, like ffnlab.data.windows', does not
  depend on batch size, ranks or workers, and a resume at step k continues it exactly (`start_sample`). Examples are
  drawn with replacement within a task (T5 cycles through shuffled repeats of each task: the same rates).
- Validation scores the target tokens of every evaluation set's first `eval_examples` examples (all, when null),
  token-weighted and split over ranks as ffnlab.data.windows.RankShare does for text; the test loader is the same sets
  (GLUE's test labels are hidden: T5 and the paper report validation). The generated answers are scored by
  ffnlab.downstream.finetune.score.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from ffnlab.config.errors import DataConfigError
from ffnlab.data.tokenizer import TextTokenizer, load_tokenizer_from_json
from ffnlab.data.windows import IGNORE_INDEX, RankShare, rank_and_world_size

log = logging.getLogger(__name__)

EOD = "<|endoftext|>"  # ffnlab.data.corpus.EOD: BPE tokenizers of row corpora have it
SEPARATOR = "\n"


@dataclass
class Encoded:
    """One set of examples as ids: the prompt (input + separator) and the target (+ END) of each."""

    prompts: list[list[int]]
    targets: list[list[int]]

    def __len__(self) -> int:
        return len(self.prompts)


def end_id(tokenizer: TextTokenizer) -> int:
    eod = tokenizer.hf.token_to_id(EOD)
    return eod if eod is not None else ids(tokenizer, SEPARATOR)[-1]


def ids(tokenizer: TextTokenizer, text: str) -> list[int]:
    return tokenizer.hf.encode(text, add_special_tokens=False).ids


def encode(tokenizer: TextTokenizer, examples: Sequence, seq_len: int, task: str) -> Encoded:
    """Prompts cut at the end of their input so that prompt + target fits `seq_len + 1` tokens (the input of the
    last target token is the one before it)."""
    end, separator = end_id(tokenizer), ids(tokenizer, SEPARATOR)
    inputs = tokenizer.hf.encode_batch([e.input for e in examples], add_special_tokens=False)
    targets = tokenizer.hf.encode_batch([e.target for e in examples], add_special_tokens=False)
    encoded = Encoded([], [])
    for example, source, target in zip(examples, inputs, targets):
        target = [*target.ids, end]
        room = seq_len + 1 - len(target) - len(separator)
        if room < 1:
            raise DataConfigError(f"a target of task {task} takes {len(target)} tokens, more than model.seq_len="
                                  f"{seq_len} leaves for it: {example.target[:60]!r}; use a longer model.seq_len")
        encoded.prompts.append([*source.ids[:room], *separator])
        encoded.targets.append(target)
    return encoded


def to_row(prompt: list[int], target: list[int], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of one example: x the sequence less its last token, y the next tokens where they are the target's."""
    sequence = prompt + target
    x = torch.zeros(seq_len, dtype=torch.int64)
    y = torch.full((seq_len,), IGNORE_INDEX, dtype=torch.int64)
    x[: len(sequence) - 1] = torch.tensor(sequence[:-1])
    y[len(prompt) - 1 : len(sequence) - 1] = torch.tensor(target)
    return x, y


def mixing_rates(sizes: Sequence[int], limit: int | None) -> np.ndarray:
    capped = np.array([min(n, limit) if limit else n for n in sizes], dtype=np.float64)
    return capped / capped.sum()


class MixtureStream(IterableDataset):
    """Endless (x, y) batches drawn from the tasks at `rates`; rank r of W takes the samples s = r (mod W), as
    ffnlab.data.windows.RandomWindows does, and DataLoader workers take whole batches in turn."""

    def __init__(self, tasks: Sequence[Encoded], rates: np.ndarray, seq_len: int, batch_size: int, seed: int,
                 start_sample: int = 0):
        self.tasks, self.rates, self.seq_len, self.batch_size = list(tasks), rates, seq_len, batch_size
        self.seed, self.start_sample = seed, start_sample
        self.rank, self.world_size = rank_and_world_size()

    def pick(self, sample: int) -> tuple[int, int]:
        rng = np.random.default_rng([self.seed, sample])
        task = int(rng.choice(len(self.rates), p=self.rates))
        return task, int(rng.integers(len(self.tasks[task])))

    def __iter__(self):
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        for batch in itertools.count(worker_id, num_workers):
            rows = []
            for local in range(batch * self.batch_size, (batch + 1) * self.batch_size):
                task, i = self.pick(self.start_sample + self.rank + self.world_size * local)
                rows.append(to_row(self.tasks[task].prompts[i], self.tasks[task].targets[i], self.seq_len))
            yield torch.stack([x for x, _ in rows]), torch.stack([y for _, y in rows])


class EvalRows(Dataset):
    def __init__(self, sets: Sequence[Encoded], seq_len: int):
        self.items = [(p, t) for s in sets for p, t in zip(s.prompts, s.targets)]
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return to_row(*self.items[i], self.seq_len)


def make_tasks(names, revision: str | None, local_dir: str | None, task_options: dict | None) -> list:
    """The tasks a mixture config names (`data.tasks`, with `data.revision`, `data.local_dir`, `data.task_options`):
    what the data module reads and what a fine-tune's identity names (ffnlab.downstream.finetune.input_identity)."""
    from ffnlab.downstream.text_tasks import TASKS, make_task

    accepted = ", ".join(TASKS)
    if not names:
        raise DataConfigError(f"data.tasks lists no task; accepted: {accepted}")
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise DataConfigError(f"data.tasks names unknown task(s) {', '.join(unknown)}; accepted: {accepted}")
    options = dict(task_options or {})
    return [make_task(t, revision=revision, local_dir=local_dir, **dict(options.get(t) or {})) for t in names]


class MixtureDataModule(L.LightningDataModule):
    """Config keys are the constructor's arguments (conf/data/shakespeare_speaker.yaml, glue_mixture.yaml);
    `tokenizer_json` is the pre-training run's, given by ffnlab.training.run."""

    def __init__(self, *, name: str, tasks: Sequence[str], seq_len: int, batch_size: int = 16,
                 eval_batch_size: int | None = None, global_batch_size: int | None = None, seed: int = 0,
                 mixing_limit: int | None = None, eval_examples: int | None = None, local_dir: str | None = None,
                 revision: str | None = None, task_options: dict | None = None, num_workers: int = 0,
                 tokenizer_json: str | None = None):
        super().__init__()
        self.tasks = make_tasks(tasks, revision, local_dir, task_options)
        self.name, self.seq_len, self.batch_size = name, seq_len, batch_size
        self.eval_batch_size, self.seed, self.num_workers = eval_batch_size or batch_size, seed, num_workers
        self.mixing_limit, self.eval_examples = mixing_limit, eval_examples
        self.tokenizer = load_tokenizer_from_json(tokenizer_json) if tokenizer_json else None
        self.vocab_size = self.tokenizer.vocab_size if self.tokenizer else None
        self.fit_val_windows = None  # validations in fit score every evaluation example
        self.unigram_entropy = None  # a property of running text: not of targets
        self.start_sample = 0
        self.train: list[Encoded] | None = None
        self.eval_sets: dict[str, tuple[object, list, Encoded]] = {}  # name -> (task, examples, encoded)
        self.rates: np.ndarray | None = None

    def source(self) -> dict:
        """What the examples are read from, task by task (part of the fine-tune run's identity)."""
        return {task.name: task.source() for task in self.tasks}

    @property
    def data_hash(self) -> str:
        if self.tokenizer is None:
            raise RuntimeError("the mixture needs the pre-training run's tokenizer (tokenizer_json)")
        settings = {"sources": self.source(), "tokenizer": hashlib.sha256(self.tokenizer.to_json().encode()).hexdigest(),
                    "mixing_limit": self.mixing_limit, "eval_examples": self.eval_examples, "format": 1}
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def prepare_data(self) -> None:
        if self.train is not None:
            return
        if self.tokenizer is None:
            raise RuntimeError("the mixture needs the pre-training run's tokenizer (tokenizer_json)")
        self.train = []
        for task in self.tasks:
            examples = task.examples(task.train_split)
            if not examples:
                raise DataConfigError(f"task {task.name} has no {task.train_split} examples")
            self.train.append(encode(self.tokenizer, examples, self.seq_len, task.name))
            for name, split in task.eval_sets.items():
                kept = task.examples(split)[: self.eval_examples]
                if not kept:
                    raise DataConfigError(f"task {task.name} has no {split} examples to evaluate on")
                self.eval_sets[name] = (task, kept, encode(self.tokenizer, kept, self.seq_len, task.name))
        self.rates = mixing_rates([len(e) for e in self.train], self.mixing_limit)
        log.info("fine-tuning mixture: %s", ", ".join(
            f"{t.name} {len(e):,} examples (rate {r:.3f})" for t, e, r in zip(self.tasks, self.train, self.rates)))

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()

    def check_budget(self, samples: int) -> None:
        """Examples are drawn with replacement: any budget is met."""

    def tokenizer_json(self) -> str:
        return self.tokenizer.to_json()

    def train_dataloader(self) -> DataLoader:
        stream = MixtureStream(self.train, self.rates, self.seq_len, self.batch_size, self.seed, self.start_sample)
        return self._loader(stream, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        rank, world_size = rank_and_world_size()
        rows = EvalRows([encoded for _, _, encoded in self.eval_sets.values()], self.seq_len)
        return self._loader(RankShare(rows, self.seq_len, rank, world_size), batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def _loader(self, dataset: Dataset, batch_size: int | None) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())
