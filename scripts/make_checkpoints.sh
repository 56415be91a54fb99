#!/usr/bin/env bash
# Regenerate the committed default runs in checkpoints/ (see checkpoints/README.md): train each recipe,
# drop its resume.pt (optimizer state, not committed), then store its evaluation rows in metrics.json (and, for the
# conditional runs, the augmentation experiment's augmentation.json; for the mnist5k runs with an encoder, the
# compression experiment's compression.json). The runs, their recipes, thread counts, fitted samplers and
# experiments are defined once, in generators/default_runs.py; this script reads them from there.
# Usage: scripts/make_checkpoints.sh [--evaluate-only] [--dry-run] [RUN ...]   (default: every default run)
#   --evaluate-only  keep the trained weights, only recompute metrics.json (e.g. after the extractor changed)
#   --dry-run        print the commands (a script that does the same) instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-checkpoints}

default_run() {  # default_run names | default_run FIELD RUN: generators/default_runs.py's answer
  "$PYTHON" -m generators.default_runs "$@"
}

show() {  # print a command, quoted as a shell reads it back
  local words
  printf -v words '%q ' "$@"
  echo "${words% }"
}

run() {  # a command of the current run, with the run's thread count (it changes float rounding); --dry-run: show it
  if [ $dry_run = 1 ]; then show OMP_NUM_THREADS="$threads" "$@"; else OMP_NUM_THREADS=$threads "$@"; fi
}

quietly() {  # run, without the command's table on the terminal
  if [ $dry_run = 1 ]; then run "$@"; else run "$@" >/dev/null; fi
}

remove() {
  if [ $dry_run = 1 ]; then show rm -f "$@"; else rm -f "$@"; fi
}

train() {  # train RUN: the recipe, from scratch, into $OUT/RUN
  local recipe
  recipe=$(default_run recipe "$1")
  # shellcheck disable=SC2086 # the recipe is a list of words
  run "$PYTHON" -m generators train $recipe --run "$1" --out-dir "$OUT" --overwrite --quiet
  remove "$OUT/$1/resume.pt"
}

evaluate() {  # evaluate RUN: the metrics.json rows that checkpoints/README.md and tests/test_default_runs.py use
  local dir=$OUT/$1
  quietly "$PYTHON" -m evaluation "$dir" --n 5000 --seed 0
  quietly "$PYTHON" -m evaluation "$dir" --n 1000 --seed 0  # the row the test re-evaluates
  for sampler in $(default_run samplers "$1"); do  # fit, store and score the run's fitted latent samplers
    quietly "$PYTHON" -m evaluation "$dir" --n 5000 --seed 0 --sampler "$sampler"
  done
  if [ "$(default_run augment "$1")" = yes ]; then  # augmentation.json (k = 10 50 100, seeds 0 1 2)
    remove "$dir/augmentation.json"
    quietly "$PYTHON" -m evaluation augment "$dir"
  fi
  if [ "$(default_run compress "$1")" = yes ]; then  # compression.json (500 test images, the default steps and codecs)
    quietly "$PYTHON" -m evaluation compress "$dir" --no-cache
  fi
  [ $dry_run = 1 ] || echo "evaluated $dir"
}

evaluate_only=0
dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    --evaluate-only) evaluate_only=1 ;;
    --dry-run) dry_run=1 ;;
    *) break ;;
  esac
  shift
done
mapfile -t all < <(default_run names)
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=("${all[@]}")
for run in "${runs[@]}"; do
  [[ " ${all[*]} " == *" $run "* ]] || { echo "error: unknown default run $run (one of ${all[*]})" >&2; exit 2; }
done
for run in "${runs[@]}"; do
  threads=$(default_run threads "$run")  # trained and scored with the same count
  if [ $evaluate_only = 1 ]; then remove "$OUT/$run/metrics.json"; else train "$run"; fi
  evaluate "$run"
done
