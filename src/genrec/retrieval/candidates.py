"""Candidate items for users from their embeddings, through a vector index, and its recall.

A factor model (``ials``, ``bpr``, ``bpr-implicit``, ...) scores ``user_vector . item_vector``,
so its top-k is a maximum-inner-product search: on a large catalog an approximate index
(:mod:`genrec.retrieval.index`: FAISS ``"ivf"`` or ``"hnsw"``) finds nearly the same items
without scoring all of them. :class:`CandidateIndex` holds the item vectors in one index and
returns each user's top-k unseen items; :func:`recall_vs_exact` measures how many of the exact
top-k an index finds, at several search settings (``nprobe`` for IVF, ``ef_search`` for HNSW).
:func:`factor_embeddings` reads (user vectors, item vectors) off a fitted factor model.

Example:
    >>> rng = np.random.default_rng(0)
    >>> items, users = rng.normal(size=(500, 8)), rng.normal(size=(20, 8))
    >>> rows = recall_vs_exact(users, items, kind="exact", settings=[{}], k=10)
    >>> rows[0]["recall"]
    1.0
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError
from genrec.retrieval.index import build_index, recall_at_k


class CandidateIndex:
    """Top-k items per user vector by inner product, through one index over the item vectors.

    Args:
        item_vectors: (n_items, D) item embeddings; ids are their row positions.
        kind: an index kind of :func:`genrec.retrieval.index.build_index` (``"exact"``,
            ``"flat"``, ``"hnsw"``, ``"ivf"``, ``"ivfpq"``).
        threads: FAISS OpenMP threads.
        params: the index's parameters (``nlist``, ``nprobe``, ``M``, ``ef_search``, ...).
    """

    def __init__(self, item_vectors: np.ndarray, kind: str = "hnsw", *, threads: int = 1, **params):
        items = np.asarray(item_vectors, np.float32)
        if items.ndim != 2 or not len(items):
            raise DataError(
                f"item_vectors must be a non-empty (n_items, dim) array, got {items.shape}"
            )
        self.n_items, self.kind = len(items), kind
        self.index = build_index(kind, items.shape[1], threads=threads, **params)
        start = time.perf_counter()
        self.index.add(items)
        self.build_seconds = time.perf_counter() - start

    def search(
        self, user_vectors: np.ndarray, k: int, *, exclude: sp.spmatrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)``, both (B, k), best first, for (B, D) user vectors.

        ``exclude`` (B, n_items) CSR marks items a user must not get (its history): the index
        is asked for ``k`` plus the longest row's count, and those are dropped. Where fewer than
        ``k`` remain (an approximate index may return fewer), the tail is item -1, score -inf.
        """
        users = np.asarray(user_vectors, np.float32)
        extra = 0
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
            if exclude.shape != (len(users), self.n_items):
                raise DataError(
                    f"exclude must be (users, n_items) = ({len(users)}, {self.n_items}), "
                    f"got {exclude.shape}"
                )
            extra = int(np.diff(exclude.indptr).max(initial=0))
        wide = min(self.n_items, k + extra)
        scores, ids = self.index.search(users, wide)  # (B, wide)
        if exclude is not None:
            rows = np.repeat(np.arange(len(users)), wide)
            blocked = np.asarray(exclude[rows, np.maximum(ids.reshape(-1), 0)]).reshape(ids.shape)
            ids = np.where(blocked > 0, -1, ids)
        return _first_valid(ids, scores, k)


def _first_valid(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` ids >= 0 of each row (order kept), padded with -1 / -inf."""
    keep = ids >= 0
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # valid ones first, order kept
    items = np.take_along_axis(ids, order, 1)
    values = np.take_along_axis(scores, order, 1).astype(np.float32)
    short = items < 0
    values[short] = -np.inf
    if items.shape[1] < k:  # the index held fewer than k items
        pad = k - items.shape[1]
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
    return items, values


def recall_vs_exact(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    *,
    kind: str,
    settings: Sequence[Mapping[str, Any]],
    k: int = 10,
    exclude: sp.spmatrix | None = None,
    threads: int = 1,
    build: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Recall@k of an index of ``kind`` against exact search, at each of ``settings``.

    Args:
        user_vectors, item_vectors: (B, D) queries and (n_items, D) items.
        kind: the index kind; ``build`` holds its build parameters (``nlist``, ``M``, ...).
        settings: search parameters to try in turn on the one built index, e.g.
            ``[{"nprobe": 1}, {"nprobe": 16}]`` (IVF) or ``[{"ef_search": 64}]`` (HNSW);
            ``[{}]`` for an index without search parameters.
        k: list length; ``exclude``: items each user must not get (as in
            :meth:`CandidateIndex.search`).

    Returns:
        One row per setting: ``{"kind", **setting, "k", "recall", "seconds", "exact_seconds",
        "build_seconds"}``; ``recall`` is :func:`recall_at_k` of the index's candidates against
        the exact ones (both with ``exclude`` applied), the times are for all B users.
    """
    if not settings:
        raise ConfigError("settings must list at least one search setting, e.g. [{}]")
    exact = CandidateIndex(item_vectors, "exact")
    start = time.perf_counter()
    truth, _ = exact.search(user_vectors, k, exclude=exclude)
    exact_seconds = time.perf_counter() - start
    approx = CandidateIndex(item_vectors, kind, threads=threads, **dict(build or {}))
    rows = []
    for setting in settings:
        if setting:
            approx.index.set_search_params(**setting)
        start = time.perf_counter()
        found, _ = approx.search(user_vectors, k, exclude=exclude)
        rows.append(
            {
                "kind": kind,
                **dict(build or {}),
                **dict(setting),
                "k": k,
                "recall": recall_at_k(found, truth),
                "seconds": time.perf_counter() - start,
                "exact_seconds": exact_seconds,
                "build_seconds": approx.build_seconds,
            }
        )
    return rows


def factor_embeddings(
    model, histories: sp.spmatrix, *, users: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(user_vectors (B, D), item_vectors (n_items, D))`` of a fitted factor model, whose
    scores are their inner products (models with ``user_vectors`` and ``item_factors_``:
    ``ials``, ``bpr``, ``bpr-implicit``).

    Raises:
        ConfigError: the model has no such embeddings (e.g. ``ease``, ``multvae``).
    """
    if not (hasattr(model, "user_vectors") and hasattr(model, "item_factors_")):
        raise ConfigError(
            f"{getattr(model, 'name', type(model).__name__)} has no user and item embeddings "
            "whose inner product is its score; use a factor model (ials, bpr, bpr-implicit)"
        )
    histories, users = model._check_batch(histories, users)
    return model.user_vectors(histories, users=users), np.asarray(model.item_factors_, np.float32)
