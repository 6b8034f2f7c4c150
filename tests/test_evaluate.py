"""lm-evaluation-harness on ffnlab checkpoints (issue 24.1): the adapter scores as lm-eval's own `hf` model does, and
scripts/evaluate.py scores a run directory or an HF model directory on the embedded task. Needs the eval extra:
`make test-eval` runs these in .venv-eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO

pytestmark = pytest.mark.eval

SEQ_LEN = 128  # a context of the embedded task and its choice mostly fit: HFLM's one-window scoring applies


@pytest.fixture(scope="module")
def swiglu_run(train_cli, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("swiglu") / "run"
    done = train_cli("ffn=swiglu", f"model.seq_len={SEQ_LEN}", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def lm(swiglu_run):
    from ffnlab.downstream.harness import FfnlabLM

    return FfnlabLM(swiglu_run, batch_size=3)


def request(*args):
    return SimpleNamespace(args=args)


def reference_logprob(lm, context: str, continuation: str) -> float:
    """log p(continuation | context) from one plain forward pass over the whole text."""
    head, tail = lm.encode_pair(context, continuation)
    ids = torch.tensor([head + tail])
    logprobs = F.log_softmax(lm.model(ids[:, :-1]).float(), -1)[0]
    return sum(logprobs[len(head) - 1 + j, token].item() for j, token in enumerate(tail))


def test_loglikelihood_is_the_models_whatever_the_batch(lm):
    pairs = [("ROMEO:\nWhat light", " through yonder window"), ("First Citizen:\n", "Speak."),
             ("O", "h"), ("KING", " RICHARD III:\nNow is the winter of our discontent")]
    got = lm.loglikelihood([request(*pair) for pair in pairs])
    for (context, continuation), (logprob, _) in zip(pairs, got):
        assert logprob == pytest.approx(reference_logprob(lm, context, continuation), abs=1e-4)
    alone = [lm.loglikelihood([request(*pair)])[0][0] for pair in pairs]
    assert [logprob for logprob, _ in got] == pytest.approx(alone, abs=1e-5)


def test_a_continuation_longer_than_seq_len_is_scored_whole(lm):
    """Chain rule: a continuation of 2.5 windows scores as its pieces do, each after all the tokens before it. HFLM
    would score only its last seq_len tokens."""
    ids = lm.tokenizer.encode((REPO / "data" / "tinyshakespeare" / "input.txt").read_text()[:5000])
    ids = ids[: 10 + 5 * SEQ_LEN // 2]
    ((whole, _),) = lm.score([(ids[:10], ids[10:])])
    cuts = [*range(10, len(ids), SEQ_LEN), len(ids)]
    pieces = lm.score([(ids[:a], ids[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert len(pieces) == 3 and whole == pytest.approx(sum(logprob for logprob, _ in pieces), abs=1e-3)
    assert whole < pieces[0][0]  # all three pieces counted


def test_rolling_loglikelihood_of_a_text_that_fits_is_one_pass(lm):
    text = "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    (rolling,) = lm.loglikelihood_rolling([request(text)])
    ids = lm.tokenizer.encode(text)
    prefix = [lm.eod] if lm.eod is not None else ids[:1]  # what the first token is scored after (if it is)
    scored = ids if lm.eod is not None else ids[1:]
    logprobs = F.log_softmax(lm.model(torch.tensor([prefix + scored[:-1]])).float(), -1)[0]
    assert rolling == pytest.approx(sum(logprobs[j, t].item() for j, t in enumerate(scored)), abs=1e-4)


def test_greedy_generation_stops_at_until(lm):
    from ffnlab.generate import generate

    context = "ROMEO:\n"
    ids = generate(lm.model, lm.tokenizer.encode(context), 20, temperature=0)
    expected = lm.tokenizer.decode(ids)
    (free,) = lm.generate_until([request(context, {"until": [], "max_gen_toks": 20})])
    assert free == expected
    stop = expected[3:5]
    (cut,) = lm.generate_until([request(context, {"until": [stop], "max_gen_toks": 20})])
    assert cut == expected.split(stop)[0]


def evaluate_cli(path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), str(path), "--tasks",
                           "shakespeare_next_line", "--limit", "60", "--out", str(out), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def results_of(out: Path) -> tuple[dict, list[dict]]:
    (aggregated,) = out.rglob("results_*.json")
    (samples,) = out.rglob("samples_shakespeare_next_line_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    return json.loads(aggregated.read_text()), sorted(rows, key=lambda row: row["doc_id"])


def test_a_run_and_its_hf_export_score_alike(swiglu_run, tmp_path):
    """The issue's equality: ffnlab's adapter on the run dir and lm-eval's `hf` model on its export give the same
    accuracy and the same per-request log-likelihoods (to 1e-4)."""
    ours = evaluate_cli(swiglu_run, tmp_path / "ours")
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert "shakespeare_next_line" in ours.stdout and "acc_norm" in ours.stdout
    export = subprocess.run([sys.executable, str(REPO / "scripts" / "export_hf.py"), str(swiglu_run),
                             str(tmp_path / "hf")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-3000:]
    theirs = evaluate_cli(tmp_path / "hf", tmp_path / "theirs")
    assert theirs.returncode == 0, theirs.stderr[-3000:]
    (our_results, our_rows), (their_results, their_rows) = results_of(tmp_path / "ours"), results_of(tmp_path / "theirs")
    metrics = our_results["results"]["shakespeare_next_line"]
    assert metrics["acc,none"] == their_results["results"]["shakespeare_next_line"]["acc,none"]
    assert metrics["acc_norm,none"] == their_results["results"]["shakespeare_next_line"]["acc_norm,none"]
    assert len(our_rows) == len(their_rows) == 60
    ours_ll = [float(choice[0]) for row in our_rows for choice in row["filtered_resps"]]
    theirs_ll = [float(choice[0]) for row in their_rows for choice in row["filtered_resps"]]
    assert len(ours_ll) == 240
    assert max(abs(a - b) for a, b in zip(ours_ll, theirs_ll)) <= 1e-4


def test_evaluate_refuses_a_directory_that_is_neither_in_one_line(tmp_path):
    done = evaluate_cli(tmp_path, tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "neither an ffnlab run dir" in done.stderr


def test_a_sweep_is_scored_run_by_run_and_a_rerun_skips_what_is_scored(swiglu_run, tmp_path):
    """PATH a sweep dir: every finished run is scored into its own eval/, and scoring it again skips them, as a
    re-run sweep skips its finished points (an unfinished run is not scored)."""
    import shutil

    sweep = tmp_path / "sweep"
    for name in ("ffn=swiglu,seed=0", "ffn=swiglu,seed=1"):
        shutil.copytree(swiglu_run, sweep / name, ignore=shutil.ignore_patterns("eval"))
    unfinished = sweep / "ffn=swiglu,seed=2"
    shutil.copytree(swiglu_run, unfinished, ignore=shutil.ignore_patterns("eval"))
    (unfinished / "metrics.json").write_text(json.dumps({"status": "running"}))
    command = [sys.executable, str(REPO / "scripts" / "evaluate.py"), str(sweep), "--tasks", "shakespeare_next_line",
               "--limit", "8"]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("results: ") == 2 and "skipped" not in first.stdout
    assert [len(list((sweep / n / "eval").rglob("results_*.json"))) for n in ("ffn=swiglu,seed=0", "ffn=swiglu,seed=1")] == [1, 1]
    assert not (unfinished / "eval").exists()
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("skipped") == 2 and "results: " not in again.stdout
