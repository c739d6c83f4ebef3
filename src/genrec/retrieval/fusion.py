"""Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009) of any genrec scores.

Each input ranks the same items per row; RRF scores an item ``sum_m w_m / (k + rank_m)`` with
``rank_m`` its 1-based rank under input m. Working on (B, n_items) score arrays, it fuses the
output of any genrec models (``model.score``). Items with equal scores share their average rank,
so an input that cannot tell items apart (e.g. a collaborative model on cold items, all 0) adds
the same amount to each of them. ``-inf`` marks excluded items: they rank after all others
(tied), and the fused score stays finite.

Example:
    >>> a = np.array([[3.0, 2.0, 1.0]])
    >>> b = np.array([[1.0, 3.0, 2.0]])
    >>> fused = reciprocal_rank_fusion([a, b], k=60)
    >>> np.argsort(-fused[0]).tolist()  # item 1 ranks 2nd and 1st: best overall
    [1, 0, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats

from genrec.errors import ConfigError, DataError


def ranks(scores: np.ndarray) -> np.ndarray:
    """(B, N) float64 1-based ranks per row, highest score first, ties sharing their mean rank.

    >>> ranks(np.array([[0.5, 0.9, 0.5]])).tolist()
    [[2.5, 1.0, 2.5]]
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2:
        raise DataError(f"scores must be 2-D (batch, n_items), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise DataError("scores contain NaN; cannot rank them")
    if scores.size == 0:
        return np.zeros(scores.shape)
    return scipy.stats.rankdata(-scores, method="average", axis=1)


def reciprocal_rank_fusion(
    score_matrices: Sequence[np.ndarray], *, k: float = 60.0, weights: Sequence[float] | None = None
) -> np.ndarray:
    """(B, N) float32 fused scores of several (B, N) score arrays (higher = better).

    Args:
        score_matrices: one (B, N) array per input, same shape.
        k: the RRF constant; larger flattens the advantage of the top ranks (60 in the paper).
        weights: one non-negative weight per input (default 1 each).

    Raises:
        ConfigError: no inputs, k < 0 or bad weights.  DataError: shapes differ or NaN scores.
    """
    if not len(score_matrices):
        raise ConfigError("reciprocal_rank_fusion needs at least one score array")
    if isinstance(k, bool) or not np.isfinite(k) or k < 0:
        raise ConfigError(f"RRF k = {k!r} must be a number >= 0 (60 in the paper)")
    weights = np.ones(len(score_matrices)) if weights is None else np.asarray(weights, np.float64)
    if (
        weights.shape != (len(score_matrices),)
        or not np.all(np.isfinite(weights))
        or (weights < 0).any()
    ):
        raise ConfigError(
            f"RRF weights must be {len(score_matrices)} non-negative numbers, one "
            f"per input, got {weights.tolist()}"
        )
    shape = np.shape(score_matrices[0])
    fused = np.zeros(shape, np.float64)
    for w, scores in zip(weights, score_matrices):
        if np.shape(scores) != shape:
            raise DataError(
                f"all score arrays must have the same shape, got {shape} and {np.shape(scores)}"
            )
        fused += w / (k + ranks(scores))
    return fused.astype(np.float32)


def fuse_rankings(
    rankings: Sequence[np.ndarray],
    n_items: int,
    *,
    k: float = 60.0,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """RRF of ranked id lists: each (B, L) item ids best first (-1 = padding); an item missing
    from a list gets nothing from it. Returns (B, n_items) float32.

    >>> fuse_rankings([np.array([[2, 0]]), np.array([[0, 1]])], 3, k=0).tolist()
    [[1.5, 0.5, 1.0]]
    """
    if not len(rankings):
        raise ConfigError("fuse_rankings needs at least one ranking")
    weights = np.ones(len(rankings)) if weights is None else np.asarray(weights, np.float64)
    if weights.shape != (len(rankings),) or (weights < 0).any():
        raise ConfigError(f"weights must be {len(rankings)} non-negative numbers")
    if isinstance(k, bool) or not np.isfinite(k) or k < 0:
        raise ConfigError(f"RRF k = {k!r} must be a number >= 0 (60 in the paper)")
    batch = np.shape(rankings[0])[0]
    fused = np.zeros((batch, n_items), np.float64)
    for w, ids in zip(weights, rankings):
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[0] != batch or ids.max(initial=-1) >= n_items:
            raise DataError(
                f"each ranking must be (B={batch}, L) item ids below {n_items}, "
                f"got shape {ids.shape}"
            )
        rows, pos = np.nonzero(ids >= 0)
        np.add.at(fused, (rows, ids[rows, pos]), w / (k + pos + 1.0))
    return fused.astype(np.float32)
