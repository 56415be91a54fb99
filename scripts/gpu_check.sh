#!/usr/bin/env bash
# Check the lab on a CUDA GPU: train each model a few hundred steps per precision, sample and evaluate the runs,
# and print training images/s per model and precision. For anyone with a GPU (CI stays CPU-only).
# Usage: scripts/gpu_check.sh [STEPS] [MODEL ...]     (default: 300 steps, every registered model)
#   PRECISIONS="fp32 bf16 fp16 auto"  which --precision values to try (bf16 is skipped below compute capability 8)
#   COMPILE=1                          also time `--precision auto --compile` (a minute or so of compiling first)
#   OUT=/tmp/dir KEEP=1                where the runs go (default: a temp folder, removed at the end unless KEEP)
#   DEVICE=cpu                         run the same checks on the CPU (to try the script; default cuda)
# Each model trains at the recipe of its committed default run (checkpoints/README.md), on mnist5k.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${1:-300}
shift || true

DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cuda ]; then
  if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: no CUDA GPU visible to torch ($("$PYTHON" -c 'import torch; print(torch.__version__)'))" >&2
    exit 2
  fi
  read -r GPU CAPABILITY < <("$PYTHON" -c "import torch; p = torch.cuda.get_device_properties(0); \
print(p.name.replace(' ', '_'), f'{p.major}.{p.minor}')")
else
  GPU="$DEVICE (no GPU check)" CAPABILITY=8.0
  PRECISIONS=${PRECISIONS:-"fp32 bf16 auto"}
fi
MODELS=("$@")
if [ ${#MODELS[@]} -eq 0 ]; then
  mapfile -t MODELS < <("$PYTHON" -c "from generators.registry import MODELS; print('\n'.join(MODELS))")
fi
PRECISIONS=${PRECISIONS:-"fp32 bf16 fp16 auto"}
if [ "${CAPABILITY%%.*}" -lt 8 ]; then
  PRECISIONS=${PRECISIONS//bf16/}  # no bf16 tensor cores before Ampere: emulated, slow
fi
OUT=${OUT:-$(mktemp -d)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$OUT"' EXIT
echo "GPU: $GPU (compute capability $CAPABILITY); $STEPS steps per run; runs in $OUT"

recipe() {  # recipe MODEL: the committed default run's options and batch size as flags (textbook defaults if none)
  "$PYTHON" - "$1" <<'EOF'
import sys

from generators.default_runs import default_recipe

found = default_recipe(sys.argv[1], "checkpoints")
flags = [] if found is None else ["--batch-size", str(found["batch_size"])]
for key, value in (found or {"options": {}})["options"].items():
    flag = "--" + key.replace("_", "-")
    flags += ([flag] if value else []) if isinstance(value, bool) else ([flag, str(value)] if value != "" else [])
print(" ".join(flags))
EOF
}

printf '\n%-8s %-14s %10s %8s %s\n' model setting "img/s" ran evaluation
for model in "${MODELS[@]}"; do
  flags=$(recipe "$model")
  settings=$PRECISIONS
  [ -n "${COMPILE:-}" ] && settings="$settings auto+compile"
  for setting in $settings; do
    precision=${setting%+compile}
    extra=()
    [ "$setting" != "$precision" ] && extra=(--compile)
    run="$model-${setting/+/-}"
    # shellcheck disable=SC2086 # the recipe is a list of words
    "$PYTHON" -m generators train "$model" $flags --steps "$STEPS" --device "$DEVICE" --precision "$precision" \
      "${extra[@]}" --out-dir "$OUT" --run-name "$run" --overwrite --quiet --progress-json "$OUT/$run.json" >/dev/null
    "$PYTHON" -m generators sample "$OUT/$run" --n 1000 --out "$OUT/$run.npy" >/dev/null
    score=$("$PYTHON" -m evaluation "$OUT/$run" --n 1000 --bootstrap 0 --json "$OUT/$run.scores.json" >/dev/null \
      && "$PYTHON" -c "import json, sys; row = json.load(open(sys.argv[1])); row = row[0] if isinstance(row, list) \
else row; print(' '.join(f'{k}={row[k]:.3g}' for k in ('fid_ratio', 'coverage', 'fid') if isinstance(row.get(k), \
(int, float))))" "$OUT/$run.scores.json" || echo "evaluation failed")
    read -r rate ran < <("$PYTHON" -c "import json, sys; from generators.checkpoints import read_run_info; \
print(f\"{json.load(open(sys.argv[1]))['img_per_s']:.0f}\", read_run_info(sys.argv[2])['train_precision'] \
+ ('+compiled' if read_run_info(sys.argv[2]).get('compiled') else ''))" "$OUT/$run.json" "$OUT/$run")
    printf '%-8s %-14s %10s %8s %s\n' "$model" "$setting" "$rate" "$ran" "$score"
  done
done
echo
echo "img/s: the harness's own figure for the whole run (first step included; a compiled run's compile time too)."
echo "Expect bf16 (compute capability >= 8.0) or fp16 to beat fp32, most at large batches (--batch-size); at the"
echo "default runs' batches (64-128) these small nets leave a GPU mostly waiting on Python, so the gaps are smaller."
