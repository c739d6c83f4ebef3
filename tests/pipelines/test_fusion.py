"""Score fusion in retrieve -> rerank: weight 0 is the retriever, a learned weight helps when the
reranker knows something and falls to 0 when it is noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.data.synthetic import planted_clusters
from genrec.errors import DataError
from genrec.evaluation.protocol import evaluate
from genrec.models import EASE, LLMRecommender, Pop
from genrec.models.base import ModelConfig, Recommender
from genrec.options import RunOptions
from genrec.pipelines.fusion import fuse, learn_weight, shortlist_auc
from genrec.pipelines.two_stage import TwoStage
from genrec.text.lm import FakeLanguageModel

OPTIONS = RunOptions(seed=0, threads=1)
N_CLUSTERS = 4


@dataclass(frozen=True)
class OracleConfig(ModelConfig):
    signal: float = 1.0  # weight of "the item is in the history's group" against unit noise
    seed: int = 0  # seed of the noise


class NoisyOracle(Recommender):
    """Knows the planted groups: ``signal * [item in the history's main group] + N(0, 1)`` noise
    fixed per (history, item), so two seeds are two independent noisy views of the truth."""

    name = "noisy_oracle"
    Config = OracleConfig

    def _fit(self, train, valid, options):
        pass

    def _score(self, histories, users):
        out = np.empty(histories.shape, np.float64)
        groups = np.arange(histories.shape[1]) % N_CLUSTERS
        for row in range(histories.shape[0]):
            seen = np.sort(histories[row].indices)
            main = np.bincount(seen % N_CLUSTERS, minlength=N_CLUSTERS).argmax()
            noise = np.random.default_rng([self.config.seed, *seen.tolist()]).normal(
                size=len(groups)
            )
            out[row] = self.config.signal * (groups == main) + noise
        return out

    def _state(self):
        return {}

    def _load_state(self, state):
        pass


@pytest.fixture(scope="module")
def world():
    world = planted_clusters(n_users=160, n_items=80, n_clusters=N_CLUSTERS, seed=0)
    world.data.catalog.columns["title"] = np.array([f"Film {i}" for i in range(80)], object)
    return world


def ndcg(model, world) -> np.ndarray:
    return evaluate(
        model, world.split.history("test"), world.split.test, ks=(10,), metrics=("ndcg",)
    ).per_user["ndcg@10"]


def fit(pipe, world):
    return pipe.fit(world.split.train, valid=world.split.valid, options=OPTIONS)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
    st.sampled_from(["linear", "rrf"]),
    st.integers(0, 2**31),
)
def test_weight_zero_keeps_the_retrievers_order_of_any_shortlist(retriever, method, seed):
    retriever = np.sort(np.array(retriever))[::-1]  # a shortlist comes best first
    reranker = np.random.default_rng(seed).normal(size=len(retriever))
    order = np.argsort(-fuse(retriever, reranker, weight=0.0, method=method), kind="stable")
    assert order.tolist() == list(range(len(retriever)))


def test_weight_one_is_the_rerankers_order_with_ties_by_the_retriever():
    retriever = np.array([5.0, 4.0, 3.0, 2.0])
    reranker = np.array([1.0, 2.0, 2.0, 0.0])
    for method in ("linear", "rrf", "none"):
        scores = fuse(retriever, reranker, weight=1.0, method=method)
        assert np.argsort(-scores, kind="stable").tolist() == [1, 2, 0, 3]


def test_a_gain_within_noise_keeps_weight_zero():
    rng = np.random.default_rng(0)
    base = rng.random(50)
    gain = rng.normal(0, 0.05, 50)
    gain -= gain.mean() - 0.01  # a mean gain of 0.01, about 1.4 standard errors
    flat = learn_weight(np.stack([base, base + gain]), np.array([0.0, 1.0]))
    assert flat.weight == 0.0 and flat.best == 1.0
    clear = learn_weight(np.stack([base, base + gain + 0.02]), np.array([0.0, 1.0]))
    assert clear.weight == 1.0 and clear.n_users == 50


def test_weight_zero_reproduces_the_retriever_without_asking_the_reranker(world):
    lm = FakeLanguageModel()
    llm = LLMRecommender(lm="fake", language_model=lm)
    pipe = fit(
        TwoStage(n_candidates=10, fusion_weight=0.0, retriever=EASE(reg=10.0), reranker=llm), world
    )
    histories = world.split.history("test").user_item_order[:20]
    ids, _ = pipe.recommend(histories, k=40)
    expected, _ = pipe.retriever.recommend(histories, k=40)
    np.testing.assert_array_equal(ids, expected)
    assert not lm.calls


def test_learned_fusion_beats_both_stages_when_the_reranker_is_informative(world):
    retriever, reranker = NoisyOracle(signal=2.0, seed=1), NoisyOracle(signal=2.0, seed=2)
    pipe = fit(TwoStage(n_candidates=20, retriever=retriever, reranker=reranker), world)
    unfused = fit(
        TwoStage(
            n_candidates=20,
            fusion="none",
            retriever=NoisyOracle(signal=2.0, seed=1),
            reranker=NoisyOracle(signal=2.0, seed=2),
        ),
        world,
    )
    assert 0.2 <= pipe.fusion_weight_ <= 0.8  # two noisy views of the truth: mix them
    fused, alone, reranked = ndcg(pipe, world), ndcg(retriever, world), ndcg(unfused, world)
    assert fused.mean() > alone.mean() + 0.05 and fused.mean() > reranked.mean() + 0.05


def test_learned_weight_protects_the_retriever_from_a_noise_reranker(world):
    retriever = EASE(reg=10.0)
    pipe = fit(
        TwoStage(n_candidates=20, retriever=retriever, reranker=NoisyOracle(signal=0.0)), world
    )
    unfused = fit(
        TwoStage(
            n_candidates=20,
            fusion="none",
            retriever=EASE(reg=10.0),
            reranker=NoisyOracle(signal=0.0),
        ),
        world,
    )
    assert pipe.fusion_weight_ == 0.0 and pipe.fusion_search_.n_users == 100
    np.testing.assert_array_equal(ndcg(pipe, world), ndcg(retriever, world))
    assert ndcg(unfused, world).mean() < ndcg(retriever, world).mean() - 0.3  # what fusion avoids


def test_rrf_and_a_weak_retriever(world):
    pipe = fit(
        TwoStage(n_candidates=80, fusion="rrf", retriever=Pop(), reranker=EASE(reg=10.0)), world
    )
    assert pipe.fusion_weight_ >= 0.5  # Pop knows nothing of the groups
    assert ndcg(pipe, world).mean() > ndcg(Pop().fit(world.split.train), world).mean() + 0.5


def test_learned_weight_survives_save_and_load(world, tmp_path):
    from genrec.build import load_model

    pipe = fit(
        TwoStage(n_candidates=20, retriever=EASE(reg=10.0), reranker=Pop(), fusion_users=30), world
    )
    loaded = load_model(pipe.save(tmp_path / "pipe"))
    assert loaded.fusion_weight_ == pipe.fusion_weight_
    histories = world.split.history("test").user_item_order[:8]
    np.testing.assert_array_equal(loaded.score(histories), pipe.score(histories))


def test_without_validation_histories_the_weight_is_the_rerankers(world):
    from genrec.data.splits import held_out_users_split

    cold = held_out_users_split(world.data, 0.2, seed=0)  # valid users have no training history
    pipe = TwoStage(n_candidates=10, retriever=Pop(), reranker=EASE(reg=10.0))
    pipe.fit(cold.train, valid=cold.valid, options=OPTIONS)
    assert pipe.fusion_weight_ == 1.0 and pipe.fusion_search_ is None
    fit(pipe, world)
    assert pipe.fusion_search_ is not None  # a split whose valid users have training histories


def test_shortlist_auc_counts_pairs_and_ties_and_skips_users_without_both_kinds():
    scores = np.array(
        [
            [3.0, 2.0, 1.0, 0.0],  # the target first: 1
            [3.0, 2.0, 1.0, 0.0],  # the target last: 0
            [1.0, 1.0, 0.0, 2.0],  # target ties one non-target, beats one, loses to one
            [1.0, 2.0, 3.0, 4.0],  # no target
            [1.0, 2.0, 3.0, 4.0],  # only targets
        ]
    )
    targets = np.zeros((5, 4), bool)
    targets[0, 0] = targets[1, 3] = targets[2, 0] = True
    targets[4] = True
    auc = shortlist_auc(scores, targets)
    assert auc[:3].tolist() == [1.0, 0.0, 0.5]
    assert np.isnan(auc[3:]).all()


def test_shortlist_auc_of_the_retriever_order_minus_its_mean_is_chance():
    """A reranker that only echoes the retriever's positions knows nothing beyond them."""
    rng = np.random.default_rng(0)
    by_position = -np.arange(20.0)
    targets = rng.random((400, 20)) < np.linspace(0.3, 0.02, 20)
    echo = np.tile(by_position, (400, 1)) + rng.normal(0, 0.01, (400, 20))
    assert np.nanmean(shortlist_auc(echo, targets)) > 0.65
    beyond = np.nanmean(shortlist_auc(echo - echo.mean(axis=0), targets))
    assert abs(beyond - 0.5) < 0.05


def test_shortlist_auc_rejects_mismatched_shapes():
    with pytest.raises(DataError, match="same"):
        shortlist_auc(np.zeros((2, 3)), np.zeros((2, 4), bool))
