"""Corpora as streams of text pieces, read with bounded memory (issue 12); the token store tokenizes the pieces.

Two kinds of source, one shape out (`pieces(split)`: an iterator of str whose concatenation is the split's text):
  - local text files, read directly in 1 MiB blocks and decoded incrementally, so a bad byte is reported with its
    file and offset. A file is one document; the files of a split are joined with a newline where one is missing
    (as every earlier ffnlab version did, so the same files give the same ids and `data_hash`);
  - rows of a `text` column: local parquet / jsonl files or a Hugging Face Hub dataset, all through
    `datasets.load_dataset(..., streaming=True)`, so local files shaped like the hub's exercise the hub path.
    Rows are documents, joined by `separator`: "eod" (an end-of-document token, for BPE and pretrained tokenizers)
    or "newline" (the char-level convention, and WikiText, whose rows are lines).

Pieces are cut where GPT-2's pre-tokenizer always ends a piece (after a newline between two non-space characters),
so encoding pieces one by one gives exactly the ids of the whole text. A line longer than `MAX_PIECE_CHARS` has no
such point: it is cut before a space that follows a non-space character (a byte-level BPE piece starts there too)
or, failing that, at `MAX_PIECE_CHARS` exactly; only the last case can differ from encoding the line whole.
"""

from __future__ import annotations

import codecs
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ffnlab.config.errors import DataConfigError

EOD = "<|endoftext|>"  # the end-of-document token of row sources with separator=eod
PIECE_CHARS = 1 << 16  # pieces handed to the tokenizer are about this long
MAX_PIECE_CHARS = 1 << 20  # the stated cut for lines without a newline (a 20 MB single line, say)
READ_BYTES = 1 << 20
ROW_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
SEPARATORS = ("eod", "newline")

_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")
_SPACE_CUT = re.compile(r"(?<=\S)(?= \S)")


def check_file(path: str, key: str) -> str:
    """The absolute path of a data file that exists, is a file and is not empty; one clear line otherwise."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.isdir(path):
        raise DataConfigError(f"data.{key}: {path} is a directory; give the data files in it, e.g. {path}/*.txt")
    if not os.path.isfile(path):
        raise DataConfigError(f"data.{key}: data file not found: {path} (expected an existing file)")
    if os.path.getsize(path) == 0:
        raise DataConfigError(f"data.{key}: data file is empty: {path}")
    return path


def row_format(paths: Sequence[str]) -> str | None:
    """'parquet' / 'json' when every file is a row file, None when every file is text; mixed is an error."""
    kinds = {ROW_FORMATS.get(os.path.splitext(p)[1].lower()) for p in paths}
    if len(kinds) > 1:
        raise DataConfigError(f"a split mixes text and row files ({', '.join(paths)}); use one kind per split")
    return kinds.pop()


# ------------------------------------------------------------------------------------------------- pieces


def cut_pieces(buffer: str, final: bool) -> tuple[list[str], str]:
    """Whole pieces of `buffer` (see the module docstring) and the rest, kept for the next block."""
    pieces, start = [], 0
    while len(buffer) - start > PIECE_CHARS:
        cut = _SAFE_CUT.search(buffer, start + PIECE_CHARS, start + MAX_PIECE_CHARS)
        if cut is None:
            if len(buffer) - start <= MAX_PIECE_CHARS and not final:
                break  # a newline may still come in the next block
            window_end = start + MAX_PIECE_CHARS
            spaces = list(_SPACE_CUT.finditer(buffer, start + PIECE_CHARS, window_end))
            end = spaces[-1].start() if spaces else window_end
        else:
            end = cut.start()
        pieces.append(buffer[start:end])
        start = end
    rest = buffer[start:]
    if final and rest:
        pieces.append(rest)
        rest = ""
    return pieces, rest


def text_file_blocks(path: str) -> Iterator[str]:
    """The decoded text of one file, block by block; a bad byte is one line naming the file and its offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(READ_BYTES)
            pending = decoder.getstate()[0]  # the start of a character cut by the previous block
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                at = offset - len(pending) + error.start
                raise DataConfigError(
                    f"{path} is not UTF-8: invalid byte at byte {max(at, 0)}; data files must be UTF-8 text"
                ) from None
            offset += len(block)
            if text:
                yield text
            if not block:
                return


def text_files_stream(paths: Sequence[str]) -> Iterator[str]:
    """The files joined as one text: a newline between two files only where the first does not end with one."""
    last = None
    for path in paths:
        if last is not None and not last.endswith("\n"):
            yield "\n"
        for block in text_file_blocks(path):
            last = block
            yield block


def limit_chars(blocks: Iterator[str], start: int, stop: int | None) -> Iterator[str]:
    """Characters [start, stop) of a stream of blocks (a contiguous split of one corpus)."""
    position = 0
    for block in blocks:
        lo, hi = max(start - position, 0), len(block) if stop is None else min(stop - position, len(block))
        if lo < hi:
            yield block[lo:hi]
        position += len(block)
        if stop is not None and position >= stop:
            return


def to_pieces(blocks: Iterator[str]) -> Iterator[str]:
    rest = ""
    for block in blocks:
        pieces, rest = cut_pieces(rest + block, final=False)
        yield from pieces
    pieces, _ = cut_pieces(rest, final=True)
    yield from pieces


# ------------------------------------------------------------------------------------------------ sources


@dataclass
class RowSource:
    """A `text` column: local parquet/jsonl `files`, or a hub dataset (`hub_path`, `hub_name`, `revision`)."""

    split: str  # the dataset's split name (train / validation / test)
    files: list[str] | None = None
    hub_path: str | None = None
    hub_name: str | None = None
    revision: str | None = None
    text_column: str = "text"
    skip: int = 0  # documents to pass over first (the validation documents, when the test split follows them)
    take: int | None = None  # then at most this many documents (null: all)
    hub_files: list[str] | None = None  # hub data files to read (a held-out file for evaluation), null: the split's
    exclude_files: list[str] | None = None  # hub data files to leave out (the held-out file, from training)

    def label(self) -> str:
        if self.files:
            return ", ".join(self.files)
        return f"{self.hub_path}/{self.hub_name}" if self.hub_name else str(self.hub_path)

    def documents(self) -> Iterator[str]:
        import datasets  # ~1 s to import; only preparation needs it

        try:
            if self.files:
                stream = datasets.load_dataset(row_format(self.files), data_files={self.split: self.files},
                                               split=self.split, streaming=True)
            else:
                files = self.hub_files or self._hub_files_without_excluded()
                stream = datasets.load_dataset(self.hub_path, self.hub_name, revision=self.revision,
                                               split=self.split, streaming=True,
                                               **({"data_files": {self.split: files}} if files else {}))
            stop = None if self.take is None else self.skip + self.take
            for row in itertools.islice(stream, self.skip, stop):
                if self.text_column not in row:
                    raise DataConfigError(f"{self.label()} has no {self.text_column!r} column; it has {sorted(row)}")
                yield row[self.text_column] or ""
        except ConnectionError as error:  # offline (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) or no network
            raise DataConfigError(
                f"Hub dataset {self.label()} cannot be reached (offline, or no network) and is not prepared in the "
                "token cache; prepare it once where the hub is reachable (scripts/prepare_data.py), or train on "
                "local files: data=text_files, data=tinyshakespeare"
            ) from error
        except ValueError as error:
            if "split" in str(error).lower():
                raise DataConfigError(f"{self.label()}: no split {self.split!r} ({error})") from None
            raise


    def _hub_files_without_excluded(self) -> list[str] | None:
        """The config's data files minus `exclude_files` (listed from the hub; reviewed, not run: no hub here)."""
        if not self.exclude_files:
            return None
        from huggingface_hub import HfApi

        folder = os.path.dirname(self.exclude_files[0])
        listed = HfApi().list_repo_files(self.hub_path, repo_type="dataset", revision=self.revision)
        return sorted(f for f in listed if f.startswith(folder + "/") and f.endswith(".parquet")
                      and f not in self.exclude_files)


# ------------------------------------------------------------------------------------------ hub provenance

COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


def resolve_hub_revision(hub_path: str, revision: str | None) -> str | None:
    """The commit sha that `revision` (null: the default branch) of a hub dataset names now: itself when it is a
    sha; the hub's answer when it is reachable (reviewed, not run: no hub here); else the snapshot a local HF hub
    cache holds under that ref (huggingface_hub's cache layout, read with its own scanner); None when none knows."""
    if revision and COMMIT_SHA.fullmatch(revision):
        return revision
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            return HfApi().dataset_info(hub_path, revision=revision).sha
        except (RepositoryNotFoundError, RevisionNotFoundError) as error:  # the hub answered: a cache cannot overrule
            what = (f"revision {revision or 'main'!r}" if isinstance(error, RevisionNotFoundError) else
                    "such dataset (or it is gated or private: log in with `hf auth login`)")
            raise DataConfigError(f"Hub dataset {hub_path}: the hub has no {what}; check data.hub_path and "
                                  "data.revision") from None
        except Exception:  # noqa: BLE001 - unreachable or offline: the local cache may still say
            pass
    return cached_hub_revision(hub_path, revision)


def cached_hub_revision(hub_path: str, revision: str | None) -> str | None:
    """The sha of the snapshot of dataset `hub_path` whose ref is `revision` (null: main) in the local HF hub cache,
    else of the one snapshot whose sha starts with it (git's order: a ref wins over a short sha); None when the
    cache holds none."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        repos = scan_cache_dir(constants.HF_HUB_CACHE).repos
    except (CacheNotFound, OSError):
        return None
    snapshots = [snapshot for repo in repos if repo.repo_id == hub_path and repo.repo_type == "dataset"
                 for snapshot in repo.revisions]
    by_ref = [s.commit_hash for s in snapshots if (revision or "main") in s.refs]
    by_prefix = [s.commit_hash for s in snapshots if revision and s.commit_hash.startswith(revision)]
    if by_ref:
        return by_ref[0]
    return by_prefix[0] if len(by_prefix) == 1 else None  # two snapshots that share the short sha: ambiguous


def row_pieces(documents: Iterator[str], separator: str) -> Iterator[str | None]:
    """Pieces of every document; None marks the end of a document when documents end with the EOD token."""
    previous_newline = True
    first = True
    for document in documents:
        if separator == "newline":  # as text files are joined: a newline only where the previous row lacks one
            if not first and not previous_newline:
                yield "\n"
            previous_newline = document.endswith("\n")
            yield from to_pieces(iter([document]))
        else:
            yield from to_pieces(iter([document]))
            yield None
        first = False
