#!/usr/bin/env bash
# Create .venv (if missing) and install genrec with the extras given (default: dev).
# Idempotent: a second run with an unchanged pyproject.toml does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
venv="${VENV:-.venv}"
stamp="$venv/.installed-$extras"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch first and pinned: 2.13.0 is the CPU build; anything else pulls GBs of CUDA packages.
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet -e ".[$extras]"
touch "$stamp"
