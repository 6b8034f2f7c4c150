#!/usr/bin/env bash
# make demo: the quick GLU-variants study on the embedded data, then its report. Points that fail are
# reported as failed; the report is still written, and the script exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
sweep_dir=${FFNLAB_OUTPUT_DIR:-outputs}/glu_variants_quick  # where train.py puts the sweep (conf/train.yaml paths)
status=0
"$PY" train.py -m experiment=glu_variants_quick "$@" || status=$?
"$PY" scripts/compare.py "$sweep_dir" --out "$sweep_dir/report" || status=$?
[ -f "$sweep_dir/report/comparison.md" ] && cat "$sweep_dir/report/comparison.md"
exit $status
