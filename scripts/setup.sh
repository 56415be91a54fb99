#!/usr/bin/env bash
# Create .venv and install the runtime (and, with --dev, the test) requirements. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
NEED_GB=8  # the venv holds ~6.5 GB (torch 2.14.1's CUDA build), and pip unpacks wheels beside it
if [ ! -x .venv/bin/python ]; then
  free_gb=$(df -Pk . | awk 'NR == 2 {print int($4 / 1048576)}')
  if [ "$free_gb" -lt "$NEED_GB" ]; then
    echo "setup: about ${NEED_GB} GB of free disk space is needed for .venv; ${free_gb} GB are free here" >&2
    exit 2
  fi
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install -q -r requirements-dev.txt
else
  .venv/bin/python -m pip install -q -r requirements.txt
fi
