"""The retrieve -> rerank pipeline: candidates, ordering, full-ranking scores, names, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.build import build_model, load_model, model_class, parse_overrides
from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError, NotFittedError
from genrec.evaluation.protocol import evaluate
from genrec.models import EASE, LLMRecommender, Pop
from genrec.options import RunOptions
from genrec.pipelines.two_stage import TwoStage
from genrec.text.lm import FakeLanguageModel

OPTIONS = RunOptions(seed=0, threads=1)
WORDS = ["Alpha", "Bravo", "Charlie", "Delta"]


@pytest.fixture(scope="module")
def world():
    world = planted_clusters(n_users=80, n_items=40, n_clusters=4, noise=0, seed=0)
    world.data.catalog.columns["title"] = np.array(
        [f"{WORDS[i % 4]} {i}" for i in range(40)], object
    )
    return world


def fit(pipe, world):
    return pipe.fit(world.split.train, options=OPTIONS)


def test_candidates_rank_first_in_reranked_order_then_the_retriever(world):
    pipe = fit(TwoStage(n_candidates=5, retriever=Pop(), reranker=EASE(reg=10.0)), world)
    histories = world.split.history("test").user_item_order[:6]
    scores = pipe.score(histories)
    pop = pipe.retriever.score(histories)
    ease = pipe.reranker.score(histories)
    for row in range(6):
        seen = set(histories[row].indices)
        by_pop = [i for i in np.argsort(-pop[row], kind="stable") if i not in seen]
        candidates = by_pop[:5]
        ranked = [i for i in np.argsort(-scores[row], kind="stable") if i not in seen]
        assert ranked[:5] == sorted(candidates, key=lambda i: -ease[row, i])
        assert ranked[5:] == by_pop[5:]  # the rest in the retriever's order
    assert np.isfinite(scores).all()


def test_llm_reranker_improves_a_popularity_retriever(world):
    histories = world.split.history("test")
    pop = fit(Pop(), world)
    pipe = fit(build_model("pop+llm", {"llm.lm": "fake", "n_candidates": 40}), world)
    assert isinstance(pipe.reranker, LLMRecommender) and pipe.config.n_candidates == 40
    base = evaluate(pop, histories, world.split.test, ks=(1,)).mean("hit@1")
    reranked = evaluate(pipe, histories, world.split.test, ks=(1,)).mean("hit@1")
    assert reranked > base + 0.5


def test_listwise_reranking_uses_one_prompt_with_letters(world):
    lm = FakeLanguageModel()
    llm = LLMRecommender(lm="fake", mode="listwise", language_model=lm)
    pipe = fit(TwoStage(n_candidates=4, retriever=EASE(reg=10.0), reranker=llm), world)
    pipe.score(world.split.history("test").user_item_order[:2])
    calls = [c for c in lm.calls if c[0] == "score"]
    assert len(calls) == 2 and all(c[2] == 4 for c in calls)
    assert 'A. "' in calls[0][1] and 'D. "' in calls[0][1] and 'E. "' not in calls[0][1]
    with pytest.raises(ConfigError, match="at most 26"):
        TwoStage(n_candidates=30, retriever=EASE(), reranker=LLMRecommender(mode="listwise"))


def test_batch_equals_single_and_save_load(world, tmp_path):
    pipe = fit(
        build_model(
            "ease+llm", {"llm.lm": "fake", "ease.reg": "10", "n_candidates": 8, "llm.shots": 2}
        ),
        world,
    )
    histories = world.split.history("test").user_item_order[:5]
    users = np.arange(5)
    together = pipe.score(histories, users=users)
    for row in range(5):
        np.testing.assert_array_equal(
            pipe.score(histories[row], users=users[row : row + 1])[0], together[row]
        )
    path = pipe.save(tmp_path / "pipe")
    loaded = load_model(path)
    assert isinstance(loaded, TwoStage) and loaded.config == pipe.config
    assert loaded.retriever.config.reg == 10.0 and loaded.reranker.config.shots == 2
    np.testing.assert_array_equal(loaded.score(histories, users=users), together)


def test_empty_history_and_everything_seen(world):
    pipe = fit(build_model("ease+llm", {"llm.lm": "fake", "n_candidates": 5}), world)
    empty = sp.csr_matrix((1, 40), dtype=np.float32)
    assert np.isfinite(pipe.score(empty)).all()
    full = sp.csr_matrix(np.arange(1, 41, dtype=np.float32)[None, :])
    assert np.isfinite(pipe.score(full)).all()


def test_names_and_overrides():
    assert model_class("ease+llm") is TwoStage and model_class("two_stage") is TwoStage
    pipe = build_model(
        "ease:default+llm", {"ease.reg": 300, "llm.lm": "fake", "llm.mode": "listwise"}
    )
    assert pipe.config.retriever == "ease:default" and pipe.retriever.config.reg == 300
    assert pipe.reranker.config.mode == "listwise"
    for bad, match in (
        ("ease+llm+pop", "retriever\\+reranker"),
        ("ease+", "retriever\\+reranker"),
        ("nosuch+llm", "unknown model"),
    ):
        with pytest.raises(ConfigError, match=match):
            build_model(bad, {"llm.lm": "fake"})
    with pytest.raises(ConfigError, match="names no part"):
        build_model("ease+llm", {"bpr.dim": 3})
    with pytest.raises(ConfigError, match="allowed keys"):
        build_model("ease+llm", {"llm.nosuch": 3})
    with pytest.raises(ConfigError, match="n_candidates"):
        build_model("ease+llm", {"n_candidates": 0, "llm.lm": "fake"})


def test_cli_overrides_reach_pipeline_parts():
    out = parse_overrides(
        ["llm.lm=fake", "ease.reg=300", "ease+llm.n_candidates=10"],
        ["ease", "ease+llm", "dense+llm"],
    )
    assert out == {
        "ease": {"reg": "300"},
        "ease+llm": {"llm.lm": "fake", "ease.reg": "300", "n_candidates": "10"},
        "dense+llm": {"llm.lm": "fake"},
    }
    assert parse_overrides(["llm.shots=3", "n_candidates=5"], ["ease+llm"], flat=True) == {
        "ease+llm": {"llm.shots": "3", "n_candidates": "5"}
    }


def test_a_pipeline_of_fitted_parts_scores_without_a_fit_of_its_own(world):
    """Parts fitted on one dataset: shortlists and scores at once, the same as after a pipeline
    fit with the same weight; unfitted parts still need the fit; parts fitted on different
    data are refused."""
    train = world.split.train
    retriever, reranker = Pop().fit(train, options=OPTIONS), EASE(reg=10.0).fit(train)
    histories = world.split.history("test").user_item_order[:6]
    ready = TwoStage(n_candidates=5, fusion_weight=0.5, retriever=retriever, reranker=reranker)
    fitted = fit(
        TwoStage(n_candidates=5, fusion_weight=0.5, retriever=Pop(), reranker=EASE(reg=10.0)), world
    )
    np.testing.assert_array_equal(ready.score(histories), fitted.score(histories))
    assert [x.candidates.tolist() for x in ready.shortlists(histories, rerank=False)] == [
        x.candidates.tolist() for x in fitted.shortlists(histories, rerank=False)
    ]
    with pytest.raises(NotFittedError, match="not fitted"):
        TwoStage(n_candidates=5, retriever=retriever, reranker=EASE(reg=10.0)).score(histories)
    other = planted_clusters(n_users=30, n_items=20, n_clusters=2, noise=0, seed=1)
    with pytest.raises(ConfigError, match="fitted on different data"):
        TwoStage(retriever=retriever, reranker=EASE(reg=10.0).fit(other.split.train))
