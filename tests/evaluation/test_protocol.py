"""The evaluation protocol against a naive per-user reference on random data."""

import math

import numpy as np
import pytest

from genrec.data import Dataset
from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError, DataError
from genrec.evaluation.protocol import evaluate, evaluate_sampled, evaluate_split
from genrec.models.base import ModelConfig, Recommender


class FixedScores(Recommender):
    """Scores from a fixed (n_users, n_items) matrix, looked up by user index."""

    name = "fixed"
    Config = ModelConfig

    def __init__(self, table):
        super().__init__()
        self.table = np.asarray(table, np.float32)
        self.n_users_, self.n_items_ = self.table.shape

    def _score(self, histories, users):
        return self.table[users]


def random_world(seed=0, n_users=40, n_items=30):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, 400)
    i = rng.integers(0, n_items, 400)
    data = Dataset.from_interactions([f"u{x}" for x in u], [f"i{x}" for x in i])
    part = rng.random(len(data)) < 0.7
    history, target = data.subset(part), data.subset(~part)
    scores = rng.integers(0, 5, (data.n_users, data.n_items)).astype(np.float32)  # many ties
    return history, target, scores


def naive(history, target, scores, k):
    """Textbook per-user metrics, written independently of genrec.evaluation.metrics."""
    seen = history.user_items.toarray() > 0
    rel = (target.user_items.toarray() > 0) & ~seen
    out = {"ndcg": [], "recall": [], "hit": [], "mrr": [], "auc": []}
    for u in np.flatnonzero(rel.sum(1)):
        cand = [i for i in range(scores.shape[1]) if not seen[u, i]]
        order = sorted(cand, key=lambda i: (-scores[u, i], i))
        pos = set(np.flatnonzero(rel[u]))
        top = order[:k]
        dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(top) if i in pos)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(pos), k)))
        out["ndcg"].append(dcg / idcg)
        out["recall"].append(len(pos & set(top)) / len(pos))
        out["hit"].append(float(bool(pos & set(top))))
        first = [r for r, i in enumerate(top) if i in pos]
        out["mrr"].append(1 / (first[0] + 1) if first else 0.0)
        neg = [i for i in cand if i not in pos]
        pairs = [
            (1.0 if scores[u, p] > scores[u, n] else 0.5 if scores[u, p] == scores[u, n] else 0.0)
            for p in pos
            for n in neg
        ]
        out["auc"].append(np.mean(pairs) if pairs else np.nan)
    return {m: np.array(v) for m, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_reference(seed):
    history, target, scores = random_world(seed)
    # break ties by a tiny index-dependent offset so that ranking is unique and comparable
    scores = scores - np.arange(scores.shape[1]) * 1e-4
    result = evaluate(FixedScores(scores), history, target, ks=(5,), batch_size=7)
    ref = naive(history, target, scores, 5)
    for m in ("ndcg", "recall", "hit", "mrr"):
        np.testing.assert_allclose(result.per_user[f"{m}@5"], ref[m], atol=1e-6, err_msg=m)
    np.testing.assert_allclose(result.per_user["auc"], ref["auc"], atol=1e-6)


def test_auc_counts_ties_as_half():
    history, target, scores = random_world(3)  # integer scores: many ties
    result = evaluate(FixedScores(scores), history, target, ks=(5,), metrics=("auc",))
    np.testing.assert_allclose(
        result.per_user["auc"], naive(history, target, scores, 5)["auc"], atol=1e-6
    )


def test_batch_size_does_not_change_results():
    history, target, scores = random_world(4)
    a = evaluate(FixedScores(scores), history, target, ks=(3, 10), batch_size=1)
    b = evaluate(FixedScores(scores), history, target, ks=(3, 10), batch_size=1000)
    for name in a.per_user:
        np.testing.assert_array_equal(a.per_user[name], b.per_user[name])
    np.testing.assert_array_equal(a.top_items, b.top_items)


def test_seen_items_never_ranked_and_seen_targets_dropped():
    history, target, scores = random_world(5)
    result = evaluate(FixedScores(scores), history, target, ks=(10,))
    seen = history.user_items
    for row, u in enumerate(result.users):
        assert not set(result.top_items[row]) & set(seen[u].indices)
    overlap = target.user_items.multiply(seen).nnz
    assert result.info["dropped_seen_targets"] == overlap


def test_oracle_scores_one_and_known_answer_found():
    world = planted_clusters()
    table = np.zeros((world.data.n_users, world.data.n_items), np.float32)
    table[np.arange(world.data.n_users), world.answer] = 1.0
    result = evaluate_split(FixedScores(table), world.split, "test", ks=(1, 10))
    assert result.mean("ndcg@10") == pytest.approx(1.0)
    assert result.mean("hit@1") == pytest.approx(1.0)
    assert result.mean("auc") == pytest.approx(1.0)
    assert 0 < result.corpus["coverage@1"] <= 1


def test_bad_k_and_metric_and_empty_target():
    history, target, scores = random_world(6)
    model = FixedScores(scores)
    with pytest.raises(ConfigError, match="1..30"):
        evaluate(model, history, target, ks=(31,))
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate(model, history, target, metrics=("ndgc",))
    with pytest.raises(DataError, match="no user has a target"):
        evaluate(model, history, history, ks=(5,))


def test_nan_scores_are_a_clear_error():
    history, target, scores = random_world(7)
    scores[:, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        evaluate(FixedScores(scores), history, target, ks=(5,))


# ---- a subset of users, and the sampled-candidates protocol -----------------------------------
def test_users_restricts_evaluation_to_a_subset():
    history, target, scores = random_world(seed=3)
    full = evaluate(FixedScores(scores), history, target, ks=(5,))
    some = full.users[::3]
    part = evaluate(FixedScores(scores), history, target, ks=(5,), users=some)
    assert np.array_equal(part.users, some)
    assert np.allclose(part.per_user["ndcg@5"], full.per_user["ndcg@5"][::3])
    with pytest.raises(DataError, match="user indices"):
        evaluate(FixedScores(scores), history, target, users=[10_000])


def test_sampled_oracle_ranks_first_and_constant_scores_are_not_favoured():
    world = planted_clusters()
    history, target = world.split.train, world.split.test
    oracle = np.zeros((history.n_users, history.n_items), np.float32)
    oracle[np.arange(history.n_users), world.answer] = 1.0
    result = evaluate_sampled(FixedScores(oracle), history, target, n_negatives=19, seed=1)
    assert result.info["candidates"] == 20 and result.top_items.shape == (history.n_users, 20)
    assert result.mean("hit@1") == 1.0 and result.mean("mrr@10") == 1.0
    # constant scores: ties broken by a random position, so hit@1 is about 1/20, not 1
    flat = evaluate_sampled(FixedScores(np.zeros_like(oracle)), history, target, seed=1)
    assert flat.mean("hit@1") < 0.2


def test_sampled_candidates_are_unseen_and_the_same_for_every_model():
    world = planted_clusters()
    history, target = world.split.train, world.split.test
    rng = np.random.default_rng(0)
    a = evaluate_sampled(FixedScores(rng.random((120, 60))), history, target, seed=5)
    b = evaluate_sampled(FixedScores(rng.random((120, 60))), history, target, seed=5)
    assert np.array_equal(np.sort(a.top_items, 1), np.sort(b.top_items, 1))
    seen = history.user_items[a.users].toarray() > 0
    assert not np.take_along_axis(seen, a.top_items, axis=1).any()
    for row in np.sort(a.top_items, 1):
        assert len(set(row)) == 20


def test_sampled_bad_arguments():
    world = planted_clusters(n_items=24, n_clusters=2)
    history, target = world.split.train, world.split.test
    model = FixedScores(np.zeros((history.n_users, history.n_items)))
    with pytest.raises(ConfigError, match="n_negatives"):
        evaluate_sampled(model, history, target, n_negatives=0)
    with pytest.raises(DataError, match="lower n_negatives"):
        evaluate_sampled(model, history, target, n_negatives=23)
    with pytest.raises(ConfigError):
        evaluate_sampled(model, history, target, ks=(30,))


def test_score_candidates_gathers_full_scores():
    history, target, scores = random_world(seed=4)
    model = FixedScores(scores)
    cands = np.array([[0, 5, 7], [1, 2, 3]])
    got = model.score_candidates(history.user_items[[0, 1]], cands, users=np.array([0, 1]))
    assert np.array_equal(got, scores[[[0], [1]], cands])
    with pytest.raises(DataError, match="one row per history"):
        model.score_candidates(history.user_items[[0, 1]], np.array([1, 2]), users=np.array([0, 1]))
    with pytest.raises(DataError, match="item indices"):
        model.score_candidates(history.user_items[[0]], np.array([[99]]), users=np.array([0]))
