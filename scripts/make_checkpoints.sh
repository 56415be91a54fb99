#!/usr/bin/env bash
# Regenerate the committed default runs in checkpoints/ (see checkpoints/README.md): train each recipe,
# drop its resume.pt (optimizer state, not committed), then store its evaluation rows in metrics.json (and, for the
# conditional runs, the augmentation experiment's augmentation.json; for the mnist5k runs with an encoder, the
# compression experiment's compression.json).
# Usage: scripts/make_checkpoints.sh [--evaluate-only] [RUN ...]   (default: all ten runs)
#   --evaluate-only  keep the trained weights, only recompute metrics.json (e.g. after the extractor changed)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-checkpoints}
# The runs train one after another, each on all cores (the budgets were set on a 2-core CPU). The thread
# count changes float rounding, so it is fixed: the same command on the same machine gives the same weights.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# The VAE family shares one architecture (z = 8, one extra 3x3 conv per stage), so β and the KL term are
# the only differences between them; the DCGAN is a narrow one trained fast (lr 2e-3) with an EMA of G.
VAE_NETS="--latent-dim 8 --extra-convs 1 --batch-size 128 --seed 0 --steps 2500"
GAN_NETS="--g-width 32 --d-width 32 --lr-g 2e-3 --lr-d 2e-3 --ema 0.995 --latent-dim 8 --batch-size 64 --seed 0"
# The conditional runs (cvae, cdcgan) use the same nets and options as their unconditional twins.
# The sprites runs (known factors, for the disentanglement metrics): the plain nets (no extra conv), batch 64.
SPRITE_NETS="--dataset sprites --latent-dim 8 --batch-size 64 --seed 0"
declare -A RECIPE=(
  [vae-mnist5k]="vae $VAE_NETS"
  [vae-beta4-mnist5k]="vae --beta 4 $VAE_NETS"
  [ae-mnist5k]="ae $VAE_NETS"
  [dcgan-mnist5k]="dcgan $GAN_NETS --steps 3500"
  [cvae-mnist5k]="cvae $VAE_NETS"
  [cdcgan-mnist5k]="cdcgan $GAN_NETS --steps 2500"
  [vae-sprites]="vae $SPRITE_NETS --steps 1500"
  [vae-beta4-sprites]="vae --beta 4 $SPRITE_NETS --steps 1500"
  [ae-sprites]="ae $SPRITE_NETS --steps 1500"
  [dcgan-sprites]="dcgan --g-width 32 --d-width 32 --lr-g 2e-3 --lr-d 2e-3 --ema 0.995 $SPRITE_NETS --steps 1500"
)
ORDER=(vae-mnist5k vae-beta4-mnist5k ae-mnist5k dcgan-mnist5k cvae-mnist5k cdcgan-mnist5k
  vae-sprites vae-beta4-sprites ae-sprites dcgan-sprites)
# The sprites runs were trained with one thread (on a machine shared with other jobs, where a second thread
# mostly waits); the thread count is part of the recipe (it changes float rounding).
declare -A THREADS=([vae-sprites]=1 [vae-beta4-sprites]=1 [ae-sprites]=1 [dcgan-sprites]=1)
# the fitted latent samplers each run is also scored with (they need an encoder; see generators/samplers.py)
declare -A FITTED=(
  [vae-mnist5k]="gmm two-stage"
  [vae-beta4-mnist5k]="gmm"
  [ae-mnist5k]="gmm"
  [cvae-mnist5k]="gmm two-stage"
)
# the class-conditional runs: does adding their generated images help a classifier trained on few real ones?
declare -A AUGMENT=([cvae-mnist5k]=1 [cdcgan-mnist5k]=1)
# the mnist5k runs with an encoder: bits per image against distortion, beside JPEG, WebP and PNG
declare -A COMPRESS=([vae-mnist5k]=1 [vae-beta4-mnist5k]=1 [ae-mnist5k]=1 [cvae-mnist5k]=1)

train() {  # train RUN: the recipe, from scratch, into $OUT/RUN
  local run=$1
  # shellcheck disable=SC2086 # the recipe is a list of words
  OMP_NUM_THREADS=${THREADS[$run]:-$OMP_NUM_THREADS} \
    "$PYTHON" -m generators train ${RECIPE[$run]} --run "$run" --out-dir "$OUT" --overwrite --quiet
  rm -f "$OUT/$run/resume.pt"
}

evaluate() {  # evaluate RUN: the metrics.json rows that checkpoints/README.md and tests/test_default_runs.py use
  local dir=$OUT/$1
  local -x OMP_NUM_THREADS=${THREADS[$1]:-$OMP_NUM_THREADS}  # scored with the thread count it was trained with
  "$PYTHON" -m evaluation "$dir" --n 5000 --seed 0 >/dev/null
  "$PYTHON" -m evaluation "$dir" --n 1000 --seed 0 >/dev/null  # the row the test re-evaluates
  for sampler in ${FITTED[$1]:-}; do  # fit, store and score the run's fitted latent samplers
    "$PYTHON" -m evaluation "$dir" --n 5000 --seed 0 --sampler "$sampler" >/dev/null
  done
  if [ -n "${AUGMENT[$1]:-}" ]; then  # the augmentation experiment's augmentation.json (k = 10 50 100, seeds 0 1 2)
    rm -f "$dir/augmentation.json"
    "$PYTHON" -m evaluation augment "$dir" >/dev/null
  fi
  if [ -n "${COMPRESS[$1]:-}" ]; then  # compression.json (500 test images, the default steps and codecs)
    "$PYTHON" -m evaluation compress "$dir" --no-cache >/dev/null
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
