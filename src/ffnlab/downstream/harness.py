"""lm-evaluation-harness for ffnlab checkpoints: an lm-eval `LM` over ffnlab's own model and tokenizer (any of the
18 variants), and `evaluate`, which scores a run directory or an HF model directory on lm-eval tasks.

The adapter follows lm-eval's `hf` model (HFLM) wherever the two could differ, so a SwiGLU run and its HF export
(scripts/export_hf.py) score alike, request for request (tests/test_evaluate.py):
  - a (context, continuation) pair is tokenized as HFLM does: trailing spaces of the context move to the
    continuation, the whole string is encoded once and the context's tokens are cut off its front;
  - the input is the last `seq_len + 1` tokens of context + continuation, less the last; the continuation is scored
    at the positions that predict it; `is_greedy` is whether argmax reproduces every continuation token (a
    continuation longer than seq_len is scored in consecutive windows, where HFLM would cut it);
  - requests are scored in batches (longest first, right-padded: the model is causal, so the padding never reaches a
    scored position); fp32, eval mode, no sampling: the results are deterministic.
An empty context is the end-of-document token where the tokenizer has one (BPE's `<|endoftext|>`), else the
continuation's first token (a character model has no such token), which is then not scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from ffnlab.generate import load_checkpoint

TASKS_DIR = Path(__file__).parent / "tasks"  # tasks defined in this repository (run offline)
EOD = "<|endoftext|>"


@register_model("ffnlab")
class FfnlabLM(LM):
    """`lm_eval --model ffnlab --model_args run_dir=<run dir>[,batch_size=16]` as well as scripts/evaluate.py."""

    def __init__(self, run_dir: str | Path, batch_size: int | str = 16, **_):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.model, self.tokenizer = load_checkpoint(self.run_dir / "checkpoints" / "last.ckpt")
        self.max_length = self.model.cfg.seq_len
        self.batch_size = int(batch_size)
        self.eod = self.tokenizer.hf.token_to_id(EOD)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> FfnlabLM:
        args = dict(part.split("=", 1) for part in arg_string.split(",") if part)
        return cls(**args, **{k: v for k, v in (additional_config or {}).items() if v is not None})

    @property
    def tokenizer_name(self) -> str:
        return f"ffnlab:{self.run_dir.name}"

    # ------------------------------------------------------------------------------------------- scoring

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if not context:
            return self._prefixed(self.tokenizer.encode(continuation))
        whole, head = self.tokenizer.encode(context + continuation), self.tokenizer.encode(context)
        return head, whole[len(head):]

    def _prefixed(self, tokens: list[int]) -> tuple[list[int], list[int]]:
        return ([self.eod], tokens) if self.eod is not None else (tokens[:1], tokens[1:])

    def windows(self, context: list[int], continuation: list[int]) -> list[tuple[list[int], list[int]]]:
        """(input, targets) windows that score `continuation` after `context`: one (HFLM's) when it fits in seq_len,
        else consecutive pieces of at most seq_len targets, each read with as much of what precedes it as fits."""
        whole, start = context + continuation, len(context)
        pieces = []
        for a in range(start, len(whole), self.max_length):
            b = min(a + self.max_length, len(whole))
            pieces.append((whole[max(0, b - 1 - self.max_length) : b - 1], whole[a:b]))
        return pieces

    @torch.no_grad()
    def score(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), whether greedy decoding gives the continuation) per pair."""
        windows = [(i, inputs, targets) for i, pair in enumerate(pairs) for inputs, targets in self.windows(*pair)]
        totals, greedy = [0.0] * len(pairs), [True] * len(pairs)
        windows.sort(key=lambda window: -len(window[1]))
        for start in range(0, len(windows), self.batch_size):
            chunk = windows[start : start + self.batch_size]
            x = torch.zeros(len(chunk), len(chunk[0][1]), dtype=torch.long)
            for row, (_, inputs, _) in enumerate(chunk):
                x[row, : len(inputs)] = torch.tensor(inputs)
            logprobs = F.log_softmax(self.model(x).float(), dim=-1)
            for row, (i, inputs, targets) in enumerate(chunk):
                target = torch.tensor(targets, dtype=torch.long)
                scored = logprobs[row, len(inputs) - len(targets) : len(inputs)]
                totals[i] += scored.gather(-1, target[:, None]).sum().item()
                greedy[i] = greedy[i] and bool((scored.argmax(-1) == target).all())
        return list(zip(totals, greedy))

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self.score([self.encode_pair(*request.args) for request in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Each string's whole log-likelihood, in disjoint windows of seq_len tokens (lm-eval's rolling windows)."""
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        totals = []
        for request in requests:
            tokens = self.tokenizer.encode(request.args[0])
            prefix, tokens = self._prefixed(tokens) if self.eod is None else ([self.eod], tokens)
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                tokens, prefix_token=prefix[0], max_seq_len=self.max_length, context_len=1)]
            totals.append(sum(logprob for logprob, _ in self.score(windows)))
        return totals

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy continuations, stopped at the first of `until` (cut there) or after `max_gen_toks` tokens."""
        outputs = []
        for request in requests:
            context, settings = request.args
            until = settings.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            ids = self.tokenizer.encode(context) or ([self.eod] if self.eod is not None else [0])
            generated: list[int] = []
            text = ""
            for _ in range(int(settings.get("max_gen_toks", 256))):
                logits = self.model(torch.tensor([(ids + generated)[-self.max_length :]]))[0, -1]
                generated.append(int(logits.argmax()))
                if generated[-1] == self.eod:
                    generated.pop()
                    break
                text = self.tokenizer.decode(generated)
                if any(stop in text for stop in until):
                    break
            text = self.tokenizer.decode(generated)
            for stop in until:
                text = text.split(stop)[0]
            outputs.append(text)
        return outputs


# ------------------------------------------------------------------------------------------------ evaluate


def is_run_dir(path: Path) -> bool:
    return (path / "checkpoints" / "last.ckpt").is_file()


def is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def has_boundary_token(path: Path) -> bool:
    """Whether an HF model dir's tokenizer has a BOS or EOS token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return tokenizer.bos_token_id is not None or tokenizer.eos_token_id is not None


def evaluate(path: Path, tasks: Iterable[str], num_fewshot: int | None = None, limit: int | float | None = None,
             out: Path | None = None, batch_size: int = 16) -> dict:
    """Score `path` (an ffnlab run dir or an HF model dir) on lm-eval `tasks`; lm-eval's results, also written as
    `results_<time>.json` (and the per-request samples) under `out` (default: the run dir's `eval/`)."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    import lm_eval.models  # noqa: F401 - lm-eval's own models (hf, ...): its registry fills itself only when empty

    path = Path(path)
    if is_run_dir(path):
        model, model_args = FfnlabLM(path, batch_size=batch_size), None
    elif is_hf_dir(path):
        model, model_args = "hf", {"pretrained": str(path), "dtype": "float32"}  # batch and device: below
        if not has_boundary_token(path):
            # lm-eval's hf model decodes its prefix token (BOS, else EOS) on every encode; an ffnlab export of a
            # character model has neither. Any id serves: it only prefixes empty contexts, which FfnlabLM scores
            # differently anyway (module docstring).
            model_args["prefix_token_id"] = 0
    else:
        raise ValueError(f"{path} is neither an ffnlab run dir (no checkpoints/last.ckpt) nor an HF model dir (no "
                         "config.json): give a run directory, or a directory scripts/export_hf.py wrote")
    out = Path(out) if out is not None else path / "eval"
    tracker = EvaluationTracker(output_path=str(out))
    results = lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=list(tasks), num_fewshot=num_fewshot, limit=limit,
        task_manager=TaskManager(include_path=str(TASKS_DIR)), evaluation_tracker=tracker, log_samples=True,
        batch_size=batch_size, device="cpu",
    )
    if results is None:  # a rank other than 0 under a distributed launcher
        return {}
    samples = results.pop("samples", None)
    if isinstance(model, FfnlabLM):  # lm-eval names its results dir after model_args' `pretrained`: the run dir here
        from lm_eval.utils import sanitize_model_name

        config = tracker.general_config_tracker
        config.model_name, config.model_name_sanitized = f"ffnlab:{path}", sanitize_model_name(f"ffnlab/{path.name}")
    tracker.save_results_aggregated(results=results, samples=samples)
    if samples:
        for task in samples:
            tracker.save_results_samples(task_name=task, samples=samples[task])
    results["samples"] = samples
    return results


# ------------------------------------------------------------------------------------------------- a sweep


def finished_run_dirs(sweep: Path) -> list[Path]:
    """The run dirs under `sweep` (at any depth) whose record says finished and that hold a checkpoint."""
    found = []
    for checkpoint in sorted(Path(sweep).rglob("checkpoints/last.ckpt")):
        run_dir = checkpoint.parent.parent
        try:
            finished = json.loads((run_dir / "metrics.json").read_text()).get("status") == "finished"
        except (OSError, ValueError):
            finished = False
        if finished:
            found.append(run_dir)
    return found


def already_scored(run_dir: Path, tasks: Iterable[str], num_fewshot: int | None, limit: int | float | None) -> bool:
    """Whether one results file under the run's eval/ holds every task at these settings (a sweep skips it, as a
    re-run sweep skips its finished points)."""
    wanted = set(tasks)
    for path in (Path(run_dir) / "eval").rglob("results_*.json"):
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        shots = results.get("n-shot", {})
        if (wanted <= set(results.get("results", {})) and results.get("config", {}).get("limit") == limit
                and (num_fewshot is None or all(shots.get(task) == num_fewshot for task in wanted))):
            return True
    return False
