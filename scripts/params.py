"""Parameter counts and training FLOPs/token of every FFN variant, without training; with an experiment, what
the study costs before it is submitted.

    python scripts/params.py [hydra overrides, e.g. model=base]   # a table
    python scripts/params.py model.d_model=512 --json             # a list of objects
    python scripts/params.py experiment=glu_variants              # + training FLOPs and GPU-hours, per run and sweep
"""

import argparse
import json
import sys

from ffnlab.compose import compose_config, model_config
from ffnlab.config import to_dataclass
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from ffnlab.errors import ConfigError, one_line
from ffnlab.ffn import VARIANTS, FFNConfig
from ffnlab.hardware import bf16_peak
from ffnlab.sizes import STAT_KEYS, model_stats


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (the ffn choice is ignored: all variants)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    args = parser.parse_args(argv)
    try:
        rows = []
        for name in VARIANTS:
            cfg = compose_config([*args.overrides, f"ffn={name}"])
            stats = model_stats(model_config(cfg), to_dataclass(FFNConfig, cfg.ffn))
            rows.append({"ffn": name, **stats})
    except (ConfigError, HydraException, OmegaConfBaseException) as error:  # one line, as train.py says it
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    try:
        cost = study_cost(args.overrides) if any(o.startswith("experiment=") for o in args.overrides) else None
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


# Dense bf16 peaks from ffnlab.hardware (the vendors' data sheets, no sparsity).
PEAK_TFLOPS = {gpu: bf16_peak(gpu)[1] / 1e12 for gpu in ("H100", "A100")}
MFU = 0.40


def study_cost(overrides: list[str]) -> dict:
    """Training FLOPs (flops_per_token x tokens, 6N + attention: ffnlab.sizes) and GPU-hours at 40% MFU of every
    point of the sweep; evaluation passes are not counted."""
    from ffnlab.budget import apply_budget, world_size
    from ffnlab.compose import sweep_points

    runs = []
    for point in sweep_points(overrides):
        cfg = compose_config(point)
        apply_budget(cfg)
        world = world_size(cfg.trainer)
        global_batch = cfg.data.batch_size * world * int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
        tokens = int(cfg.trainer.max_steps) * global_batch * int(cfg.model.seq_len)
        stats = model_stats(model_config(cfg), to_dataclass(FFNConfig, cfg.ffn))
        flops = stats["flops_per_token"] * tokens
        runs.append({"point": " ".join(point), "ffn": cfg.ffn.name, "steps": int(cfg.trainer.max_steps),
                     "tokens": tokens, "training_flops": flops,
                     **{f"gpu_hours_{gpu}": flops / (MFU * peak * 1e12) / 3600 for gpu, peak in PEAK_TFLOPS.items()}})
    total = {key: sum(run[key] for run in runs) for key in ("tokens", "training_flops", *(f"gpu_hours_{g}" for g in
                                                                                         PEAK_TFLOPS))}
    return {"mfu": MFU, "peak_tflops": PEAK_TFLOPS, "runs": runs, "total": total, "n_runs": len(runs)}


def print_cost(cost: dict) -> None:
    print(f"\n{cost['n_runs']} run(s); GPU-hours at {cost['mfu']:.0%} MFU of one GPU's dense bf16 peak "
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
