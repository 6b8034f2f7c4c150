"""Training throughput of ffnlab against HF Llama and against the hardware's kernel floor, interleaved in one
process so machine noise hits every contender alike; then where a real train.py run's time goes.

    python scripts/benchmark.py                                   # the default shape, all 18 variants
    python scripts/benchmark.py --variants swiglu,relu --steps 3 --rounds 5 --json bench.json
    python scripts/benchmark.py model.d_model=256 model.n_heads=4 model.seq_len=256 model.vocab_size=4096 \\
        model.tie_embeddings=false data.batch_size=8 ffn.multiple_of=16 --variants swiglu,geglu,reglu --no-run

With --compile, or when the config compiles (torch_compile=true, as experiment=glu_variants), ffnlab and HF are
timed a second time with each block under torch.compile (train.py's torch_compile=true: the optimizer stays eager),
compiled against compiled, and each compilation is timed apart. With a known peak (a GPU, or peak_flops=...) it
prints each row's MFU and marks the one measured at the config's compile setting for scripts/params.py --mfu.

Overrides are train.py's (Hydra). Per variant it reports tokens/s of ffnlab's training step and of HF
`LlamaForCausalLM` at the same shapes and weights (SwiGLU, GEGLU, ReGLU: the variants its MLP can express; needs
the `bench` extra), the median of the per-round ratio with its range, and the kernel floor: the summed time of the
step's matmuls, attention and cross-entropy, each timed alone in the same rounds (ffnlab.bench.contenders). The
train.py section runs the first variant through ffnlab.training.run.run and reports the loop's overhead (its training
tokens/s against the raw step timed around it), the time between steps (data loading and loop), the training
loader alone, and evaluation's and setup's shares of the run's wall time.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import nullcontext

import torch

from ffnlab.training.allocator import apply_allocator
from ffnlab.bench import contenders, runpath, timing
from ffnlab.config.compose import compose_config, model_config
from ffnlab.config.schemas import to_dataclass
from ffnlab.config.errors import ConfigError, one_line
from ffnlab.model.ffn import VARIANTS, FFNConfig, n_input_matrices
from ffnlab.runs.hardware import peak_flops
from ffnlab.training.optim import OptimConfig
from ffnlab.model.sizes import model_stats
from ffnlab.training.threads import apply_threads


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="train.py's Hydra overrides (the shape, batch, threads ...)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; default: all 18")
    parser.add_argument("--steps", type=int, default=3, help="training steps per contender per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per contender first")
    parser.add_argument("--compile", action="store_true", help="also time ffnlab and HF with the model under "
                        "torch.compile, as train.py's torch_compile=true runs it; the compilation is timed apart")
    parser.add_argument("--no-hf", action="store_true", help="skip HF Llama")
    parser.add_argument("--no-run", action="store_true", help="skip the train.py run")
    parser.add_argument("--run-steps", type=int, default=None, help="max_steps of the train.py run (default: the "
                        "config's: the run a researcher makes)")
    parser.add_argument("--json", default=None, help="write every figure to this file")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; valid: {', '.join(VARIANTS)}")
    if min(args.steps, args.rounds) < 1 or args.warmup < 0:
        parser.error("--steps and --rounds must be >= 1, --warmup >= 0")
    return args


def device_of(cfg) -> torch.device:
    return torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")


def autocast(cfg, device: torch.device):
    """The step under the trainer's precision: bf16 autocast for bf16-mixed (GPU; reviewed, not run here)."""
    if "bf16" in str(cfg.trainer.precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def under(context_factory, fn):
    def run():
        with context_factory():
            fn()
    return run


def build_contenders(args, overrides: list[str]):
    """{name: step}, the kernel list per variant, and per-variant facts."""
    steps, kernels, facts = {}, {}, {}
    with_hf = () if args.no_hf else hf_variants()  # once: it says on stderr when transformers is missing
    for name in args.variants.split(","):
        cfg = compose_config([*overrides, f"ffn={name}"])
        apply_threads(cfg)
        apply_allocator(cfg)
        device = device_of(cfg)
        model_cfg, ffn_cfg = model_config(cfg), to_dataclass(FFNConfig, cfg.ffn)
        optim = to_dataclass(OptimConfig, cfg.optim)
        stats = model_stats(model_cfg, ffn_cfg)
        batch = int(cfg.data.batch_size)
        amp = lambda: autocast(cfg, device)  # noqa: E731
        for mode in modes(args, cfg):
            compiled = mode == COMPILED
            steps[f"ffnlab {name}{mode}"] = under(
                amp, contenders.ffnlab_step(model_cfg, ffn_cfg, optim, batch, device, compiled))
            if name in with_hf:
                steps[f"HF {name}{mode}"] = under(
                    amp, contenders.hf_step(model_cfg, ffn_cfg, optim, batch, device, compiled))
        kernels[name] = contenders.floor_kernels(model_cfg, stats["ffn_hidden"], n_input_matrices(ffn_cfg), batch,
                                                 device)
        facts[name] = {"ffn_hidden": stats["ffn_hidden"], "params_total": stats["params_total"],
                       "flops_per_token": stats["flops_per_token"], "tokens_per_step": batch * model_cfg.seq_len,
                       # one device's peak (ffnlab.runs.hardware: a GPU in bf16, or peak_flops=...): MFU when known
                       "peak_flops": peak_flops(device, cfg.trainer.precision, cfg.get("peak_flops"))}
    return steps, kernels, facts, cfg, device


COMPILED = " compiled"  # the suffix of a compiled contender's name


def modes(args, cfg) -> tuple[str, ...]:
    """Eager always; compiled too with --compile or when the config compiles, so the step its runs take is timed."""
    return ("", COMPILED) if args.compile or cfg.torch_compile else ("",)


def compile_seconds(steps: dict) -> dict[str, float]:
    """The first call of each compiled contender, which compiles it (forward and backward); before the rounds."""
    seconds = {}
    for name, fn in steps.items():
        if name.endswith(COMPILED):
            started = time.perf_counter()
            fn()
            seconds[name] = time.perf_counter() - started
    return seconds


def hf_variants() -> tuple[str, ...]:
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("transformers is not installed (pip install -e '.[bench]'): HF Llama is skipped", file=sys.stderr)
        return ()
    from ffnlab.bench.hf import HIDDEN_ACT

    return tuple(HIDDEN_ACT)


def step_figures(args, cfg, steps, kernels, facts, device) -> tuple[list[dict], dict]:
    unique = {k.name: k for ks in kernels.values() for k in ks}  # variants share most kernels: time each once
    compiling = compile_seconds(steps)
    timed = timing.interleaved({**steps, **{f"kernel {n}": k.run for n, k in unique.items()}},
                               rounds=args.rounds, steps=args.steps, warmup=args.warmup, device=device)
    rows, breakdown = [], {}
    for name, ks in kernels.items():
        floor = [sum(k.count * timed[f"kernel {k.name}"][r] for k in ks) for r in range(args.rounds)]
        tokens = facts[name]["tokens_per_step"]
        for mode in modes(args, cfg):
            ours = timed[f"ffnlab {name}{mode}"]
            flop_per_s = facts[name]["flops_per_token"] * tokens / timing.median(ours)
            peak = facts[name]["peak_flops"]
            row = {"ffn": name, "compiled": mode == COMPILED, **facts[name],
                   "ffnlab_tokens_per_s": tokens / timing.median(ours),
                   "ffnlab_gflop_per_s": flop_per_s / 1e9,
                   # measured in this mode; scripts/params.py --mfu takes the one of the config's torch_compile
                   "ffnlab_mfu": flop_per_s / peak if peak else None,
                   "floor_tokens_per_s": tokens / timing.median(floor),
                   "ffnlab_of_floor": timing.paired_ratio(floor, ours)}
            if f"ffnlab {name}{mode}" in compiling:
                row["ffnlab_compile_s"] = compiling[f"ffnlab {name}{mode}"]
            if f"HF {name}{mode}" in timed:  # compiled against compiled, eager against eager
                hf = timed[f"HF {name}{mode}"]
                row |= {"hf_tokens_per_s": tokens / timing.median(hf),
                        "ffnlab_over_hf": timing.paired_ratio(hf, ours),  # tokens/s ratio = inverse time ratio
                        "hf_of_floor": timing.paired_ratio(floor, hf)}
            if mode == COMPILED and f"HF {name}" in timed:
                row["ffnlab_over_eager_hf"] = timing.paired_ratio(timed[f"HF {name}"], ours)
            rows.append(row)
        total = timing.median(floor)
        breakdown[name] = [{"kernel": k.name, "count": k.count,
                            "ms_per_step": 1e3 * k.count * timing.median(timed[f"kernel {k.name}"]),
                            "share_of_floor": k.count * timing.median(timed[f"kernel {k.name}"]) / total} for k in ks]
    return rows, breakdown


def train_py_figures(args, overrides: list[str], device) -> dict:
    """One train.py run of the first variant, with the raw step of the same config timed before and after it."""
    name = args.variants.split(",")[0]
    cfg = compose_config([*overrides, f"ffn={name}", "trainer.enable_progress_bar=false",
                          *([f"trainer.max_steps={args.run_steps}"] if args.run_steps else [])])
    apply_threads(cfg)
    model_cfg, ffn_cfg = model_config(cfg), to_dataclass(FFNConfig, cfg.ffn)
    raw = contenders.ffnlab_step(model_cfg, ffn_cfg, to_dataclass(OptimConfig, cfg.optim), int(cfg.data.batch_size),
                                 device, compiled=bool(cfg.torch_compile))  # the step the run takes
    if cfg.torch_compile:
        raw()  # compiles it, untimed
    tokens = int(cfg.data.batch_size) * model_cfg.seq_len
    before = timing.interleaved({"raw": raw}, rounds=args.rounds, steps=args.steps, warmup=args.warmup, device=device)
    record = runpath.train_py_run(cfg.copy())
    after = timing.interleaved({"raw": raw}, rounds=args.rounds, steps=args.steps, warmup=0, device=device)
    raw_tokens_per_s = tokens / timing.median(before["raw"] + after["raw"])
    loader = runpath.loader_seconds_per_batch(cfg)
    t = record["timing"]
    steps = record["steps"]
    return {
        "ffn": name, "steps": steps, "wall_s": record["wall_s"], **t,
        "run_tokens_per_s": record["tokens_per_s"],
        "raw_step_tokens_per_s": raw_tokens_per_s,
        "run_over_raw": record["tokens_per_s"] / raw_tokens_per_s,
        "between_steps_share_of_training": t["between_steps_s"] / t["train_s"],
        "loader_ms_per_batch": 1e3 * loader,
        "loader_share_of_step": loader * steps / t["train_s"],
        "eval_share_of_run": t["eval_s"] / record["wall_s"],
        "outside_fit_share_of_run": (record["wall_s"] - t["train_s"] - t["eval_s"]) / record["wall_s"],
        "val_loss": record["val_loss"],
    }


def fmt_ratio(r) -> str:
    return f"{r[0]:.2f} ({r[1]:.2f}–{r[2]:.2f})"


def print_tables(result: dict) -> None:
    print(f"\n{result['when']}  {result['command']}")
    print(f"{result['shape']}  threads={result['cpu_threads']}  {result['stack']}\n")
    print("| ffn | hidden | ffnlab tok/s | GFLOP/s | HF tok/s | ffnlab/HF | floor tok/s | ffnlab of floor | "
          "HF of floor |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["variants"]:
        hf = (f"{r['hf_tokens_per_s']:,.0f} | {fmt_ratio(r['ffnlab_over_hf'])}" if "hf_tokens_per_s" in r
              else "– | –")
        label = f"{r['ffn']} (compiled)" if r["compiled"] else r["ffn"]
        print(f"| {label} | {r['ffn_hidden']} | {r['ffnlab_tokens_per_s']:,.0f} | {r['ffnlab_gflop_per_s']:.1f} | "
              f"{hf} | {r['floor_tokens_per_s']:,.0f} | {fmt_ratio(r['ffnlab_of_floor'])} | "
              f"{fmt_ratio(r['hf_of_floor']) if 'hf_of_floor' in r else '–'} |")
    for r in result["variants"]:
        if r.get("ffnlab_mfu") is not None:
            label = f"{r['ffn']} (compiled)" if r["compiled"] else r["ffn"]
            costs = r["compiled"] == result["torch_compile"]  # the row measured as the config's runs train
            print(f"{label}: MFU {r['ffnlab_mfu']:.1%} of {r['peak_flops'] / 1e12:,.1f} TFLOP/s"
                  + (f" (scripts/params.py --mfu {r['ffnlab_mfu']:.3f})" if costs else ""))
    for r in result["variants"]:
        if r["compiled"]:
            against = (f"; {fmt_ratio(r['ffnlab_over_eager_hf'])}x eager HF" if "ffnlab_over_eager_hf" in r
                       else "")
            print(f"{r['ffn']} compiled: compilation {r['ffnlab_compile_s']:.1f} s{against}")
    first = result["variants"][0]["ffn"]
    print(f"\nkernel floor of one {first} step:")
    for k in result["floor_breakdown"][first]:
        print(f"  {k['kernel']:<34} x{k['count']:<3} {k['ms_per_step']:8.2f} ms  {k['share_of_floor']:6.1%}")
    run = result.get("train_py")
    if run:
        print(f"\ntrain.py, ffn={run['ffn']}, {run['steps']} steps, {run['wall_s']:.1f} s wall:")
        print(f"  training tokens/s {run['run_tokens_per_s']:,.0f} = {run['run_over_raw']:.3f}x the raw step "
              f"({run['raw_step_tokens_per_s']:,.0f})")
        print(f"  between steps (data + loop): {run['between_steps_share_of_training']:.1%} of training time; "
              f"the loader alone {run['loader_ms_per_batch']:.2f} ms/batch = {run['loader_share_of_step']:.1%}")
        print(f"  evaluation {run['eval_s']:.1f} s = {run['eval_share_of_run']:.1%} of the run; outside fit "
              f"(build, data, setup) {run['outside_fit_share_of_run']:.1%}")


def main(argv: list[str]) -> int:
    args = parse(argv)
    overrides = args.overrides
    try:
        steps, kernels, facts, cfg, device = build_contenders(args, overrides)
        model_cfg = model_config(cfg)
    except ConfigError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    rows, breakdown = step_figures(args, cfg, steps, kernels, facts, device)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python scripts/benchmark.py " + " ".join(argv),
        "shape": f"vocab {model_cfg.vocab_size}, d_model {model_cfg.d_model}, {model_cfg.n_layers} layers, "
                 f"{model_cfg.n_heads} heads, seq {model_cfg.seq_len}, batch {cfg.data.batch_size}, "
                 f"{'tied' if model_cfg.tie_embeddings else 'untied'}, {cfg.trainer.precision}",
        "cpu_threads": torch.get_num_threads(),
        "stack": f"torch {torch.__version__}, {platform.processor() or platform.machine()}",
        "rounds": args.rounds, "steps_per_round": args.steps, "torch_compile": bool(cfg.torch_compile),
        "variants": rows, "floor_breakdown": breakdown,
    }
    if not args.no_run:
        result["train_py"] = train_py_figures(args, overrides, device)
    print_tables(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
