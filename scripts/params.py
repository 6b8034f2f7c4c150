"""Parameter counts and training FLOPs/token of every FFN variant, without training; with an experiment, what
the study costs before it is submitted.

    python scripts/params.py [hydra overrides, e.g. model=base]   # a table
    python scripts/params.py model.d_model=512 --json             # a list of objects
    python scripts/params.py experiment=glu_variants              # + training FLOPs and GPU-hours, per run and sweep
"""

import argparse
import json
import sys

from ffnlab.config.compose import compose_config, model_config
from ffnlab.config.schemas import to_dataclass
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from ffnlab.config.errors import ConfigError, one_line
from ffnlab.model.ffn import VARIANTS, FFNConfig
from ffnlab.runs.hardware import bf16_peak
from ffnlab.model.sizes import STAT_KEYS, model_stats
from ffnlab.config.validate import validate


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (the ffn choice is ignored: all variants)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument("--mfu", type=float, default=None, help="the MFU to cost the study at (a fraction), e.g. "
                        "what scripts/benchmark.py prints for the same overrides on the cluster's GPU; default: "
                        "ASSUMED_MFU for the config's torch_compile")
    args = parser.parse_args(argv)
    try:
        rows = []
        for name in VARIANTS:
            cfg = compose_config([*args.overrides, f"ffn={name}"])
            validate(cfg)  # every key, as train.py checks it, before the vocabulary is read from the data
            stats = model_stats(model_config(cfg), to_dataclass(FFNConfig, cfg.ffn))
            rows.append({"ffn": name, **stats})
    except (ConfigError, HydraException, OmegaConfBaseException) as error:  # one line, as train.py says it
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    try:
        experiment = any(o.startswith("experiment=") for o in args.overrides)
        cost = study_cost(args.overrides, args.mfu) if experiment else None
    except (ConfigError, HydraException, OmegaConfBaseException) as error:  # one line, as train.py says it
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows if cost is None else {"variants": rows, "study": cost}, indent=2))
        return 0
    print(f"{'ffn':<12}" + "".join(f"{k:>22}" for k in STAT_KEYS))
    for row in rows:
        print(f"{row['ffn']:<12}" + "".join(f"{row[k]:>22,}" for k in STAT_KEYS))
    if cost is not None:
        print_cost(cost)
    return 0


# Dense bf16 peaks from ffnlab.runs.hardware (the vendors' data sheets, no sparsity).
PEAK_TFLOPS = {gpu: bf16_peak(gpu)[1] / 1e12 for gpu in ("H100", "A100")}
# The MFU a study is costed at without --mfu, by the config's torch_compile (ffnlab.model.decoder.compile_blocks), the
# setting scripts/benchmark.py measures it at: with the same overrides on the cluster's GPU it prints the MFU to pass
# as --mfu. Until ffnlab has such a measurement (no GPU here), the figures are torchtitan's for FSDP2 bf16 training
# of Llama 3.1 8B on 8 and 128 H100s (docs/performance.md, torchtitan 9dec370, 2024-12): "33% to 39% MFU", eager
# to compiled as its Table 1 orders them (6,667 tokens/s compiled against 5,762 eager, 1.16x).
ASSUMED_MFU = {True: 0.39, False: 0.33}


def study_cost(overrides: list[str], mfu: float | None = None) -> dict:
    """Training FLOPs (flops_per_token x tokens, 6N + attention: ffnlab.model.sizes) and GPU-hours at `mfu` (default:
    ASSUMED_MFU for the config's compile setting) of every point of the sweep; evaluation passes are not counted."""
    from ffnlab.distributed.budget import apply_budget, world_size
    from ffnlab.config.compose import sweep_points

    runs, compiled = [], set()
    for point in sweep_points(overrides):
        cfg = compose_config(point)
        compiled.add(bool(cfg.torch_compile))
        apply_budget(cfg)
        world = world_size(cfg.trainer)
        global_batch = cfg.data.batch_size * world * int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
        tokens = int(cfg.trainer.max_steps) * global_batch * int(cfg.model.seq_len)
        stats = model_stats(model_config(cfg), to_dataclass(FFNConfig, cfg.ffn))
        flops = stats["flops_per_token"] * tokens
        runs.append({"point": " ".join(point), "ffn": cfg.ffn.name, "steps": int(cfg.trainer.max_steps),
                     "tokens": tokens, "training_flops": flops,
                     "flops": flops})
    assumed = mfu is None
    if assumed:  # a sweep over torch_compile is costed at the lower assumption
        mfu = min(ASSUMED_MFU[c] for c in compiled)
    for run in runs:
        flops = run.pop("flops")
        run |= {f"gpu_hours_{gpu}": flops / (mfu * peak * 1e12) / 3600 for gpu, peak in PEAK_TFLOPS.items()}
    total = {key: sum(run[key] for run in runs) for key in ("tokens", "training_flops", *(f"gpu_hours_{g}" for g in
                                                                                         PEAK_TFLOPS))}
    return {"mfu": mfu, "mfu_assumed": assumed, "torch_compile": sorted(compiled), "peak_tflops": PEAK_TFLOPS,
            "runs": runs, "total": total, "n_runs": len(runs)}


def print_cost(cost: dict) -> None:
    compile_text = "/".join(str(c).lower() for c in cost["torch_compile"])
    source = "--mfu" if not cost["mfu_assumed"] else "assumed: ASSUMED_MFU; measure it with scripts/benchmark.py"
    print(f"\n{cost['n_runs']} run(s), torch_compile={compile_text}; GPU-hours at {cost['mfu']:.0%} MFU ({source}) of "
          "one GPU's dense bf16 peak "
          f"({', '.join(f'{g} {p:.0f} TFLOP/s' for g, p in cost['peak_tflops'].items())}); evaluation not counted")
    gpus = list(cost["peak_tflops"])
    print(f"{'ffn':<12}{'steps':>8}{'tokens':>18}{'training FLOPs':>18}" + "".join(f"{g + ' h':>12}" for g in gpus))
    seen = set()
    for run in cost["runs"]:
        if run["ffn"] in seen:  # seeds of one variant cost the same
            continue
        seen.add(run["ffn"])
        print(f"{run['ffn']:<12}{run['steps']:>8,}{run['tokens']:>18,}{run['training_flops']:>18.3e}"
              + "".join(f"{run[f'gpu_hours_{g}']:>12.1f}" for g in gpus))
    total = cost["total"]
    print(f"{'sweep':<12}{'':>8}{total['tokens']:>18,}{total['training_flops']:>18.3e}"
          + "".join(f"{total[f'gpu_hours_{g}']:>12.1f}" for g in gpus))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
