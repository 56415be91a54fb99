#!/usr/bin/env bash
# Regenerate the committed default runs in checkpoints/ (see checkpoints/README.md): train each recipe,
# drop its resume.pt (optimizer state, not committed), then store its evaluation rows in metrics.json.
# Usage: scripts/make_checkpoints.sh [--evaluate-only] [RUN ...]   (default: all four runs)
#   --evaluate-only  keep the trained weights, only recompute metrics.json (e.g. after the extractor changed)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-checkpoints}
# One thread per run: on a 2-core machine shared with other work, two OpenMP threads per process
# spin against each other and run several times slower than one.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

declare -A RECIPE=(
  [vae-mnist5k]="vae --steps 2000 --batch-size 128 --seed 0"
  [vae-beta4-mnist5k]="vae --beta 4 --steps 2000 --batch-size 128 --seed 0"
  [ae-mnist5k]="ae --steps 2000 --batch-size 128 --seed 0"
  [dcgan-mnist5k]="dcgan --ema 0.99 --steps 560 --batch-size 64 --seed 0"
)
ORDER=(vae-mnist5k vae-beta4-mnist5k ae-mnist5k dcgan-mnist5k)

train() {  # train RUN: the recipe, from scratch, into $OUT/RUN
  local run=$1
  # shellcheck disable=SC2086 # the recipe is a list of words
  "$PYTHON" -m generators train ${RECIPE[$run]} --run "$run" --out-dir "$OUT" --overwrite --quiet
  rm -f "$OUT/$run/resume.pt"
}

evaluate() {  # evaluate RUN: the metrics.json rows that checkpoints/README.md and tests/test_default_runs.py use
  local dir=$OUT/$1
  "$PYTHON" -m evaluation "$dir" --n 5000 --seed 0 >/dev/null
  "$PYTHON" -m evaluation "$dir" --n 1000 --seed 0 >/dev/null  # the row the test re-evaluates
  if [ "${1%%-*}" != dcgan ]; then  # models with an encoder: fit, store and score the GMM latent sampler
    "$PYTHON" -m evaluation "$dir" --n 5000 --seed 0 --sampler gmm >/dev/null
  fi
  echo "evaluated $dir"
}

evaluate_only=0
if [ "${1:-}" = --evaluate-only ]; then evaluate_only=1; shift; fi
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=("${ORDER[@]}")
for run in "${runs[@]}"; do
  [ -n "${RECIPE[$run]:-}" ] || { echo "error: unknown default run $run (one of ${ORDER[*]})" >&2; exit 2; }
done
for run in "${runs[@]}"; do
  if [ $evaluate_only = 1 ]; then rm -f "$OUT/$run/metrics.json"; else train "$run"; fi
  evaluate "$run"
done
