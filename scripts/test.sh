#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Exit 5 from pytest ("no tests ran") counts as failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
