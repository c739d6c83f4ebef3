"""ItemKNN under the shared contract, plus its similarity against a hand computation."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from genrec.data.synthetic import planted_clusters
from genrec.models import ItemKNN
from genrec.models.classic.itemknn import item_similarity

from .contract import ModelContract


class TestItemKNN(ModelContract):
    model_cls = ItemKNN
    config = {"k_neighbors": 20}
    quality_floor = 0.95
    bad_configs = [{"k_neighbors": 0}, {"shrink": -1.0}, {"block_bytes": 10}]


X = np.array(
    [[1, 1, 0, 0, 1], [1, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 1]],
    dtype=np.float64,
)


def hand_cosine(x, shrink):
    """sim(i, j) = x_i . x_j / (|x_i| |x_j| + shrink), zero on the diagonal, by loops."""
    n = x.shape[1]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                dot = sum(x[u, i] * x[u, j] for u in range(x.shape[0]))
                out[i, j] = dot / (np.sqrt(x[:, i] @ x[:, i]) * np.sqrt(x[:, j] @ x[:, j]) + shrink)
    return out


def test_similarity_equals_hand_computed_cosine_with_shrink():
    for shrink in (0.0, 2.0):
        got = item_similarity(sp.csr_matrix(X), k_neighbors=10, shrink=shrink).toarray()
        np.testing.assert_allclose(got, hand_cosine(X, shrink), rtol=1e-6)


def test_without_normalisation_similarity_is_co_occurrence():
    got = item_similarity(sp.csr_matrix(X), k_neighbors=10, shrink=1.0, normalize=False)
    expected = X.T @ X / 2.0
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(got.toarray(), expected, rtol=1e-6)


def test_keeps_the_top_k_neighbours_of_each_target():
    full = hand_cosine(X, 0.0)
    got = item_similarity(sp.csr_matrix(X), k_neighbors=2).toarray()  # column i: neighbours of i
    for target in range(X.shape[1]):
        kept = np.flatnonzero(got[:, target])
        assert len(kept) == 2
        np.testing.assert_allclose(
            np.sort(got[kept, target]), np.sort(full[:, target])[-len(kept) :], rtol=1e-6
        )


def test_blocks_give_the_same_similarity():
    x = planted_clusters(noise=4).split.train.user_items  # 60 items
    whole = item_similarity(x, k_neighbors=7)
    blocks = item_similarity(x, k_neighbors=7, block_bytes=60 * 4 * 7)  # 7 targets per block
    np.testing.assert_array_equal(whole.toarray(), blocks.toarray())


def test_defaults_are_the_validation_tuned_values():
    assert (ItemKNN().config.k_neighbors, ItemKNN().config.shrink) == (200, 10.0)


def test_progress_does_not_change_the_result(capsys):
    from genrec.options import RunOptions

    train = planted_clusters().split.train
    quiet = ItemKNN(k_neighbors=5).fit(train)
    loud = ItemKNN(k_neighbors=5).fit(train, options=RunOptions(progress=True))
    np.testing.assert_array_equal(quiet.similarity_.toarray(), loud.similarity_.toarray())
    assert "itemknn" in capsys.readouterr().err
