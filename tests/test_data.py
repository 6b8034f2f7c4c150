"""ffnlab.data.module: splits, tokenizers, the token cache, training/eval windows and the errors a user can hit."""

import logging
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ffnlab.data import module as data
from ffnlab.data.module import TextDataModule, split_text
from ffnlab.config.errors import DataConfigError
from ffnlab.data.tokenizer import encode_ids, encoding_chunks, load_tokenizer_from_json, token_dtype, train_tokenizer
from ffnlab.data.windows import IGNORE_INDEX, EvalWindows, RandomWindows

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "tinyshakespeare" / "input.txt"
WIKITEXT = REPO / "tests" / "assets" / "wikitext2_excerpt"
EXCERPT_CHARS = 60_000


@pytest.fixture
def excerpt(tmp_path) -> Path:
    """The first 60 KB of the embedded corpus: enough for a 400-token BPE, fast to tokenize."""
    path = tmp_path / "excerpt.txt"
    path.write_text(CORPUS.read_text(encoding="utf-8")[:EXCERPT_CHARS], encoding="utf-8")
    return path


def make_datamodule(tmp_path, files, **overrides) -> TextDataModule:
    args = dict(
        name="excerpt", files=[str(files)], split_fractions=[0.9, 0.05, 0.05], tokenizer="bpe", vocab_size=400,
        seq_len=32, batch_size=4, eval_batch_size=8, seed=0, cache_dir=str(tmp_path / "cache"),
    )
    datamodule = TextDataModule(**(args | overrides))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def decoded_split(datamodule, split) -> str:
    return datamodule.tokenizer.decode(datamodule._ids[split].tolist())


# ------------------------------------------------------------------------------------ splits and tokenizers


def test_split_is_contiguous_90_5_5_by_characters():
    text = "".join(chr(ord("a") + i % 26) for i in range(1001))
    splits = split_text(text, [0.9, 0.05, 0.05])
    assert splits["train"] + splits["val"] + splits["test"] == text
    assert (len(splits["train"]), len(splits["val"])) == (int(1001 * 0.9), int(1001 * 0.95) - int(1001 * 0.9))
    assert splits["train"] == text[:900] and splits["test"] == text[950:]


def test_char_datamodule_splits_decode_to_the_corpus_pieces(tmp_path, excerpt):
    dm = make_datamodule(tmp_path, excerpt, tokenizer="char")
    text = excerpt.read_text(encoding="utf-8")
    train_end, val_end = int(len(text) * 0.9), int(len(text) * 0.95)
    assert decoded_split(dm, "train") == text[:train_end]
    assert decoded_split(dm, "val") == text[train_end:val_end]
    assert decoded_split(dm, "test") == text[val_end:]
    assert dm.tokens_per_split == {"train": train_end, "val": val_end - train_end, "test": len(text) - val_end}


def test_bpe_round_trip_vocab_size_and_json(tmp_path, excerpt):
    dm = make_datamodule(tmp_path, excerpt, vocab_size=400)
    assert dm.vocab_size == dm.tokenizer.vocab_size == 400
    train_text = excerpt.read_text(encoding="utf-8")[: int(EXCERPT_CHARS * 0.9)]
    assert dm.tokenizer.decode(dm.tokenizer.encode(train_text)) == train_text
    assert decoded_split(dm, "train") == train_text
    assert len(dm._ids["train"]) < len(train_text) * 0.6  # merges happened: well under one token per char
    reloaded = load_tokenizer_from_json(dm.tokenizer_json())
    sample = "Wherefore art thou, Romeo? ✓ unseen bytes too\n"
    assert reloaded.encode(sample) == dm.tokenizer.encode(sample)
    assert reloaded.decode(reloaded.encode(sample)) == sample


def test_char_tokenizer_round_trip_and_unknown_id():
    text = "To be, or not to be:\n\tthat is the question.\n"
    tok = train_tokenizer("char", text, vocab_size=0)
    assert tok.vocab_size == len(set(text)) + 1
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("b") == [sorted(set(text)).index("b")]
    assert tok.encode("€") == [tok.vocab_size - 1]  # characters absent from train share the last id


def test_chunked_encoding_gives_the_ids_of_the_whole_text():
    text = CORPUS.read_text(encoding="utf-8")[:20_000] + "a \n b\n\n c  \n\n\nd\n"
    tok = train_tokenizer("bpe", text, vocab_size=300)
    chunks = encoding_chunks(text, chunk_chars=500)
    assert len(chunks) > 10 and "".join(chunks) == text
    assert encode_ids(tok, text).tolist() == tok.encode(text)


def test_token_dtype_fits_the_vocabulary():
    assert token_dtype(66) == np.uint16
    assert token_dtype(65535) == np.uint16
    assert token_dtype(65536) == np.uint32
    assert token_dtype(128_256) == np.uint32


def test_unigram_entropy_is_the_validation_token_entropy(tmp_path, excerpt):
    dm = make_datamodule(tmp_path, excerpt)
    counts = np.bincount(dm._ids["val"])
    p = counts[counts > 0] / counts.sum()
    assert dm.unigram_entropy == pytest.approx(-(p * np.log(p)).sum())
    assert 0 < dm.unigram_entropy < math.log(dm.vocab_size)


# ------------------------------------------------------------------------------------------------ cache


def test_same_text_and_settings_reuse_the_cache(tmp_path, excerpt, monkeypatch, caplog):
    first = make_datamodule(tmp_path, excerpt)
    assert first.cache_hit is False

    def fail(*args, **kwargs):
        raise AssertionError("retokenized although the cache holds this text and these settings")

    monkeypatch.setattr(data, "train_tokenizer", fail)
    monkeypatch.setattr(data.store, "prepare_split", fail)
    with caplog.at_level(logging.INFO, logger="ffnlab.data.module"):
        second = make_datamodule(tmp_path, excerpt)
    assert second.cache_hit is True and "reusing cached tokens" in caplog.text
    assert second.data_hash == first.data_hash
    assert np.array_equal(second._ids["train"], first._ids["train"])
    first.prepare_data()  # Lightning's own call after ffnlab.training.run's: no work
    first.setup("test")
    cache_files = sorted(p.name for p in first.cache_path.iterdir())
    # one shard per split, the index, the tokenizer: no temp, state or tail files left
    assert cache_files == ["index.json", "test.00000.bin", "tokenizer.json", "train.00000.bin", "val.00000.bin"]


def test_changed_text_or_vocab_makes_a_new_cache_entry(tmp_path, excerpt):
    base = make_datamodule(tmp_path, excerpt)
    bigger_vocab = make_datamodule(tmp_path, excerpt, vocab_size=450)
    char = make_datamodule(tmp_path, excerpt, tokenizer="char")
    excerpt.write_text(excerpt.read_text(encoding="utf-8") + "One more line.\n", encoding="utf-8")
    changed_text = make_datamodule(tmp_path, excerpt)
    runs = [base, bigger_vocab, char, changed_text]
    assert [dm.cache_hit for dm in runs] == [False, False, False, False]
    assert len({dm.data_hash for dm in runs}) == 4
    assert len(list((tmp_path / "cache" / "tokens").glob("[0-9a-f]*"))) == 4  # and .locks/
    assert bigger_vocab.vocab_size == 450


# ------------------------------------------------------------------------------------------ training windows


def first_batches(datamodule, n):
    batches = iter(datamodule.train_dataloader())
    return [next(batches) for _ in range(n)]


def test_training_batches_depend_on_the_seed_alone(tmp_path, excerpt):
    a = first_batches(make_datamodule(tmp_path, excerpt, seed=1), 5)
    b = first_batches(make_datamodule(tmp_path, excerpt, seed=1), 5)
    c = first_batches(make_datamodule(tmp_path, excerpt, seed=2), 5)
    x, y = a[0]
    assert x.shape == y.shape == (4, 32) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one token
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not any(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def window_starts(batches) -> list[list[int]]:
    """With ids = arange, a window's first input id is where it starts."""
    return [x[:, 0].tolist() for x, _ in batches]


def take(dataset, n):
    return window_starts([batch for batch, _ in zip(dataset, range(n))])


def test_ranks_see_disjoint_samples_that_together_are_the_single_process_stream():
    ids = np.arange(5000, dtype=np.uint16)
    single = take(RandomWindows(ids, seq_len=16, batch_size=8, seed=3), 300)  # 2400 samples: spans 3 blocks
    ranks = [take(RandomWindows(ids, 16, 4, 3, rank=r, world_size=2), 300) for r in range(2)]
    for step, (rank0, rank1) in enumerate(zip(*ranks)):
        assert rank0 == single[step][0::2] and rank1 == single[step][1::2]
    resumed = take(RandomWindows(ids, 16, 8, 3, start_sample=8 * 7), 1)
    assert resumed[0] == single[7]


def test_worker_processes_do_not_change_the_stream(tmp_path):
    path = tmp_path / "ids.bin"
    np.arange(3000, dtype=np.uint16).tofile(path)
    ids = np.memmap(path, dtype=np.uint16, mode="r")
    dataset = RandomWindows(ids, seq_len=8, batch_size=4, seed=0)
    assert len(pickle.dumps(dataset)) < 2000  # spawned workers reopen the memmap instead of copying it
    in_process = take(dataset, 6)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    assert window_starts([batch for batch, _ in zip(loader, range(6))]) == in_process


# --------------------------------------------------------------------------------------------- evaluation


def test_eval_windows_score_every_token_once_in_order():
    n, seq_len = 103, 10
    ids = np.arange(1, n + 1, dtype=np.uint16)
    windows = EvalWindows(ids, seq_len)
    assert len(windows) == math.ceil((n - 1) / seq_len)
    xs, ys = zip(*(windows[i] for i in range(len(windows))))
    labels = torch.cat(ys)
    assert torch.equal(labels[labels != -100], torch.arange(2, n + 1))  # every token but the first, once, in order
    assert torch.equal(torch.cat(xs)[: n - 1], torch.arange(1, n))
    assert xs[-1][-1] == 0 and ys[-1][-1] == -100  # the last window is padded, not dropped


def test_val_and_test_loaders_cover_their_splits(tmp_path, excerpt):
    dm = make_datamodule(tmp_path, excerpt, seq_len=40)
    for split, loader in [("val", dm.val_dataloader()), ("test", dm.test_dataloader())]:
        scored = sum(int((y != -100).sum()) for _, y in loader)
        assert scored == dm.tokens_per_split[split] - 1


def rank_loaders(dm, monkeypatch, world_size: int, split: str = "val", first_windows: int | None = None) -> list:
    """Each rank's evaluation loader, as the datamodule builds it on that rank of `world_size`."""
    loaders = []
    for rank in range(world_size):
        monkeypatch.setattr(data, "rank_and_world_size", lambda rank=rank: (rank, world_size))
        loaders.append(dm._eval_loader(split, first_windows))
    return loaders


@pytest.mark.parametrize(("world_size", "eval_batch_size"), [(2, 13), (3, 17)])
def test_ranks_get_equal_eval_shares_that_together_score_every_window_once(
    tmp_path, excerpt, monkeypatch, world_size, eval_batch_size
):
    """Issue 22.5: under FSDP every forward is a collective, so a rank with a batch fewer hangs the others. Ranks get
    the same number of batches; the short ones are padded with windows that score no token."""
    dm = make_datamodule(tmp_path, excerpt, eval_batch_size=eval_batch_size)
    windows = EvalWindows(dm._ids["val"], dm.seq_len)
    n = len(windows)
    unpadded_batches = [math.ceil(len(range(rank, n, world_size)) / eval_batch_size) for rank in range(world_size)]
    assert n % (world_size * eval_batch_size) != 0 and len(set(unpadded_batches)) > 1  # windows r, r+W, ... alone
    loaders = rank_loaders(dm, monkeypatch, world_size)
    assert len({len(loader) for loader in loaders}) == 1  # the same number of batches on every rank
    shares = [list(loader.dataset) for loader in loaders]
    assert len({len(share) for share in shares}) == 1
    interleaved = [share[i] for i in range(len(shares[0])) for share in shares]  # rank r's i-th is window r + i*W
    real = [(x, y) for x, y in interleaved if (y != IGNORE_INDEX).any()]
    padding = [(x, y) for x, y in interleaved if not (y != IGNORE_INDEX).any()]
    assert len(real) == len(windows) and len(padding) == len(interleaved) - len(windows) > 0
    for (x, y), (x_ref, y_ref) in zip(real, windows):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    assert all(x.shape == y.shape == (dm.seq_len,) and not x.any() for x, y in padding)


def test_fewer_fit_windows_than_ranks_give_every_rank_one(tmp_path, excerpt, monkeypatch):
    """data.fit_val_windows=1 on 2 ranks: rank 1 had no window at all; it gets one that scores nothing."""
    dm = make_datamodule(tmp_path, excerpt)
    first, padding = (loader.dataset for loader in rank_loaders(dm, monkeypatch, 2, first_windows=1))
    assert len(first) == len(padding) == 1
    assert torch.equal(first[0][1], EvalWindows(dm._ids["val"], dm.seq_len)[0][1])
    assert (padding[0][1] == IGNORE_INDEX).all()


def test_a_padding_window_adds_nothing_to_the_loss_sums():
    """All-ignore targets: summed cross-entropy 0 (a mean would be NaN) and 0 scored tokens, whole or chunked."""
    from ffnlab.model.loss import loss_sum

    head = torch.nn.Linear(8, 11)
    hidden, targets = torch.randn(2, 5, 8), torch.full((2, 5), IGNORE_INDEX)
    for chunk_tokens in (None, 3):
        total, count = loss_sum(head, hidden, targets, chunk_tokens)
        assert total.item() == 0.0 and count.item() == 0


# -------------------------------------------------------------------------------------------------- errors


def test_missing_and_empty_files_are_named(tmp_path):
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(DataConfigError, match="not found.*nowhere.txt"):
        make_datamodule(tmp_path, missing)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataConfigError, match="empty.*empty.txt"):
        make_datamodule(tmp_path, empty)
    blank = tmp_path / "blank.txt"
    blank.write_text("some text\n" + "\n" * 30)
    with pytest.raises(DataConfigError, match="val split.*empty"):
        make_datamodule(tmp_path, blank, split_fractions=[0.4, 0.3, 0.3])


def test_seq_len_longer_than_the_validation_split(tmp_path, excerpt):
    with pytest.raises(DataConfigError) as error:
        make_datamodule(tmp_path, excerpt, tokenizer="char", seq_len=4000)
    message = str(error.value)
    assert "seq_len=4000" in message and "val split" in message and "3000 tokens" in message
    assert "model.seq_len" in message


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"tokenizer": "wordpiece"}, ["unknown tokenizer", "bpe", "char"]),
        ({"vocab_size": 200}, ["vocab_size=200", "257"]),
        ({"split_fractions": [0.9, 0.1, 0.1]}, ["sum to 1"]),
        ({"hub_path": "wikitext"}, ["exactly one", "files", "hub_path"]),
    ],
)
def test_bad_settings_say_what_is_accepted(tmp_path, excerpt, overrides, words):
    with pytest.raises(DataConfigError) as error:
        make_datamodule(tmp_path, excerpt, **overrides)
    assert all(word in str(error.value) for word in words)


def test_hub_dataset_offline_and_not_cached_points_to_local_text(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # datasets reads these at import: patch the values it already holds too.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    dm = TextDataModule(name="wikitext2", hub_path="wikitext", hub_name="wikitext-2-raw-v1", cache_dir=str(tmp_path))
    with pytest.raises(DataConfigError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert "offline" in message and "data=text_files" in message and "data=tinyshakespeare" in message


# ------------------------------------------------------------------------------------------- real configs


def compose_data(name: str, tmp_path, **data_overrides):
    """conf/data/<name>.yaml under the run-level keys it interpolates (as conf/train.yaml defines them)."""
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "paths": {"data_dir": str(REPO / "data"), "cache_dir": str(tmp_path / "cache")},
            "model": {"seq_len": 64},
            "data": OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml"),
        }
    )
    cfg.data.merge_with(data_overrides)
    return cfg.data


def test_text_files_config_on_a_wikitext_excerpt(tmp_path):
    cfg = compose_data(
        "text_files", tmp_path, vocab_size=300,
        train_files=[str(WIKITEXT / "train.txt")], val_files=[str(WIKITEXT / "valid.txt")],
        test_files=[str(WIKITEXT / "test.txt")],
    )
    dm = instantiate(cfg)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.vocab_size == 300 and dm.seq_len == 64
    assert decoded_split(dm, "val") == (WIKITEXT / "valid.txt").read_text(encoding="utf-8")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (cfg.batch_size, 64)


def test_wikitext2_config_names_the_hub_dataset(tmp_path):
    dm = instantiate(compose_data("wikitext2", tmp_path))
    assert (dm.hub_path, dm.hub_name) == ("wikitext", "wikitext-2-raw-v1")


def test_default_tinyshakespeare_config_end_to_end(tmp_path):
    dm = instantiate(compose_data("tinyshakespeare", tmp_path))
    dm.prepare_data()
    dm.setup("fit")
    # char-level: the 65 characters of the train split + the unknown id
    assert dm.vocab_size == 66 and len(dm.data_hash) == 16
    n = dm.tokens_per_split
    assert n["val"] == pytest.approx(n["train"] / 18, rel=0.01) and n["test"] == pytest.approx(n["val"], rel=0.01)
    assert 3.0 < dm.unigram_entropy < math.log(66)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 64) and int(x.max()) < dm.vocab_size


def test_rows_are_joined_with_a_newline_only_where_one_is_missing():
    # wikitext's Hub rows are lines that keep their "\n", with "" for blank lines
    assert data.join_documents(["", " = Title = \n", "", " Text .\n"]) == "\n = Title = \n\n Text .\n"
    assert data.join_documents(["file one", "file two\n", "file three"]) == "file one\nfile two\nfile three"


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café au lait\n".encode("latin-1") * 50)
    with pytest.raises(DataConfigError, match="UTF-8"):
        make_datamodule(tmp_path, latin1)


def test_a_typed_config_and_its_keyword_arguments_build_the_same_module(tmp_path):
    """TextDataModule takes a TextDataConfig, or its fields as Hydra passes them; a bad value fails as the config
    is made, and the module's signature is the config's fields (what validate accepts as data keys)."""
    import inspect

    from ffnlab.data import TextDataModule
    from ffnlab.data.config import TextDataConfig

    fields = {"name": "t", "cache_dir": str(tmp_path), "files": [str(tmp_path / "a.txt")],
              "split_fractions": [0.8, 0.1, 0.1], "tokenizer": "char", "seq_len": 8}
    (tmp_path / "a.txt").write_text("abc " * 100)
    typed, keywords = TextDataModule(TextDataConfig(**fields)), TextDataModule(**fields)
    assert typed.config == keywords.config and typed.data_hash == keywords.data_hash
    assert list(inspect.signature(TextDataModule).parameters) == [f for f in TextDataConfig.__dataclass_fields__]
    with pytest.raises(DataConfigError, match="vocab_size=100 is too small for byte-level BPE"):
        TextDataConfig(**{**fields, "tokenizer": "bpe", "vocab_size": 100})
