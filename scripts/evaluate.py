"""Score a checkpoint with lm-evaluation-harness (needs the eval extra: pip install -e ".[eval]").

    python scripts/evaluate.py outputs/glu_variants_quick/ffn=swiglu,seed=0 --tasks shakespeare_next_line
    python scripts/evaluate.py exported/swiglu --tasks shakespeare_next_line     # an HF model dir (export_hf.py)
    python scripts/evaluate.py RUN_DIR --tasks hellaswag,arc_easy --num_fewshot 0  # hub tasks: reviewed, not run here

PATH is an ffnlab run directory (any of the 18 variants, scored by ffnlab's own model and tokenizer) or an HF model
directory (lm-eval's `hf` model). Tasks defined in this repository (src/ffnlab/downstream/tasks/: shakespeare_next_line)
run offline; any lm-eval task runs where the hub is reachable. It prints lm-eval's table and writes lm-eval's results
(`results_<time>.json`, and the per-request samples) under --out (default: PATH/eval).
"""

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="an ffnlab run directory or an HF model directory")
    parser.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    parser.add_argument("--num_fewshot", type=int, default=None)
    parser.add_argument("--limit", type=float, default=None, help="documents per task (a fraction if < 1)")
    parser.add_argument("--out", type=Path, default=None, help="where lm-eval's results go (default: PATH/eval)")
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        print(f"error: --limit={args.limit}: give a number of documents >= 1, or a fraction in (0, 1)", file=sys.stderr)
        return 2
    try:
        from lm_eval.utils import make_table

        from ffnlab.downstream.harness import evaluate
    except ModuleNotFoundError as missing:
        print(f"error: {missing.name} is not installed: scripts/evaluate.py needs the eval extra "
              '(pip install -e ".[eval]")', file=sys.stderr)
        return 2
    tasks = [task for task in args.tasks.split(",") if task]
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    try:
        results = evaluate(args.path, tasks, args.num_fewshot, limit, args.out, args.batch_size)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"error: {str(error).strip()}", file=sys.stderr)
        return 2
    if results:
        print(make_table(results))
        print(f"results: {args.out or args.path / 'eval'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
