"""Metrics of whole slates: k items shown together, judged as one page.

A *slate* is a row of k item indices shown to a user at once (``-1`` marks an empty slot). The
functions here take a batch of slates (U, k) and, where relevant, each user's target items as a
binary CSR (U, n_items) (row u holds the held-out items of the user of slate u), and return one
value per user (float64, shape ``(U,)``; NaN where the metric is undefined, so average with
``np.nanmean``) or one corpus-level float:

* :func:`slate_hit_rate`: 1 if any target is on the slate;
* :func:`slate_clicks` and :func:`slate_precision`: the targets on the slate (the clicks of a user
  who clicks exactly the targets) and that count over k;
* :func:`slate_ndcg`: NDCG@k with the slate order as the ranking;
* :func:`slate_diversity`: 1 - mean pairwise Jaccard similarity of the items' feature sets (e.g.
  genres); :func:`metrics.intra_list_diversity` gives the cosine version (e.g. on embeddings);
* :func:`catalog_coverage`: share of the catalog on at least one slate;
* :func:`greedy_slates`: the greedy-ranking baseline, any Recommender's top-k list as a slate;
* :func:`slate_report`: the means of all of the above, for a benchmark table.

Example:
    >>> slates = np.array([[0, 1, 2], [3, 4, -1]])
    >>> targets = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [1, 0, 0, 0, 0]]))
    >>> slate_hit_rate(slates, targets), slate_clicks(slates, targets)
    (array([1., 0.]), array([1., 0.]))
    >>> catalog_coverage(slates, n_items=5)
    1.0
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError
from genrec.evaluation import metrics as M

__all__ = [
    "slate_hits",
    "slate_hit_rate",
    "slate_clicks",
    "slate_precision",
    "slate_ndcg",
    "slate_diversity",
    "catalog_coverage",
    "greedy_slates",
    "slate_report",
]


def slate_hits(slates: np.ndarray, targets: sp.spmatrix) -> np.ndarray:
    """(U, k) bool: is the item in each slot one of the user's targets (empty slots: False).

    Raises:
        DataError: slates not a 2-D int array, item indices outside ``0..n_items-1`` (other than
            -1), an item repeated within a slate, or a row count that differs from ``targets``.
    """
    slates = _check_slates(slates, targets.shape[1])
    if targets.shape[0] != slates.shape[0]:
        raise DataError(
            f"got {slates.shape[0]} slates for {targets.shape[0]} target rows; "
            "row u of targets must belong to the user of slate u"
        )
    targets = sp.csr_matrix(targets)
    targets.sum_duplicates()
    targets.eliminate_zeros()
    n_items = targets.shape[1]
    rows = np.repeat(np.arange(targets.shape[0], dtype=np.int64), np.diff(targets.indptr))
    keys = np.sort(rows * n_items + targets.indices)  # (nnz,) sorted (user, item) keys
    probe = np.arange(slates.shape[0], dtype=np.int64)[:, None] * n_items + slates  # (U, k)
    if keys.size == 0:
        return np.zeros(slates.shape, bool)
    pos = np.minimum(np.searchsorted(keys, probe), keys.size - 1)
    return (keys[pos] == probe) & (slates >= 0)


def slate_hit_rate(slates: np.ndarray, targets: sp.spmatrix) -> np.ndarray:
    """(U,) 1.0 if the slate holds at least one target, else 0.0; NaN for users without targets."""
    return _where_targets(slate_hits(slates, targets).any(axis=1).astype(np.float64), targets)


def slate_clicks(slates: np.ndarray, targets: sp.spmatrix) -> np.ndarray:
    """(U,) number of targets on the slate: the expected clicks of a user who clicks exactly
    his targets; NaN for users without targets."""
    return _where_targets(slate_hits(slates, targets).sum(axis=1).astype(np.float64), targets)


def slate_precision(slates: np.ndarray, targets: sp.spmatrix) -> np.ndarray:
    """(U,) targets on the slate divided by the slate length k (empty slots count as misses);
    NaN for users without targets."""
    return slate_clicks(slates, targets) / max(1, np.asarray(slates).shape[1])


def slate_ndcg(slates: np.ndarray, targets: sp.spmatrix) -> np.ndarray:
    """(U,) NDCG@k of the slate read top to bottom: DCG = sum over target slots r (1-based) of
    1 / log2(r + 1), over the ideal DCG of min(n_targets, k) hits; NaN for users without
    targets.

    Example:
        >>> float(slate_ndcg(np.array([[5, 2]]), sp.csr_matrix(([1.0], ([0], [2])), shape=(1, 6)))[0])
        0.6309297535714575
    """
    hits = slate_hits(slates, targets)
    n_targets = _target_counts(targets)
    out = np.full(hits.shape[0], np.nan)
    has = n_targets > 0
    if has.any() and hits.shape[1] > 0:
        k = hits.shape[1]
        out[has] = M.ranking_metrics(hits[has], n_targets[has], ks=[k], names=("ndcg",))[
            f"ndcg@{k}"
        ]
    return out


def slate_diversity(slates: np.ndarray, item_features: sp.spmatrix) -> np.ndarray:
    """(U,) 1 - mean pairwise Jaccard similarity of the feature sets of the slate's items.

    Args:
        slates: (U, k) item indices, -1 for an empty slot (skipped).
        item_features: (n_items, F) binary matrix, e.g. one-hot genres
            (``catalog.feature_matrix("genres")``); any non-zero counts as a member of the set.

    Returns:
        (U,) float64 in [0, 1]; a pair of items that both have no feature has similarity 0 (the
        convention of :func:`metrics.intra_list_diversity`). NaN for slates with fewer than two
        items.

    Example:
        >>> genres = sp.csr_matrix(np.array([[1, 1], [1, 0], [0, 1]]))
        >>> slate_diversity(np.array([[0, 1, 2]]), genres)  # Jaccard 1/2, 1/2, 0
        array([0.66666667])
    """
    features = (sp.csr_matrix(item_features) != 0).astype(np.float64).tocsr()
    slates = _check_slates(slates, features.shape[0])
    filled = slates >= 0  # (U, k)
    onehot = features[np.where(filled, slates, 0).ravel()].toarray()  # (U * k, F)
    sets = onehot.reshape(slates.shape[0], slates.shape[1], -1) * filled[:, :, None]  # (U, k, F)
    inter = sets @ sets.transpose(0, 2, 1)  # (U, k, k) shared features
    sizes = sets.sum(axis=2)  # (U, k)
    union = sizes[:, :, None] + sizes[:, None, :] - inter
    jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    pair = filled[:, :, None] & filled[:, None, :] & np.triu(np.ones(inter.shape[1:], bool), 1)
    n_pairs = pair.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, 1.0 - (jaccard * pair).sum(axis=(1, 2)) / n_pairs, np.nan)


def catalog_coverage(slates: np.ndarray, n_items: int) -> float:
    """Share of the ``n_items`` catalog items that appear on at least one slate."""
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ConfigError(f"n_items must be a positive integer; got {n_items!r}")
    slates = _check_slates(slates, n_items)
    return float(np.unique(slates[slates >= 0]).size / n_items)


def greedy_slates(
    model, histories: sp.spmatrix, *, k: int = 10, users: np.ndarray | None = None
) -> np.ndarray:
    """The greedy-ranking baseline: ``model``'s top-k unseen items per history, as (B, k) slates.

    ``model`` is any fitted genrec Recommender; the slate is its ``recommend(..., k=k)`` list
    (history items excluded, best first; -1 where fewer than k items are allowed).
    """
    if not callable(getattr(model, "recommend", None)):
        raise ConfigError(f"greedy_slates needs a genrec Recommender, got {type(model).__name__}")
    return model.recommend(histories, users=users, k=k, exclude_seen=True)[0]


def slate_report(
    slates: np.ndarray, targets: sp.spmatrix, *, item_features: sp.spmatrix | None = None
) -> dict[str, float]:
    """Means over users with targets of every slate metric, plus catalog coverage.

    Returns ``{"hit", "clicks", "precision", "ndcg", "coverage"}`` (and ``"diversity"`` when
    ``item_features`` is given; averaged over all slates with two or more items).
    """
    has = _target_counts(targets) > 0
    if not has.any():
        raise DataError("no user has a target item; nothing to evaluate the slates against")
    out = {
        "hit": slate_hit_rate(slates, targets),
        "clicks": slate_clicks(slates, targets),
        "precision": slate_precision(slates, targets),
        "ndcg": slate_ndcg(slates, targets),
    }
    report = {name: float(np.nanmean(values[has])) for name, values in out.items()}
    if item_features is not None:
        report["diversity"] = float(np.nanmean(slate_diversity(slates, item_features)))
    report["coverage"] = catalog_coverage(slates, targets.shape[1])
    return report


def _check_slates(slates, n_items: int) -> np.ndarray:
    slates = np.asarray(slates)
    if slates.ndim != 2:
        raise DataError(f"slates must be a (U, k) int matrix; got shape {slates.shape}")
    if slates.size and not np.issubdtype(slates.dtype, np.integer):
        raise DataError(f"slates must hold integer item indices; got dtype {slates.dtype}")
    slates = slates.astype(np.int64)
    if slates.size and (slates.min() < -1 or slates.max() >= n_items):
        raise DataError(
            f"slate items must lie in 0..{n_items - 1} (or -1 for an empty slot); "
            f"got values in {int(slates.min())}..{int(slates.max())}"
        )
    ordered = np.sort(slates, axis=1)
    if ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any():
        raise DataError(
            "a slate repeats an item; each slot of a slate must hold a different "
            "item (use -1 for empty slots)"
        )
    return slates


def _target_counts(targets) -> np.ndarray:
    """(U,) number of distinct target items (non-zero entries) per row."""
    return np.asarray((sp.csr_matrix(targets) != 0).sum(axis=1)).ravel().astype(np.int64)


def _where_targets(values: np.ndarray, targets) -> np.ndarray:
    return np.where(_target_counts(targets) > 0, values, np.nan)
