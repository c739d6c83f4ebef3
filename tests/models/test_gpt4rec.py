"""GPT4Rec (LLM-written query -> dense retrieval) under the shared contract, with fake LMs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.build import build_model
from genrec.data.synthetic import planted_clusters
from genrec.models import DenseRetrieval, GPT4Rec
from genrec.text.lm import FakeLanguageModel

from .contract import OPTIONS, ModelContract

TINY = {"lm": "fake", "text_encoder": "hashing", "text_cache": "off", "history_weight": 0.5}


class TestGPT4Rec(ModelContract):
    model_cls = GPT4Rec
    config = TINY  # the fake LM writes one constant query; the history half finds the cluster
    quality_floor = 0.9
    bad_configs = [
        {"lm": ""},
        {"history_len": 0},
        {"max_new_tokens": 0},
        {"history_weight": -0.1},
        {"history_weight": 1.5},
        {"kind": ""},
        {"text_encoder": ""},
        {"text_cache": ""},
    ]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


def majority_group_writer(world):
    """A scripted LM that writes the majority cluster of the quoted titles ("group2")."""
    title_group = {
        t: g[0] for t, g in zip(world.data.catalog["title"], world.data.catalog["genres"])
    }

    def write(prompt: str) -> str:
        groups = [title_group[t] for t in re.findall(r'^- "(.*)"$', prompt, re.MULTILINE)]
        return max(set(groups), key=groups.count) if groups else ""

    return FakeLanguageModel(generate_fn=write)


def hit_at_5(model, world) -> float:
    users = np.flatnonzero(world.answer >= 0)
    items, _ = model.recommend(world.split.history("test").user_item_order[users], users=users, k=5)
    return float((items == world.answer[users, None]).any(axis=1).mean())


def test_the_generated_query_drives_retrieval(world):
    """A query naming the user's cluster finds the answer on its own (history weight 0); a
    query naming another cluster does not."""
    good = GPT4Rec(TINY, history_weight=0.0, language_model=majority_group_writer(world))
    assert hit_at_5(good.fit(world.split.train, options=OPTIONS), world) >= 0.9
    wrong = FakeLanguageModel(generate_fn=lambda prompt: "group0")
    bad = GPT4Rec(TINY, history_weight=0.0, language_model=wrong)
    assert hit_at_5(bad.fit(world.split.train, options=OPTIONS), world) < 0.5


def test_history_weight_one_is_dense_and_never_calls_the_lm(world):
    lm = FakeLanguageModel()
    model = GPT4Rec(TINY, history_weight=1.0, language_model=lm).fit(world.split.train)
    dense = DenseRetrieval(text_encoder="hashing", text_cache="off").fit(world.split.train)
    histories = world.split.train.user_item_order[:8]
    np.testing.assert_allclose(model.score(histories), dense.score(histories), atol=1e-6)
    assert lm.calls == []


def test_fusion_is_the_mix_of_unit_query_vectors(world):
    lm = majority_group_writer(world)
    model = GPT4Rec(TINY, history_weight=0.3, language_model=lm).fit(world.split.train)
    histories = world.split.train.user_item_order[:4]
    texts = model.generate_queries(histories)
    q = 0.7 * model.retriever_.text_queries(texts) + 0.3 * model.retriever_.queries(histories)
    expected = model.retriever_.score_queries(q / np.linalg.norm(q, axis=1, keepdims=True))
    np.testing.assert_allclose(model.score(histories), expected, atol=1e-6)


def test_prompt_quotes_latest_titles_in_time_order_and_cache_reuses_queries(world):
    lm = FakeLanguageModel(generate_fn=lambda prompt: 'Heat"\nignored')
    model = GPT4Rec(TINY, history_len=2, language_model=lm).fit(world.split.train)
    titles = world.data.catalog["title"]
    history = sp.csr_matrix(([3.0, 1.0, 2.0], ([0, 0, 0], [5, 6, 7])), shape=(1, 60))
    prompt = model.prompt(history)
    assert f'- "{titles[7]}"\n- "{titles[5]}"\n' in prompt and f'"{titles[6]}"' not in prompt
    assert prompt.endswith('"')
    assert model.generate_queries(history) == ["Heat"]  # cut at the closing quote
    model.score(history)
    assert sum(c[0] == "generate" for c in lm.calls) == 1  # the second time came from the cache


def test_empty_history_and_empty_query(world):
    empty_lm = FakeLanguageModel(generate_fn=lambda prompt: "")
    model = GPT4Rec(TINY, history_weight=0.0, language_model=empty_lm).fit(world.split.train)
    histories = world.split.train.user_item_order[:3]
    np.testing.assert_allclose(
        model.score(histories), model.retriever_.score(histories), atol=1e-6
    )  # no generated text: the history query
    none = sp.csr_matrix((2, 60), dtype=np.float32)
    scores = model.score(none)
    assert np.isfinite(scores).all() and not scores.any()
    assert model.generate_queries(none) == ["", ""]


def test_build_by_name_and_default_lm_spec():
    model = build_model("gpt4rec", {"text_encoder": "hashing"})
    assert isinstance(model, GPT4Rec) and model.config.lm == "default"
