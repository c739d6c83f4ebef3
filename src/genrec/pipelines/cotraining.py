"""Retriever-reranker co-training: the retriever learns from the reranker's preferences.

A two-stage pipeline (:mod:`genrec.pipelines.two_stage`) has a retriever that proposes a
shortlist and a reranker that orders it. Co-training alternates the two directions:

* the reranker learns from the retriever: it is tuned on the retriever's shortlists (e.g. the
  listwise LoRA tuning of :mod:`genrec.tuning`, whose shortlists come from the retriever), or
  at least its fusion weight is re-learned on the retriever's new shortlists;
* the retriever learns from the reranker (:func:`retriever_from_reranker`): for a pool of users
  (histories only, never a held-out target), the reranker's ``top`` preferred items of each
  user's shortlist (:func:`reranker_preferences`) become pseudo-interactions of weight
  ``beta``, and EASE is refitted in closed form on the training matrix plus them (the Gram
  matrix of the weighted matrix; ``beta`` 0 gives the original EASE back).

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> from genrec.pipelines.two_stage import Shortlist
    >>> lists = [Shortlist(np.arange(4), np.array([2, 3]), np.zeros(2), np.array([0.1, 0.9]))]
    >>> reranker_preferences(np.array([1]), lists, n_users=2, n_items=4, top=1).nonzero()
    (array([1], dtype=int32), array([3], dtype=int32))
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError
from genrec.models.classic.ease import EASE, ease_weights


def reranker_preferences(users, lists, *, n_users: int, n_items: int, top: int) -> sp.csr_matrix:
    """(n_users, n_items) binary matrix: 1 at each of ``users``' ``top`` best candidates of
    their shortlist (``lists[i]`` is ``users[i]``'s :class:`~genrec.pipelines.two_stage.Shortlist`)
    by the reranker's own scores (ties: the retriever's order).

    Raises:
        ConfigError: ``top`` is not a positive integer.
        DataError: users and lists differ in length, or a shortlist has no reranker scores.
    """
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ConfigError(f"top must be a positive integer (items per user), got {top!r}")
    users = np.asarray(users, np.int64)
    if len(users) != len(lists):
        raise DataError(f"{len(users)} users but {len(lists)} shortlists; pass one per user")
    rows, cols = [], []
    for user, s in zip(users, lists):
        if s.reranker is None:
            raise DataError(
                f"user {int(user)}'s shortlist has no reranker scores; build it with rerank=True"
            )
        best = s.candidates[np.argsort(-np.asarray(s.reranker), kind="stable")[:top]]
        rows += [int(user)] * len(best)
        cols += [int(i) for i in best]
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    m.data[:] = 1.0  # a pair listed twice still counts once
    return m


def retriever_from_reranker(ease: EASE, user_items, preferences, *, beta: float = 0.5) -> EASE:
    """A copy of the fitted ``ease`` refitted (same ``reg``) on the binary training matrix
    ``user_items`` plus ``beta`` times the reranker's ``preferences`` (same shape; entries that
    are already interactions stay interactions of weight 1 + beta).

    Raises:
        ConfigError: ``ease`` is not a fitted EASE, or ``beta`` is not a number >= 0.
        DataError: the two matrices differ in shape.
    """
    if not isinstance(ease, EASE) or not hasattr(ease, "weights_"):
        raise ConfigError(f"the retriever must be a fitted EASE, got {type(ease).__name__}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
        raise ConfigError(f"beta must be a number >= 0 (pseudo-interaction weight), got {beta!r}")
    if user_items.shape != preferences.shape:
        raise DataError(
            f"preferences have shape {preferences.shape}, the training matrix {user_items.shape}; "
            "build them with the training matrix's n_users and n_items"
        )
    x = sp.csr_matrix(user_items, dtype=np.float64, copy=True)  # never the caller's matrix
    x.data[:] = 1.0
    out = copy.copy(ease)
    out.weights_ = ease_weights(x + beta * preferences, reg=ease.config.reg, binarize=False)
    return out


__all__ = ["reranker_preferences", "retriever_from_reranker"]
