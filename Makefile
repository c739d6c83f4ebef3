# The two commands of the README. Each creates .venv and installs what it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
GENREC := $(VENV)/bin/genrec

.PHONY: run test test-fast lint benchmarks setup clean

setup:
	bash scripts/setup.sh dev,llm,faiss,serve,multimodal,scale,track

# Fetch MovieLens-100K and run experiments/run.toml: the baselines, the generative models of
# interactions and text retrieval under the holdout protocol; writes reports/results.json,
# reports/ml-100k-holdout.md/.html and the ranked lists (edit or copy the file for other runs).
EXPERIMENT ?= experiments/run.toml
run: setup
	$(GENREC) data fetch ml-100k
	$(GENREC) run $(EXPERIMENT)

# The test suite (tiny synthetic data plus a few end-to-end checks on MovieLens-100K). RecBole,
# the peer, gets its own .venv-recbole (it needs numpy < 2): the tests run it through the bridge
# of benchmarks/recbole_peers.py.
test: setup lint
	bash scripts/setup_recbole.sh
	bash scripts/setup_browser.sh
	$(PY) -m pytest

# The inner loop: the same suite without the end-to-end MovieLens-100K tests (marked slow in
# tests/conftest.py). Pass more pytest options with ARGS="...".
test-fast: setup lint
	bash scripts/setup_browser.sh
	$(PY) -m pytest -m "not slow" $(ARGS)

# Ruff lint and format checks (configured in pyproject.toml).
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

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
	$(PY) benchmarks/rerank.py
	$(PY) benchmarks/explain.py
	$(PY) benchmarks/ddp.py
	$(PY) benchmarks/sampled_softmax.py
	$(PY) benchmarks/recbole_sequence_peers.py --work .bench/sequence-peers
	$(PY) benchmarks/recbole_sequence_peers.py --work .bench/sequence-peers --render
	$(PY) benchmarks/tuning.py
	$(PY) benchmarks/rerank_rag.py
	$(PY) benchmarks/llm_features.py
	$(PY) benchmarks/conversational.py --lm transformers:smollm2-135m --lm-users 20
	$(PY) benchmarks/conversational_simulators.py
	$(PY) benchmarks/audit.py --part id
	$(PY) benchmarks/audit.py --part lm
	$(PY) benchmarks/audit.py --part injection
	$(PY) benchmarks/audit.py --part fairness-llm
	$(PY) benchmarks/audit.py --part text-attack
	$(PY) benchmarks/audit.py --part canary
	$(PY) benchmarks/audit.py --part write
	$(PY) benchmarks/multimodal.py
	$(PY) benchmarks/multimodal_alignment.py
	$(PY) benchmarks/multimodal_generation.py
	$(PY) benchmarks/serving.py --rates 50,200,500 --seconds 10 --workers 1,2 --write
	$(PY) benchmarks/threads.py
	$(PY) benchmarks/precision.py
	$(PY) benchmarks/search.py --trials ease=30,multvae=10 --write
# Not here: serving_peers.py needs bash scripts/setup_cornac.sh; scale_data.py, scale_models.py,
# eval_speed.py and ddp at scale write millions of rows first (commands in docs/scale.md).

clean:
	rm -rf $(VENV) reports artifacts .pytest_cache
