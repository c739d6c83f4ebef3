"""Rating-prediction evaluation (RMSE/MAE) against a naive reference."""

import numpy as np
import pytest

from genrec.data import Dataset
from genrec.errors import ConfigError, DataError
from genrec.evaluation.protocol import evaluate_ratings


class UserMean:
    """Predicts a user's mean history rating (3.0 without history)."""

    name = "user-mean"

    def predict_ratings(self, histories, *, users, items):
        sums = np.asarray(histories.sum(axis=1)).ravel()
        counts = np.diff(histories.indptr)
        return np.where(counts > 0, sums / np.maximum(counts, 1), 3.0)


def test_rmse_and_mae_match_a_naive_computation():
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 8, 120), rng.integers(0, 30, 120)
    data = Dataset.from_interactions(
        [f"u{x}" for x in u], [f"i{x}" for x in i], rng.integers(1, 6, 120), np.arange(120)
    )
    part = rng.random(len(data)) < 0.7
    history, target = data.subset(part), data.subset(~part)
    result = evaluate_ratings(UserMean(), history, target, batch_size=7)
    errors = []
    for user, true in zip(target.user_idx, target.value):
        row = history.ratings[user]
        pred = row.data.mean() if row.nnz else 3.0
        errors.append((user, pred - true))
    all_err = np.array([e for _, e in errors])
    assert result.overall["rmse"] == pytest.approx(np.sqrt(np.mean(all_err**2)))
    assert result.overall["mae"] == pytest.approx(np.mean(np.abs(all_err)))
    for row, user in enumerate(result.users):
        mine = np.array([e for u, e in errors if u == user])
        assert result.per_user["rmse"][row] == pytest.approx(np.sqrt(np.mean(mine**2)))


def test_rating_evaluation_rejects_rankers_and_empty_targets():
    data = Dataset.from_interactions(["a", "b"], ["x", "y"], [4, 5])
    with pytest.raises(ConfigError, match="does not predict ratings"):
        evaluate_ratings(object(), data, data)
    with pytest.raises(DataError, match="no ratings"):
        evaluate_ratings(UserMean(), data, data.subset([]))
