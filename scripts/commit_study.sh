#!/usr/bin/env bash
# Copy a study's finished (and failed) run records, not checkpoints, into docs/results/<study>/runs/ and regenerate
# its report there:
#   bash scripts/commit_study.sh glu_variants_quick [outputs] [name in docs/results, default the study's]
# The report in docs/results/<study>/ is then what `python scripts/compare.py docs/results/<study>/runs
# --out docs/results/<study>` regenerates, byte for byte. Finished records already committed are kept; a later
# sitting adds its points (sweeps skip finished points, so copy the committed runs back into outputs/ to resume).
set -euo pipefail
cd "$(dirname "$0")/.."
study=$1
outputs=${2:-${FFNLAB_OUTPUT_DIR:-outputs}}
PY=${PY:-.venv/bin/python}
dest=docs/results/${3:-$study}
mkdir -p "$dest/runs"
for run in "$outputs/$study"/*/; do
  name=$(basename "$run")
  # Finished or failed points only: an unfinished one (running, interrupted, no record) is resumed from its
  # checkpoint, which is not committed, so its record would only say "unfinished".
  grep -qE '"status": "(finished|failed|diverged)"' "$run/metrics.json" 2>/dev/null || continue
  mkdir -p "$dest/runs/$name/csv"
  for f in metrics.json config.yaml csv/metrics.csv; do
    [ -f "$run/$f" ] && cp "$run/$f" "$dest/runs/$name/$f"
  done
  # lm-eval's results of the run (scripts/evaluate.py), not its per-request samples
  for results in "$run"eval/*/results_*.json; do
    [ -f "$results" ] || continue
    mkdir -p "$dest/runs/$name/eval/$(basename "$(dirname "$results")")"
    cp "$results" "$dest/runs/$name/eval/$(basename "$(dirname "$results")")/"
  done
  # Paths are bookkeeping (not part of a run's identity): the committed record names this checkout's root <repo>
  grep -rlF "$PWD" "$dest/runs/$name" | xargs -r sed -i "s|$PWD|<repo>|g"
done
find "$dest" -maxdepth 1 -type f ! -name PLAN.md ! -name README.md -delete  # the previous report (not its notes)
"$PY" scripts/compare.py "$dest/runs" --out "$dest"
