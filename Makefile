# The two commands of the README. Each creates .venv and installs what it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
GENREC := $(VENV)/bin/genrec
OUT ?= reports

.PHONY: run test benchmarks setup clean

setup:
	bash scripts/setup.sh dev,llm,faiss

# Fetch MovieLens-100K and benchmark the baselines and the generative models of interactions
# under the holdout protocol; writes $(OUT)/results.json, $(OUT)/ml-100k-holdout.md/.html and
# the ranked lists.
MODELS ?= pop,itemknn,ease,bpr,multdae,cdae,multvae,recvae,diffrec
run: setup
	$(GENREC) data fetch ml-100k
	$(GENREC) benchmark --dataset ml-100k --split holdout --models $(MODELS) \
	  --k 10,20 --seed 2020 --output $(OUT)/results.json --report $(OUT)/ml-100k-holdout \
	  --save-rankings $(OUT)/rankings.csv

# The test suite (tiny synthetic data plus a few end-to-end checks on MovieLens-100K).
test: setup
	$(PY) -m pytest

# Slower measurements that write BENCHMARKS.md and the README's table (not part of CI).
benchmarks: setup
	$(PY) benchmarks/run_all.py
	$(PY) benchmarks/generative.py
	$(PY) benchmarks/sequential.py

clean:
	rm -rf $(VENV) $(OUT) artifacts .pytest_cache
