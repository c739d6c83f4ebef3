"""Top-k and masking: deterministic ties, candidates, NaN."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.errors import DataError
from genrec.ranking import mask_non_candidates, mask_seen, top_k


def reference(row, k):
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
    return [i if np.isfinite(row[i]) else -1 for i in order]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_top_k_breaks_ties_by_lower_index_whatever_k(rows, n_items, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, (rows, n_items)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    for k in range(1, n_items + 1):
        items, values = top_k(torch.from_numpy(scores.copy()), k)
        for r in range(rows):
            assert items[r].tolist() == reference(scores[r], k)
        # a shorter list is a prefix of a longer one
        longer, _ = top_k(torch.from_numpy(scores.copy()), n_items)
        np.testing.assert_array_equal(items, longer[:, :k])


def test_masks_and_nan():
    scores = torch.zeros((2, 5))
    mask_seen(scores, sp.csr_matrix(np.array([[1, 0, 0, 0, 1], [0, 0, 0, 0, 0]])))
    mask_non_candidates(scores, np.array([[0, 1], [3, 4]]))
    items, _ = top_k(scores, 3)
    assert items.tolist() == [[1, -1, -1], [3, 4, -1]]
    with pytest.raises(DataError, match="integer item indices"):
        mask_non_candidates(torch.zeros((1, 5)), np.ones(5, bool))
    with pytest.raises(DataError, match="NaN"):
        top_k(torch.tensor([[0.0, float("nan")]]), 1)


@pytest.mark.parametrize("kind", ["continuous", "ties", "masked"])
def test_block_prefiltered_top_k_equals_a_full_sort_on_large_catalogs(kind):
    """Past ``4 * (k + 1)`` blocks, top_k ranks only each row's best blocks; on random rows
    (distinct values, many ties, mostly -inf) it equals a stable full sort, NaN rows included."""
    rng = np.random.default_rng(["continuous", "ties", "masked"].index(kind))
    rows, n_items = 40, 64 * 100 + 37  # a partial block at the end
    if kind == "ties":
        scores = rng.integers(0, 50, (rows, n_items)).astype(np.float32)
    else:
        scores = rng.normal(size=(rows, n_items)).astype(np.float32)
    if kind == "masked":
        scores[rng.random(scores.shape) < 0.95] = -np.inf
        scores[0, :] = -np.inf
        scores[1, :-5] = -np.inf  # fewer finite items than k
    scores[2, -3] = 99.0  # the best item in the tail
    for k in (1, 10, 20):
        items, values = top_k(torch.from_numpy(scores.copy()), k)
        order = np.lexsort((np.broadcast_to(np.arange(n_items), scores.shape), -scores))[:, :k]
        want = np.where(np.isneginf(np.take_along_axis(scores, order, 1)), -1, order)
        np.testing.assert_array_equal(items, want)
        np.testing.assert_array_equal(values, np.take_along_axis(scores, order, 1))
    scores[5, 7] = np.nan
    with pytest.raises(DataError, match="NaN"):
        top_k(torch.from_numpy(scores), 10)
