"""Compare the FFN variants of a finished (or partly finished) sweep from its run records.

    python scripts/compare.py outputs/glu_variants_quick [--out DIR] [--wandb]

Writes comparison.md, comparison.csv, report.json and PNG plots. Runs that are unfinished, failed
or have a corrupt metrics.json are listed in the report, never dropped silently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ffnlab.report import DEFAULT_OUT, write_report
from ffnlab.report.records import find_run_dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="sweep output dir; run dirs are found recursively")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where to write the report (default: SWEEP_DIR/{DEFAULT_OUT}/)")
    parser.add_argument("--wandb", action="store_true",
                        help="also log tables and plots to a wandb run (project from the runs' logger.wandb.project, "
                        "else ffnlab; group = experiment; job_type = report); honours WANDB_MODE, e.g. offline")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    if not find_run_dirs(args.sweep_dir):
        print(f"warning: no run records (<run dir>/metrics.json or config.yaml) under {args.sweep_dir}; nothing to "
              "compare (give a sweep dir, e.g. outputs/<experiment_name>)", file=sys.stderr)
        return 1
    out_dir = args.out or args.sweep_dir / DEFAULT_OUT
    report = write_report(args.sweep_dir, out_dir, use_wandb=args.wandb)
    print(f"{len(report['groups'])} group(s), {len(report['problems'])} run(s) not used -> {out_dir / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
