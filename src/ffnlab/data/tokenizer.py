"""Tokenizers: byte-level BPE or characters, trained on the train split, seen as plain lists of ids."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from ffnlab.config.errors import DataConfigError

CHAR_UNKNOWN = "[UNK]"  # id for characters of val/test never seen in train (the last id)


class TextTokenizer:
    """A `tokenizers.Tokenizer` seen as plain ids: encode(str) -> list[int], decode(list[int]) -> str."""

    def __init__(self, hf: Tokenizer):
        self.hf = hf

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text).ids

    def encode_array(self, text: str, dtype) -> np.ndarray:
        """The ids of `text` as an array. A character vocabulary is looked up in numpy (about 50x faster than
        the tokenizers pipeline, the same ids: one per Unicode code point, unknown ones as [UNK])."""
        table = self.char_table()
        if table is None:
            return np.asarray(self.hf.encode(text, add_special_tokens=False).ids, dtype=dtype)
        codes, ids, unknown = table
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        where = np.searchsorted(codes, points).clip(max=len(codes) - 1)
        return np.where(codes[where] == points, ids[where], unknown).astype(dtype)

    def char_table(self):
        if not hasattr(self, "_table"):
            self._table = None
            model = json.loads(self.hf.to_str())["model"]
            if model["type"] == "WordLevel" and model.get("unk_token") == CHAR_UNKNOWN:
                chars = {c: i for c, i in model["vocab"].items() if len(c) == 1}
                codes = np.array(sorted(ord(c) for c in chars), dtype=np.uint32)
                ids = np.array([chars[chr(c)] for c in codes], dtype=np.int64)
                self._table = (codes, ids, model["vocab"][CHAR_UNKNOWN])
        return self._table

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode([int(i) for i in ids])

    def to_json(self) -> str:
        return self.hf.to_str()


def load_tokenizer_from_json(tokenizer_json: str) -> TextTokenizer:
    return TextTokenizer(Tokenizer.from_str(tokenizer_json))


def train_tokenizer(kind: str, text: str | Iterable[str], vocab_size: int,
                    special_tokens: Sequence[str] = ()) -> TextTokenizer:
    """A tokenizer learned from `text` (the train split, or a bounded sample of it as pieces): byte-level BPE,
    or one id per character. Pieces cut as ffnlab.data.corpus cuts them give the vocabulary of the whole text."""
    pieces = encoding_chunks(text) if isinstance(text, str) else text
    if kind == "char":
        chars = sorted(set().union(*(set(piece) for piece in pieces)))
        vocab = {c: i for i, c in enumerate(chars)} | {CHAR_UNKNOWN: len(chars)}
        hf = Tokenizer(models.WordLevel(vocab, unk_token=CHAR_UNKNOWN))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every char, "\n" too
        hf.decoder = decoders.Fuse()  # join the chars back without spaces
        if special_tokens:
            hf.add_special_tokens(list(special_tokens))
        return TextTokenizer(hf)
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        special_tokens=list(special_tokens),
    )
    hf.train_from_iterator(pieces, trainer=trainer)
    return TextTokenizer(hf)


def load_pretrained_tokenizer(path_or_name: str) -> TextTokenizer:
    """A pretrained tokenizer: a `tokenizer.json` file, or a hub name (needs the hub once; reviewed, not run)."""
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return TextTokenizer(Tokenizer.from_file(str(path)))
    if path.suffix == ".json" or os.sep in str(path_or_name).lstrip("./"):
        raise DataConfigError(f"data.tokenizer_path: {path} is not a file (a tokenizer.json, or a hub name)")
    try:
        return TextTokenizer(Tokenizer.from_pretrained(path_or_name))
    except Exception as error:  # noqa: BLE001 - offline, unknown name: one line either way
        raise DataConfigError(f"data.tokenizer_path={path_or_name!r}: no such file, and the hub gave {error}") from None


# Right after a newline that sits between two non-space characters, GPT-2's pre-tokenizer pattern always
# ends a piece ("\n" is a piece of its own there), so pieces cut at such points encode to exactly the ids
# of the whole text. Cutting lets `encode_batch` use every core.
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")


def encoding_chunks(text: str, chunk_chars: int = 1 << 16) -> list[str]:
    """`text` cut into pieces of about `chunk_chars` whose ids, concatenated, are the ids of `text`."""
    chunks, start = [], 0
    while len(text) - start > chunk_chars:
        cut = _SAFE_CUT.search(text, start + chunk_chars)
        if cut is None:
            break
        chunks.append(text[start : cut.start()])
        start = cut.start()
    chunks.append(text[start:])
    return chunks


def encode_ids(tokenizer: TextTokenizer, text: str) -> np.ndarray:
    dtype = token_dtype(tokenizer.vocab_size)
    encodings = tokenizer.hf.encode_batch(encoding_chunks(text))
    return np.concatenate([np.asarray(e.ids, dtype=dtype) for e in encodings])


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 halves the cache for vocabularies that fit; larger ones (100k+ tokens) need uint32."""
    return np.dtype(np.uint16 if vocab_size <= 65535 else np.uint32)


def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that ignores context."""
    p = np.bincount(ids, minlength=vocab_size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())
