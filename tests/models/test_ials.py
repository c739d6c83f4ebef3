"""iALS (through implicit) under the shared contract, plus fold-in and thread-count invariance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.data.synthetic import planted_clusters
from genrec.models import IALS
from genrec.models.classic.ials import als_fold_in
from genrec.options import RunOptions

from .contract import OPTIONS, ModelContract

pytest.importorskip("implicit")

TINY = {"dim": 16, "reg": 5.0, "alpha": 5.0, "iterations": 10}


class TestIALS(ModelContract):
    model_cls = IALS
    config = TINY
    quality_floor = 0.95
    stochastic = True
    bad_configs = [{"dim": 0}, {"reg": 0.0}, {"alpha": -1.0}, {"iterations": 0}]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


def test_thread_count_does_not_change_the_factors(world):
    one = IALS(TINY).fit(world.split.train, options=RunOptions(seed=3, threads=1))
    two = IALS(TINY).fit(world.split.train, options=RunOptions(seed=3, threads=2))
    np.testing.assert_array_equal(one.item_factors_, two.item_factors_)


def test_fold_in_equals_a_direct_solve():
    """The batched CG fold-in equals solving each user's normal equations with numpy."""
    rng = np.random.default_rng(0)
    items = rng.normal(size=(30, 6)).astype(np.float32)
    rows = sp.csr_matrix((rng.random((5, 30)) < 0.2).astype(np.float32))
    got = als_fold_in(rows, items, reg=0.5, alpha=4.0)
    y = items.astype(np.float64)
    for b in range(rows.shape[0]):
        seen = rows[b].indices
        a = y.T @ y + 3.0 * y[seen].T @ y[seen] + 0.5 * np.eye(6)
        want = np.linalg.solve(a, 4.0 * y[seen].sum(axis=0))
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5)


def test_fold_in_of_a_trained_user_is_close_to_its_factors(world):
    """ALS's last step solved each user's equations (by 3 CG steps), so folding the training
    history back in gives nearly the learned vector."""
    model = IALS({**TINY, "iterations": 30}).fit(world.split.train, options=OPTIONS)
    users = np.arange(10)
    folded = model.score(world.split.train.user_items[users])
    learned = model.score(world.split.train.user_items[users], users=users)
    top_folded = np.argsort(-folded, axis=1)[:, :5]
    top_learned = np.argsort(-learned, axis=1)[:, :5]
    assert (top_folded == top_learned).mean() > 0.8
