"""Score a checkpoint with lm-evaluation-harness (needs the eval extra: pip install -e ".[eval]").

    python scripts/evaluate.py outputs/glu_variants_quick/ffn=swiglu,seed=0 --tasks shakespeare_next_line
    python scripts/evaluate.py exported/swiglu --tasks shakespeare_next_line     # an HF model dir (export_hf.py)
    python scripts/evaluate.py RUN_DIR --tasks hellaswag,arc_easy --num_fewshot 0  # hub tasks: reviewed, not run here
    python scripts/evaluate.py outputs/glu_variants_quick --tasks shakespeare_next_line  # every finished run of a sweep

PATH is an ffnlab run directory (any of the 18 variants, scored by ffnlab's own model and tokenizer), an HF model
directory (lm-eval's `hf` model), or a sweep directory: then every finished run under it is scored in turn, and a run
whose eval/ already holds these tasks at these settings is skipped (--force scores it again), as a re-run sweep skips
its finished points. Tasks defined in this repository (src/ffnlab/downstream/tasks/: shakespeare_next_line)
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
    parser.add_argument("--force", action="store_true", help="a sweep: score runs already scored too")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        print(f"error: --limit={args.limit}: give a number of documents >= 1, or a fraction in (0, 1)", file=sys.stderr)
        return 2
    try:
        from lm_eval.utils import make_table

        from ffnlab.downstream.harness import already_scored, evaluate, finished_run_dirs, is_hf_dir, is_run_dir
    except ModuleNotFoundError as missing:
        print(f"error: {missing.name} is not installed: scripts/evaluate.py needs the eval extra "
              '(pip install -e ".[eval]")', file=sys.stderr)
        return 2
    tasks = [task for task in args.tasks.split(",") if task]
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    runs = [args.path]
    if args.path.is_dir() and not (is_run_dir(args.path) or is_hf_dir(args.path)):
        runs = finished_run_dirs(args.path)
        if not runs:
            print(f"error: {args.path} is neither an ffnlab run dir (no checkpoints/last.ckpt), nor an HF model dir (no "
                  "config.json), nor a sweep holding a finished run: give one of these", file=sys.stderr)
            return 2
        if args.out is not None:
            print("error: --out is for one run; a sweep's runs write into their own eval/", file=sys.stderr)
            return 2
    for path in runs:
        if len(runs) > 1 and not args.force and already_scored(path, tasks, args.num_fewshot, limit):
            print(f"{path}: already scored on {','.join(tasks)}, skipped (--force scores it again)")
            continue
        try:
            results = evaluate(path, tasks, args.num_fewshot, limit, args.out, args.batch_size)
        except (FileNotFoundError, ValueError, KeyError) as error:
            print(f"error: {str(error).strip()}", file=sys.stderr)
            return 2
        if results:
            print(make_table(results))
            print(f"results: {args.out or path / 'eval'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
