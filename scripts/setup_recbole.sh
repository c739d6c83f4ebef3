#!/usr/bin/env bash
# Create .venv-recbole with RecBole 1.2.1, the peer of benchmarks/recbole_peers.py.
# RecBole gets its own virtualenv: 1.2.1 still uses np.float_ (removed in numpy 2) while genrec
# runs on numpy 2. RecBole is installed without its declared dependencies because two of them
# are only for hyper-parameter search and FLOP counting (ray <= 2.6.3, thop), which the runner
# never imports; the ones it does import are pinned below. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${RECBOLE_VENV:-.venv-recbole}"
stamp="$venv/.installed-recbole-1.2.1"
[ -f "$stamp" ] && [ "$stamp" -nt "$0" ] && exit 0
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch pinned at the CPU build (anything else pulls GBs of CUDA packages).
"$venv/bin/python" -m pip install --quiet "torch==2.13.0" "numpy==1.26.4" "pandas==2.2.3" \
  "scipy==1.17.1" "scikit-learn==1.9.1" "tqdm==4.70.1" "colorlog==4.7.2" "colorama==0.4.4" \
  "pyyaml==6.0.3" "tensorboard==2.21.0" "tabulate==0.10.0" "texttable==1.7.2" "psutil==7.2.2"
"$venv/bin/python" -m pip install --quiet --no-deps "recbole==1.2.1"
"$venv/bin/python" -c "import recbole.trainer, recbole.data, recbole.model"
touch "$stamp"
