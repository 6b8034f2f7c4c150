"""The token store (issue 12): hub-shaped parquet/jsonl rows and text files -> checked shards -> training; damaged
entries rebuilt, read-only caches used as they are, clear file errors; byte-identical shards for any num_proc, an
interrupted preparation resumed, and bounded memory (those three are slow: real worker processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ffnlab.data import store
from ffnlab.data.module import TextDataModule
from ffnlab.config.errors import DataConfigError

REPO = Path(__file__).resolve().parents[1]
ROWS = REPO / "tests" / "assets" / "rows"
CORPUS = REPO / "data" / "tinyshakespeare" / "input.txt"


def rows_datamodule(cache: Path, **overrides) -> TextDataModule:
    args = dict(name="rows", train_files=[str(ROWS / "train.parquet")], val_files=[str(ROWS / "val.jsonl")],
                test_files=[str(ROWS / "test.jsonl")], tokenizer="bpe", vocab_size=400, seq_len=32, batch_size=4,
                cache_dir=str(cache))
    datamodule = TextDataModule(**(args | overrides))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def text_datamodule(cache: Path, path: Path, **overrides) -> TextDataModule:
    args = dict(name="text", files=[str(path)], split_fractions=[0.9, 0.05, 0.05], tokenizer="char", seq_len=32,
                batch_size=4, cache_dir=str(cache))
    datamodule = TextDataModule(**(args | overrides))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


@pytest.fixture
def excerpt(tmp_path) -> Path:
    path = tmp_path / "excerpt.txt"
    path.write_text(CORPUS.read_text(encoding="utf-8")[:50_000], encoding="utf-8")
    return path


def shard_bytes(entry: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(entry.glob("*.bin"))}


# ------------------------------------------------------------------------------------------ rows and shards


def test_hub_shaped_rows_are_documents_ended_by_an_eod_token(tmp_path):
    datamodule = rows_datamodule(tmp_path / "cache", shard_tokens=20_000)
    entry = datamodule.cache_path
    index = json.loads((entry / "index.json").read_text())
    assert index["separator"] == "eod" and len(index["splits"]["train"]) > 1  # several shards of 20,000 ids
    eod = datamodule.tokenizer.hf.token_to_id("<|endoftext|>")
    val = np.asarray(datamodule._ids["val"])
    assert (val == eod).sum() == 100 and val[-1] == eod  # 100 documents in val.jsonl, each ended
    first_document = json.loads((ROWS / "val.jsonl").read_text().splitlines()[0])["text"]
    assert datamodule.tokenizer.decode(val[: list(val).index(eod)].tolist()) == first_document
    batch = next(iter(datamodule.train_dataloader()))  # windows across shard boundaries come from TokenShards
    assert batch[0].shape == (4, 32)


def test_the_parquet_config_prepares_and_trains_offline(tmp_path, monkeypatch):
    """scripts/prepare_data.py data=parquet_fixture, then training on it, with the hub unreachable."""
    from ffnlab.config.compose import compose_config
    from ffnlab.training.run import run

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cache = tmp_path / "cache"
    prepared = subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_data.py"), "data=parquet_fixture",
                               f"paths.cache_dir={cache}"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "FFNLAB_NO_PROGRESS": "1"})
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert "train 84,150" in prepared.stdout
    cfg = compose_config(["data=parquet_fixture", f"paths.cache_dir={cache}", f"paths.output_dir={tmp_path}/run",
                          "model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.seq_len=32",
                          "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.enable_progress_bar=false",
                          "optim.warmup_steps=1"])
    assert np.isfinite(run(cfg))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "finished" and record["setting"]["data.name"] == "parquet_fixture"


def test_a_same_size_change_with_the_old_mtime_is_new_data(tmp_path, excerpt):
    first = text_datamodule(tmp_path / "cache", excerpt)
    stat = excerpt.stat()
    text = excerpt.read_text(encoding="utf-8")
    excerpt.write_text(text.replace("First", "Frist", 1), encoding="utf-8")  # same length
    os.utime(excerpt, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert excerpt.stat().st_size == stat.st_size and excerpt.stat().st_mtime_ns == stat.st_mtime_ns
    second = text_datamodule(tmp_path / "cache", excerpt)
    assert second.data_hash != first.data_hash and second.cache_hit is False


def test_a_truncated_shard_is_detected_and_rebuilt(tmp_path, excerpt, caplog):
    first = text_datamodule(tmp_path / "cache", excerpt)
    expected = shard_bytes(first.cache_path)
    shard = first.cache_path / "train.00000.bin"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    again = text_datamodule(tmp_path / "cache", excerpt)
    assert again.cache_hit is False and "train.00000.bin" in caplog.text and "rebuilding" in caplog.text
    assert shard_bytes(again.cache_path) == expected


def test_a_flipped_byte_is_found_when_verifying(tmp_path, excerpt, caplog):
    first = text_datamodule(tmp_path / "cache", excerpt)
    shard = first.cache_path / "val.00000.bin"
    data = bytearray(shard.read_bytes())
    data[10] ^= 1
    shard.write_bytes(bytes(data))
    assert text_datamodule(tmp_path / "cache", excerpt).cache_hit is True  # sizes alone cannot see it
    assert text_datamodule(tmp_path / "cache", excerpt, verify_cache=True).cache_hit is False
    assert "does not match its checksum" in caplog.text


@pytest.mark.parametrize("damage", ["index", "odd size", "missing shard", "old layout"])
def test_damaged_entries_name_the_problem(tmp_path, excerpt, damage):
    entry = text_datamodule(tmp_path / "cache", excerpt).cache_path
    if damage == "index":
        (entry / "index.json").write_text("{not json")
    elif damage == "odd size":
        with open(entry / "test.00000.bin", "ab") as f:
            f.write(b"\0")
    elif damage == "missing shard":
        (entry / "test.00000.bin").unlink()
    else:
        (entry / "index.json").rename(entry / "meta.json")
    with pytest.raises(store.BadEntry) as bad:
        store.open_entry(entry)
    assert str(bad.value) and "\n" not in str(bad.value)


@pytest.fixture
def read_only(tmp_path):
    """read_only(dir) bind-mounts dir read-only onto a new path (root ignores file modes, not a read-only mount)."""
    mounts = []

    def mount(directory: Path) -> Path:
        target = tmp_path / f"ro{len(mounts)}"
        target.mkdir()
        done = subprocess.run(["mount", "--bind", "-o", "ro", str(directory), str(target)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"no read-only bind mount here: {done.stderr.decode().strip()}")
        mounts.append(target)
        return target

    yield mount
    for target in mounts:
        subprocess.run(["umount", "--lazy", str(target)], check=False)  # memmaps may still hold it open


def test_a_read_only_cache_with_a_good_entry_is_used_and_a_damaged_one_is_one_line(tmp_path, excerpt, read_only):
    cache = tmp_path / "cache"
    first = text_datamodule(cache, excerpt)
    ro_cache = read_only(cache)
    again = text_datamodule(ro_cache, excerpt)
    assert again.cache_hit is True and np.array_equal(np.asarray(again._ids["val"]), np.asarray(first._ids["val"]))
    batch = next(iter(again.train_dataloader()))
    assert batch[0].shape == (4, 32)
    shard = first.cache_path / "val.00000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])  # through the writable path; the mount shows it
    with pytest.raises(DataConfigError) as error:
        text_datamodule(ro_cache, excerpt)
    message = str(error.value)
    assert "val.00000.bin" in message and "read-only" in message and "writable" in message and "\n" not in message


# ------------------------------------------------------------------------------------------------ file errors


def test_file_errors_are_one_line_each(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "empty.txt").write_text("")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"a" * 5000 + "café".encode("latin-1") + b"b" * 100)
    good = tmp_path / "good.txt"
    good.write_text("x" * 10_000)
    cases = {tmp_path / "dir": "is a directory", tmp_path / "empty.txt": "is empty"}
    for path, words in cases.items():
        with pytest.raises(DataConfigError, match=words):
            text_datamodule(tmp_path / "cache", path)
    with pytest.raises(DataConfigError) as error:
        TextDataModule(name="t", train_files=[str(good)], val_files=[str(bad)], test_files=[str(good)],
                       tokenizer="char", cache_dir=str(tmp_path / "cache")).prepare_data()
    message = str(error.value)
    assert message == f"{bad} is not UTF-8: invalid byte at byte 5003; data files must be UTF-8 text"


# ------------------------------------------------------------------------------------- worker processes (slow)


@pytest.mark.slow
def test_shards_are_byte_identical_for_any_num_proc(tmp_path):
    one = rows_datamodule(tmp_path / "one", shard_tokens=20_000, num_proc=1)
    two = rows_datamodule(tmp_path / "two", shard_tokens=20_000, num_proc=2)
    assert one.cache_path.name == two.cache_path.name  # num_proc is not part of the data's identity
    assert len(shard_bytes(one.cache_path)) > 3 and shard_bytes(one.cache_path) == shard_bytes(two.cache_path)


def write_splits(directory: Path) -> dict[str, Path]:
    """The first 1 M characters of the corpus as train/val/test text files (900 k / 50 k / 50 k)."""
    text = CORPUS.read_text(encoding="utf-8")
    files = {}
    for split, (lo, hi) in {"train": (0, 900_000), "val": (900_000, 950_000), "test": (950_000, 1_000_000)}.items():
        files[split] = directory / f"{split}.txt"
        files[split].write_text(text[lo:hi], encoding="utf-8")
    return files


def prepare_cli(cache: Path, *overrides: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "prepare_data.py"), "data=text_files", "data.tokenizer=char",
         f"paths.cache_dir={cache}", *overrides], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "FFNLAB_NO_PROGRESS": "1", **(env or {})})


@pytest.mark.slow
def test_a_killed_preparation_resumes_to_identical_shards(tmp_path):
    files = write_splits(tmp_path)
    overrides = [f"data.{split}_files=[{path}]" for split, path in files.items()] + ["+data.shard_tokens=100000"]
    whole = prepare_cli(tmp_path / "whole", *overrides)
    assert whole.wait(timeout=300) == 0, whole.stdout.read()
    killed = prepare_cli(tmp_path / "resumed", *overrides, env={store.TEST_KILL_AFTER_SHARDS: "3"})
    killed.wait(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    (entry,) = (tmp_path / "resumed" / "tokens").glob("[0-9a-f]*")
    assert not (entry / "index.json").exists() and 3 <= len(list(entry.glob("train.0*.bin"))) < 9
    resumed = prepare_cli(tmp_path / "resumed", *overrides)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0 and "resuming the train split" in output, output[-2000:]
    (whole_entry,) = (tmp_path / "whole" / "tokens").glob("[0-9a-f]*")
    assert shard_bytes(entry) == shard_bytes(whole_entry) and len(shard_bytes(entry)) == 11
    assert sorted(p.name for p in entry.iterdir() if not p.name.endswith(".bin")) == ["index.json", "tokenizer.json"]


def process_tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, grew = {pid}, True
    while grew:
        children = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    total = 0
    for member in tree:
        try:
            status = Path(f"/proc/{member}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024
        except (OSError, StopIteration, ValueError):
            continue
    return total


@pytest.mark.slow
def test_preparing_200_mb_with_a_20_mb_line_stays_under_1_5_gb(tmp_path):
    """Peak RSS summed over the preparing process and its 2 workers, sampled every 50 ms. Characters, the embedded
    corpus's tokenizer: BPE at about 1 M tokens/s per process would take minutes (scripts/benchmark_data.py
    measures BPE's peak too)."""
    rng = np.random.default_rng(0)
    words = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=n)) for n in rng.integers(2, 9, 500)])
    train = tmp_path / "train.txt"
    lines = "\n".join(" ".join(rng.choice(words, 12)) for _ in range(13_000)) + "\n"  # ~1 MB of lines
    line_piece = " ".join(rng.choice(words, 35_000))
    with open(train, "w", encoding="utf-8") as f:
        f.write(lines * 180)  # ~180 MB of lines (repeated: the content does not matter to the memory bound)
        f.write(" ".join([line_piece] * 100) + "\n")  # one line of ~20 MB
    small = tmp_path / "small.txt"
    small.write_text("a few words of held-out text\n" * 2000)
    assert train.stat().st_size > 190e6
    job = prepare_cli(tmp_path / "cache", f"data.train_files=[{train}]", f"data.val_files=[{small}]",
                      f"data.test_files=[{small}]", "data.tokenizer=char", "data.num_proc=2")
    peak = 0
    while job.poll() is None:
        peak = max(peak, process_tree_rss(job.pid))
        time.sleep(0.05)
    output = job.stdout.read()
    assert job.returncode == 0, output[-3000:]
    assert peak < 1.5e9, f"peak RSS {peak / 1e9:.2f} GB"
    print(f"peak RSS over the process tree: {peak / 1e6:.0f} MB")


def test_a_pretrained_tokenizer_json_is_used_as_is_and_is_part_of_the_identity(tmp_path, excerpt):
    from ffnlab.data.tokenizer import train_tokenizer

    trained = train_tokenizer("bpe", excerpt.read_text(encoding="utf-8"), 300)
    path = tmp_path / "tokenizer.json"
    path.write_text(trained.to_json())
    datamodule = text_datamodule(tmp_path / "cache", excerpt, tokenizer="pretrained", tokenizer_path=str(path))
    val_text = excerpt.read_text(encoding="utf-8")[45_000:47_500]
    assert datamodule.vocab_size == 300
    assert np.array_equal(np.asarray(datamodule._ids["val"]), trained.encode_array(val_text, np.uint16))
    other = train_tokenizer("bpe", excerpt.read_text(encoding="utf-8"), 280)
    path.write_text(other.to_json())
    assert text_datamodule(tmp_path / "cache", excerpt, tokenizer="pretrained",
                           tokenizer_path=str(path)).data_hash != datamodule.data_hash
    with pytest.raises(DataConfigError, match="tokenizer_path"):
        TextDataModule(name="t", files=[str(excerpt)], split_fractions=[0.9, 0.05, 0.05], tokenizer="pretrained",
                       cache_dir=str(tmp_path / "cache"))


# ------------------------------------------------------------------------------- C4-shaped corpora (issue 13)


def test_validation_and_test_are_carved_from_the_validation_files_and_training_is_capped(tmp_path):
    """C4 has train and validation only: val = its first N documents, test = the next N."""
    datamodule = rows_datamodule(tmp_path / "cache", test_files=None, eval_documents=40, max_train_tokens=30_000)
    eod = datamodule.tokenizer.hf.token_to_id("<|endoftext|>")
    documents = [json.loads(line)["text"] for line in (ROWS / "val.jsonl").read_text().splitlines()]
    for split, expected in (("val", documents[:40]), ("test", documents[40:80])):
        ids = np.asarray(datamodule._ids[split])
        pieces = np.split(ids, np.flatnonzero(ids == eod) + 1)[:-1]
        assert [datamodule.tokenizer.decode(p[:-1].tolist()) for p in pieces] == expected
    assert datamodule.tokens_per_split["train"] == 30_000


def test_no_window_repeats_and_two_ranks_read_disjoint_equal_shares(tmp_path):
    from ffnlab.data.windows import RandomWindows

    ids = np.arange(40_001, dtype=np.uint32)  # 1,250 windows of 32
    single = RandomWindows(ids, 32, 10, seed=3, rank=0, world_size=1, sampling="no_repeat")
    stream = iter(single)
    starts = np.concatenate([next(stream)[0][:, 0].numpy() for _ in range(125)])  # exactly one pass
    assert sorted(starts.tolist()) == list(range(0, 40_000, 32))
    ranks = [iter(RandomWindows(ids, 32, 5, seed=3, rank=r, world_size=2, sampling="no_repeat")) for r in (0, 1)]
    shares = [np.concatenate([next(r)[0][:, 0].numpy() for _ in range(125)]) for r in ranks]
    assert len(shares[0]) == len(shares[1]) and not set(shares[0]) & set(shares[1])
    assert sorted(np.concatenate(shares).tolist()) == sorted(starts.tolist())  # together: the one-process stream


def test_a_budget_beyond_the_windows_of_the_corpus_is_one_line(tmp_path):
    datamodule = rows_datamodule(tmp_path / "cache", sampling="no_repeat")
    windows = datamodule.train_windows()
    datamodule.check_budget(windows)
    with pytest.raises(DataConfigError, match="data.max_epochs") as error:
        datamodule.check_budget(windows + 1)
    assert "\n" not in str(error.value)


def test_a_run_trains_from_a_read_only_cache(compose_tiny, tmp_path, read_only):
    from ffnlab.training.run import run

    cache = tmp_path / "cache"
    first = run(compose_tiny(tmp_path / "first", f"paths.cache_dir={cache}"))
    again = run(compose_tiny(tmp_path / "again", f"paths.cache_dir={read_only(cache)}"))
    assert again == first  # same ids, same run


@pytest.mark.slow
def test_four_processes_preparing_one_new_entry_build_it_once(tmp_path):
    """Started together on the same new entry: exactly one tokenizes, the others wait and reuse it; identical ids,
    and nothing but the store's files left in the entry."""
    files = write_splits(tmp_path)
    # BPE-1024 takes seconds to learn: long enough for all four to find the entry missing
    overrides = [f"data.{split}_files=[{path}]" for split, path in files.items()] + ["data.tokenizer=bpe"]
    jobs = [prepare_cli(tmp_path / "cache", *overrides) for _ in range(4)]
    outputs = [job.communicate(timeout=300)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * 4, outputs
    assert sum("tokenized text_files" in out for out in outputs) == 1
    assert sum("reusing cached tokens" in out for out in outputs) == 3
    (entry,) = (tmp_path / "cache" / "tokens").glob("[0-9a-f]*")
    assert sorted(p.name for p in entry.iterdir()) == ["index.json", "test.00000.bin", "tokenizer.json",
                                                        "train.00000.bin", "val.00000.bin"]
