"""The `data` group of a text corpus as one typed config: conf/data/*.yaml's keys are these fields, and
ffnlab.data.TextDataModule takes them (as keyword arguments, the way Hydra instantiates it, or as one TextDataConfig).
The checks a value can fail on its own run when the config is made, before any file is read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ffnlab.config.errors import DataConfigError
from ffnlab.data.corpus import SEPARATORS

TOKENIZERS = ("bpe", "char", "pretrained")
MIN_BPE_VOCAB = 257  # the 256 byte tokens + at least one merge


@dataclass
class TextDataConfig:
    name: str
    cache_dir: str
    # the tokenizer: learned from the train split (bpe, char) or read (pretrained: tokenizer_path)
    tokenizer: str = "bpe"
    vocab_size: int = 1024
    tokenizer_path: str | None = None
    tokenizer_sample_chars: int | None = None
    # batches
    seq_len: int = 128
    batch_size: int = 32
    eval_batch_size: int | None = None
    global_batch_size: int | None = None  # resolved into batch_size and accumulation by ffnlab.distributed.budget
    seed: int = 0
    num_workers: int = 0
    sampling: str | None = None  # random (default) | no_repeat
    max_epochs: int | None = None
    fit_val_windows: int | None = None
    # the source: exactly one of files (+ split_fractions), train/val/test_files, hub_path
    files: Sequence[str] | str | None = None
    split_fractions: Sequence[float] | None = None
    train_files: Sequence[str] | str | None = None
    val_files: Sequence[str] | str | None = None
    test_files: Sequence[str] | str | None = None
    hub_path: str | None = None
    hub_name: str | None = None
    revision: str | None = None
    hub_eval_files: Sequence[str] | None = None
    text_column: str | None = None
    separator: str | None = None  # eod | newline; null: eod for rows (not char), else newline
    eval_documents: int | None = None
    max_train_tokens: int | None = None
    # the token store
    num_proc: int = 1
    shard_tokens: int | None = None
    verify_cache: bool = False

    def __post_init__(self):
        if self.tokenizer not in TOKENIZERS:
            raise DataConfigError(f"unknown tokenizer {self.tokenizer!r}; accepted: {', '.join(TOKENIZERS)}")
        if self.tokenizer == "bpe" and self.vocab_size < MIN_BPE_VOCAB:
            raise DataConfigError(
                f"vocab_size={self.vocab_size} is too small for byte-level BPE: it needs at least {MIN_BPE_VOCAB} "
                "(256 byte tokens + 1 merge); use tokenizer=char for a character vocabulary"
            )
        if self.tokenizer == "pretrained" and not self.tokenizer_path:
            raise DataConfigError("tokenizer=pretrained needs data.tokenizer_path: a tokenizer.json path or hub name")
        if self.seq_len < 1:
            raise DataConfigError(f"seq_len must be positive, got {self.seq_len}")
        if self.separator is not None and self.separator not in SEPARATORS:
            raise DataConfigError(f"data.separator={self.separator!r} is not accepted; use one of {SEPARATORS}")
        if int(self.num_proc) < 1:
            raise DataConfigError(f"data.num_proc={self.num_proc} must be at least 1")
