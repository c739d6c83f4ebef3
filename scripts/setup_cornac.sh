#!/usr/bin/env bash
# Create .venv-cornac with Cornac 3.0.1 and Flask, the peer server of benchmarks/serving.py
# (`--cornac`): Cornac serves one saved model through its Flask app (cornac.serving.app). Cornac
# gets its own virtualenv so that its pins never move genrec's. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CORNAC_VENV:-.venv-cornac}"
stamp="$venv/.installed-cornac-3.0.1"
[ -f "$stamp" ] && [ "$stamp" -nt "$0" ] && exit 0
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "cornac==3.0.1" "flask==3.1.2" "numpy<3" "scipy"
"$venv/bin/python" -c "import cornac, flask, cornac.serving.app"
touch "$stamp"
