#!/usr/bin/env bash
# Copy a study's finished (and failed) run records, not checkpoints, into docs/results/<study>/runs/ and regenerate
# its report there:
#   bash scripts/commit_study.sh glu_variants_quick [outputs]
# The report in docs/results/<study>/ is then what `python scripts/compare.py docs/results/<study>/runs
# --out docs/results/<study>` regenerates, byte for byte. Finished records already committed are kept; a later
# sitting adds its points (sweeps skip finished points, so copy the committed runs back into outputs/ to resume).
set -euo pipefail
cd "$(dirname "$0")/.."
study=$1
outputs=${2:-${FFNLAB_OUTPUT_DIR:-outputs}}
PY=${PY:-.venv/bin/python}
dest=docs/results/$study
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
  # Paths are bookkeeping (not part of a run's identity): the committed record names this checkout's root <repo>
  [ -f "$dest/runs/$name/config.yaml" ] && sed -i "s|$PWD|<repo>|g" "$dest/runs/$name/config.yaml"
done
find "$dest" -maxdepth 1 -type f ! -name PLAN.md -delete  # the previous report: every file is regenerated
"$PY" scripts/compare.py "$dest/runs" --out "$dest"
