# The two commands of the README. Each creates .venv and installs what it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
GENREC := $(VENV)/bin/genrec
OUT ?= reports

.PHONY: run test benchmarks setup clean

setup:
	bash scripts/setup.sh dev,llm,faiss,serve

# Fetch MovieLens-100K and benchmark the baselines, the generative models of interactions and
# text retrieval under the holdout protocol; writes $(OUT)/results.json, $(OUT)/ml-100k-holdout.md/.html and
# the ranked lists.
MODELS ?= pop,itemknn,ease,bpr,multdae,cdae,multvae,recvae,diffrec,dense,bm25
run: setup
	$(GENREC) data fetch ml-100k
	$(GENREC) benchmark --dataset ml-100k --split holdout --models $(MODELS) \
	  --k 10,20 --seed 2020 --output $(OUT)/results.json --report $(OUT)/ml-100k-holdout \
	  --save-rankings $(OUT)/rankings.csv

# The test suite (tiny synthetic data plus a few end-to-end checks on MovieLens-100K). RecBole,
# the peer, gets its own .venv-recbole (it needs numpy < 2): the tests run it through the bridge
# of benchmarks/recbole_peers.py.
test: setup
	bash scripts/setup_recbole.sh
	$(PY) -m pytest

# Slower measurements that write BENCHMARKS.md and the README's table (not part of CI).
# llama.cpp (compiled from source, AMX kernels off: they crash on some virtual CPUs) is measured
# beside transformers.
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
benchmarks: setup
	CMAKE_ARGS="$(LLAMA_CMAKE)" bash scripts/setup.sh dev,llm,faiss,serve,llamacpp
	$(PY) benchmarks/run_all.py
	bash scripts/setup_recbole.sh
	$(PY) benchmarks/recbole_peers.py
	$(PY) benchmarks/generative.py
	$(PY) benchmarks/sequential.py
	$(PY) benchmarks/retrieval.py
	$(PY) benchmarks/language_models.py
	$(PY) benchmarks/llm.py
	$(PY) benchmarks/explain.py

clean:
	rm -rf $(VENV) $(OUT) artifacts .pytest_cache
