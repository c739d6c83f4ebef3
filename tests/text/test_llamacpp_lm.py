"""LlamaCppLM: option checks always; the real Gemma GGUF when llama-cpp-python is installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from genrec.errors import ConfigError, MissingExtraError
from genrec.text.llamacpp_lm import LlamaCppLM
from genrec.text.lm import LanguageModel

HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(
    not HAVE_LLAMA_CPP,
    reason="llama-cpp-python is not installed (pip install 'genrec[llamacpp]'; "
    "it compiles llama.cpp, 10-15 minutes)",
)
PROMPT = "Movies a user liked:\n- Toy Story (1995)\n- Aladdin (1992)\nThe next movie they liked:"
TITLES = [" The Lion King (1994)", " Heat (1995)", "", " Schindler's List (1993)"]


@pytest.mark.parametrize("bad", [{"n_threads": 0}, {"n_threads_batch": 1.5}, {"n_ctx": 8}])
def test_bad_options(bad):
    with pytest.raises(ConfigError):
        LlamaCppLM("gemma-3-270m", **bad)


@pytest.mark.skipif(HAVE_LLAMA_CPP, reason="llama-cpp-python is installed")
def test_missing_extra_names_the_install_command():
    with pytest.raises(MissingExtraError, match=r"genrec\[llamacpp\]"):
        LlamaCppLM("gemma-3-270m").count_tokens("x")


@pytest.fixture(scope="module")
def gemma():
    return LlamaCppLM("gemma-3-270m", n_threads=1, n_ctx=512)


@needs_llama_cpp
def test_scores_are_independent_of_order_and_batch(gemma):
    assert isinstance(gemma, LanguageModel)
    scores = gemma.score(PROMPT, TITLES)
    assert np.isfinite(scores.logprob).all() and (scores.logprob < 0).all()
    assert scores.n_tokens[2] == 1  # empty continuation: end of sequence
    reverse = gemma.score(PROMPT, TITLES[::-1])
    np.testing.assert_allclose(reverse.logprob[::-1], scores.logprob, rtol=1e-5, atol=1e-5)
    single = [gemma.score(PROMPT, [t]).logprob[0] for t in TITLES[:2]]
    np.testing.assert_allclose(single, scores.logprob[:2], rtol=1e-5, atol=1e-5)


@needs_llama_cpp
def test_scores_equal_a_full_sequence_decode(gemma):
    """Naive: decode prompt + continuation from scratch with logits for every position."""
    llm = gemma._ready()
    prompt_ids = gemma._encode(PROMPT)
    title = TITLES[3]
    ids = gemma._continuation_ids(PROMPT, prompt_ids, title)
    full = prompt_ids + ids
    llm.reset()
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    llm._batch.set_batch(batch=full, n_past=0, logits_all=True)
    llm._ctx.decode(llm._batch)
    rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(full), llm.n_vocab()))
    rows = rows.astype(np.float64)
    logp = rows - rows.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    naive = sum(logp[len(prompt_ids) - 1 + j, t] for j, t in enumerate(ids))
    np.testing.assert_allclose(gemma.score(PROMPT, [title]).logprob[0], naive, rtol=1e-3, atol=1e-2)


@needs_llama_cpp
def test_generation_greedy_seeded_and_stopped(gemma):
    gemma.score(PROMPT, TITLES[:2])  # generation must not see the scoring's leftovers
    greedy = gemma.generate([PROMPT], max_new_tokens=6)
    assert greedy == gemma.generate([PROMPT], max_new_tokens=6)
    assert greedy[0].startswith("\n")  # the list continues
    sampled = gemma.generate([PROMPT], max_new_tokens=6, temperature=1.0, seed=5)
    assert sampled == gemma.generate([PROMPT], max_new_tokens=6, temperature=1.0, seed=5)
    assert "\n" not in gemma.generate([PROMPT], max_new_tokens=8, stop=["\n"])[0]
    assert gemma.count_tokens("Toy Story") >= 2
