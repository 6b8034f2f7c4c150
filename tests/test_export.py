"""scripts/export_hf.py: a finished run as a stock HF LlamaForCausalLM (+ its tokenizer), the same model.

Real tiny runs (conftest's train_cli), one per exportable variant, exported and loaded back with AutoModelForCausalLM
and AutoTokenizer: the same logits (1e-4), the same greedy continuation, the same ids and text. What Llama cannot
express is refused in one line, and nothing is written."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import torch

from conftest import REPO
from ffnlab.downstream import export
from ffnlab.data.corpus import EOD
from ffnlab.model.ffn import FFNConfig
from ffnlab.model.decoder import ModelConfig, Transformer
from ffnlab.generate import generate, load_checkpoint
from ffnlab.data.tokenizer import train_tokenizer

pytestmark = pytest.mark.eval

SCRIPT = REPO / "scripts" / "export_hf.py"
FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
# One tiny run per exportable variant (the tiny runs' tokenizer is BPE); between them they cover the char and the BPE
# tokenizer, tied and untied embeddings, multi-head and grouped-query attention, and GEGLU's tanh form.
RUNS = {
    "swiglu": ["ffn=swiglu", "data.tokenizer=char"],
    "geglu": ["ffn=geglu", "ffn.gelu_approximate=tanh", "model.n_heads=4", "model.n_kv_heads=2"],
    "reglu": ["ffn=reglu", "model.tie_embeddings=false"],
    "glu": ["ffn=glu", "data.tokenizer=char", "model.tie_embeddings=false"],
    "bilinear": ["ffn=bilinear"],
}


def load_script():
    spec = importlib.util.spec_from_file_location("export_hf", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_hf = load_script()


@pytest.fixture(scope="module")
def runs(train_cli, tmp_path_factory) -> dict[str, Path]:
    """name -> a finished tiny run directory (two trainings at a time)."""
    root = tmp_path_factory.mktemp("export_runs")

    def train(name: str) -> Path:
        done = train_cli(*RUNS[name], "seed=0", f"hydra.run.dir={root / name}")
        assert done.returncode == 0, done.stderr[-3000:]
        return root / name

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(RUNS, pool.map(train, RUNS)))


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (OUT_DIR, the script's stdout), exported through scripts/export_hf.py's main in this process."""
    root = tmp_path_factory.mktemp("exported")
    done = {}
    for name, run_dir in runs.items():
        out = root / name
        with redirect_stdout(StringIO()) as said:
            assert export_hf.main([str(run_dir), str(out)]) == 0
        done[name] = (out, said.getvalue())
    return done


def real_ids(tokenizer, seq_len: int) -> torch.Tensor:
    """Two windows of real text (the corpus' start), seq_len tokens each."""
    text = (REPO / "data" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:4000]
    ids = tokenizer.encode(text)
    return torch.tensor([ids[:seq_len], ids[seq_len : 2 * seq_len]])


@pytest.mark.parametrize("name", RUNS)
def test_a_run_exports_as_a_stock_llama_with_ffnlabs_logits(name, runs, exported):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    out, said = exported[name]
    assert {p.name for p in out.iterdir()} == FILES
    assert said.count("\n") == 1 and said.startswith(f"exported ffn={name} as LlamaForCausalLM")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert config["hidden_act"] == ("gelu_pytorch_tanh" if name == "geglu" else export.HIDDEN_ACT[name])

    ours, tokenizer = load_checkpoint(runs[name] / "checkpoints" / "last.ckpt")
    theirs = AutoModelForCausalLM.from_pretrained(out)
    assert type(theirs) is LlamaForCausalLM
    assert sum(p.numel() for p in theirs.parameters()) == sum(p.numel() for p in ours.parameters())
    assert f"{sum(p.numel() for p in ours.parameters()):,} parameters" in said
    ids = real_ids(tokenizer, ours.cfg.seq_len)
    with torch.no_grad():
        torch.testing.assert_close(theirs(input_ids=ids).logits, ours(ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", RUNS)
def test_the_export_generates_ffnlabs_greedy_continuation(name, runs, exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ours, tokenizer = load_checkpoint(runs[name] / "checkpoints" / "last.ckpt")
    theirs = AutoModelForCausalLM.from_pretrained(exported[name][0])
    hf_tokenizer = AutoTokenizer.from_pretrained(exported[name][0])
    prompt = "ROMEO:\nWhat"
    inputs = hf_tokenizer(prompt, return_tensors="pt")
    new = theirs.generate(**inputs, do_sample=False, max_new_tokens=10)[0, inputs["input_ids"].shape[1] :].tolist()
    assert len(new) == 10 or (new and new[-1] == theirs.generation_config.eos_token_id)
    assert new == generate(ours, tokenizer.encode(prompt), len(new), temperature=0)
    assert hf_tokenizer.decode(new) == tokenizer.decode(new)


@pytest.mark.parametrize("name", ["swiglu", "reglu"])  # the char and the BPE tokenizer
def test_auto_tokenizer_round_trips_text_as_ffnlabs_tokenizer(name, runs, exported):
    from transformers import AutoTokenizer

    _, tokenizer = load_checkpoint(runs[name] / "checkpoints" / "last.ckpt")
    theirs = AutoTokenizer.from_pretrained(exported[name][0])
    text = (REPO / "data" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[50_000:52_000]
    text += "  tabs\tand  spaces,\n\n naïve \u4e2d ~"
    ids = theirs(text, verbose=False)["input_ids"]
    assert ids == tokenizer.encode(text)
    assert theirs.decode(ids) == tokenizer.decode(ids)
    if name == "swiglu":  # characters: every known character is its own id, the rest [UNK]
        assert theirs.unk_token == "[UNK]" and theirs.eos_token is None
        for said in ("generation_config.json", "config.json"):  # not Llama's default ids
            assert json.loads((exported[name][0] / said).read_text()).get("eos_token_id") is None


# --------------------------------------------------------------------------- what is refused, in one line
def fake_run(root: Path, model: Transformer, status: str | None = "finished", tokenizer=None) -> Path:
    """A run directory holding a checkpoint as train.py writes it (the keys load_checkpoint reads)."""
    text = (REPO / "data" / "tinyshakespeare" / "input.txt").read_text()[:5000]
    tokenizer = tokenizer or train_tokenizer("char", text, 0)
    (root / "checkpoints").mkdir(parents=True)
    torch.save({
        "ffnlab_model_config": dataclasses.asdict(model.cfg), "ffnlab_ffn_config": dataclasses.asdict(model.ffn_cfg),
        "ffnlab_tokenizer": tokenizer.to_json(),
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
    }, root / "checkpoints" / "last.ckpt")
    if status is not None:
        (root / "metrics.json").write_text(json.dumps({"status": status}))
    return root


def small(ffn: str = "swiglu", **changes) -> Transformer:
    model = dict(d_model=32, n_layers=1, n_heads=2, seq_len=16, vocab_size=70) | changes.pop("model", {})
    return Transformer(ModelConfig(**model), FFNConfig(name=ffn, **changes))


def refused(run_dir: Path, out: Path, capsys, *flags: str) -> str:
    assert export_hf.main([str(run_dir), str(out), *flags]) == 1
    said = capsys.readouterr()
    assert said.out == "" and said.err.startswith("error: ") and said.err.count("\n") == 1
    return said.err


@pytest.mark.parametrize("model, expected", [
    (lambda: small("maxout"), "cannot express ffn=maxout; these export: swiglu, geglu, reglu, glu, bilinear"),
    (lambda: small("relu"), "cannot express ffn=relu; these export"),
    (lambda: small("gtu"), "cannot express ffn=gtu"),
    (lambda: small("swiglu", swish_beta=2.0), "swish_beta=2 is not SiLU"),
    (lambda: small("swiglu", swish_beta_trainable=True), "(trainable) is not SiLU"),
    (lambda: small("swiglu", model={"init": "t5"}), "Llama has no head input scale: model.init=t5 with tied"),
], ids=["maxout", "relu", "gtu", "swish_beta", "trainable_beta", "t5_tied"])
def test_what_llama_cannot_express_is_one_line_and_nothing_is_written(model, expected, tmp_path, capsys):
    run_dir = fake_run(tmp_path / "run", model())
    assert expected in refused(run_dir, tmp_path / "out", capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_unfinished_runs_missing_checkpoints_and_full_out_dirs_are_refused(tmp_path, capsys):
    running = fake_run(tmp_path / "running", small(), status="running")
    err = refused(running, tmp_path / "out", capsys)
    assert "is not a finished run (its metrics.json says status=running); --allow-unfinished" in err
    err = refused(fake_run(tmp_path / "bare", small(), status=None), tmp_path / "out", capsys)
    assert "no readable metrics.json" in err
    assert "no checkpoint at" in refused(tmp_path, tmp_path / "out", capsys)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert "is not an empty directory" in refused(fake_run(tmp_path / "done", small()), tmp_path / "full", capsys)
    assert not (tmp_path / "out").exists()

    (tmp_path / "empty").mkdir()  # an empty OUT_DIR is filled; an unfinished run exports when asked
    assert export_hf.main([str(running), str(tmp_path / "empty"), "--allow-unfinished"]) == 0
    assert {p.name for p in (tmp_path / "empty").iterdir()} == FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare", "done", "empty", "full", "running"]  # no staging


def test_an_end_of_document_token_is_bos_eos_and_pad(tmp_path):
    """A BPE vocabulary with ffnlab's <|endoftext|> (row sources: separator=eod) names it in every config."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = (REPO / "data" / "tinyshakespeare" / "input.txt").read_text()[:5000]
    tokenizer = train_tokenizer("bpe", text, 300, special_tokens=[EOD])
    eod = tokenizer.hf.token_to_id(EOD)
    model = small("swiglu", model={"vocab_size": tokenizer.vocab_size})
    run_dir = fake_run(tmp_path / "run", model, tokenizer=tokenizer)
    with redirect_stdout(StringIO()):
        assert export_hf.main([str(run_dir), str(tmp_path / "hf")]) == 0
    generation = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    for said in (generation, config):
        assert (said["bos_token_id"], said["eos_token_id"], said["pad_token_id"]) == (eod, eod, eod)
    theirs = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert (theirs.eos_token, theirs.eos_token_id, theirs.bos_token) == (EOD, eod, EOD)
    assert theirs(f"a{EOD}b", verbose=False)["input_ids"] == tokenizer.encode(f"a{EOD}b")
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "hf").generation_config.eos_token_id == eod


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path):
    """The script as run (the tests above call its main): exit 1, `error: ...` on stderr, nothing made."""
    bad = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nope"), str(tmp_path / "hf")], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert (bad.returncode, bad.stdout) == (1, "") and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith(f"error: {tmp_path / 'nope'} is not a directory") and not (tmp_path / "hf").exists()


# --------------------------------------------------------------------------- the mapping itself
@pytest.mark.parametrize("ffn, options, act", [
    ("swiglu", {}, "silu"), ("geglu", {}, "gelu"), ("geglu", {"gelu_approximate": "tanh"}, "gelu_pytorch_tanh"),
    ("geglu", {"gelu_approximate": "sigmoid"}, "quick_gelu"), ("reglu", {}, "relu"), ("glu", {}, "sigmoid"),
    ("bilinear", {}, "linear"),
])
def test_every_exportable_form_is_the_same_function(ffn, options, act):
    """Every variant and GELU form Llama's MLP expresses (the runs above cover tied and untied heads)."""
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=32, vocab_size=100)
    ours = Transformer(cfg, FFNConfig(name=ffn, **options), seed=3).eval()
    theirs = export.to_llama(ours)
    assert theirs.config.hidden_act == act
    assert sum(p.numel() for p in theirs.parameters()) == sum(p.numel() for p in ours.parameters())
    ids = torch.randint(0, 100, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(theirs(input_ids=ids).logits, ours(ids), atol=2e-5, rtol=1e-5)


def test_t5_init_exports_with_an_untied_head(tmp_path):
    """model.init=t5 is refused only tied (its head input scale); untied its head is a plain matrix."""
    ours = small("reglu", model={"init": "t5", "tie_embeddings": False}).eval()
    theirs = export.to_llama(ours)
    ids = torch.randint(0, 70, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(theirs(input_ids=ids).logits, ours(ids), atol=1e-4, rtol=1e-5)


def test_importing_the_mapping_does_not_import_transformers():
    code = "import sys, ffnlab.downstream.export, ffnlab.bench.hf; assert 'transformers' not in sys.modules, 'imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
