"""Per-user evaluation metrics as pure, vectorised numpy functions.

The evaluation protocol (``genrec.evaluation.protocol``) ranks items for a batch of users and
hands the results here as arrays; nothing in this module sees a model. Every function returns one
value per user (float64, shape ``(U,)``) unless its docstring says otherwise, so the caller can
average, bootstrap (:mod:`genrec.evaluation.stats`) or compare models user by user.

Families:

* ranking accuracy from a hit matrix: :func:`ranking_metrics` (Recall, Precision, NDCG, MRR, Hit,
  MAP at several cut-offs, with RecBole's definitions);
* :func:`auc_from_counts` from per-user counts of mis-ordered and tied (positive, negative) pairs;
* rating prediction: :func:`rmse`, :func:`mae` per user and :func:`rating_errors` over all ratings;
* beyond accuracy from the recommended item ids: :func:`item_coverage`, :func:`gini_exposure`
  (corpus-level floats), :func:`average_popularity`, :func:`novelty` and
  :func:`intra_list_diversity` (per user).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError

RANKING_METRICS = ("ndcg", "recall", "mrr", "hit", "precision", "map")  # also the report order

__all__ = [
    "RANKING_METRICS",
    "ranking_metrics",
    "auc_from_counts",
    "rmse",
    "mae",
    "rating_errors",
    "item_coverage",
    "gini_exposure",
    "average_popularity",
    "novelty",
    "intra_list_diversity",
]


# --------------------------------------------------------------------------- ranking accuracy


def ranking_metrics(
    hits: np.ndarray,
    n_relevant: np.ndarray,
    ks: Iterable[int],
    names: Sequence[str] = RANKING_METRICS,
) -> dict[str, np.ndarray]:
    """Top-k ranking metrics of every user from a hit matrix.

    Args:
        hits: (U, K) bool; ``hits[u, r]`` is True when the item user ``u`` got at rank ``r + 1``
            is relevant (a held-out item).
        n_relevant: (U,) int >= 1, the number of relevant items of each user (in the whole
            catalogue, not only in the top K).
        ks: cut-offs, each ``1 <= k <= K``.
        names: metrics to compute, any of ``"recall", "precision", "ndcg", "mrr", "hit", "map"``.

    Returns:
        ``{"<name>@<k>": (U,) float64}`` for every name and k, e.g. ``"ndcg@10"``. With
        ``h_u(k)`` the hits in the top k and ``n_u`` the relevant count:

        * recall@k = h_u(k) / n_u (RecBole's definition, *not* divided by min(k, n_u));
        * precision@k = h_u(k) / k;
        * ndcg@k: binary relevance, DCG = sum over hit ranks r <= k of 1 / log2(r + 1), divided
          by the ideal DCG of min(n_u, k) hits at ranks 1..min(n_u, k);
        * mrr@k = 1 / rank of the first hit within the top k, 0 without one;
        * hit@k = 1 if any of the top k is relevant, else 0;
        * map@k = (1 / min(n_u, k)) * sum over hit ranks r <= k of precision@r (RecBole's
          normaliser min(n_u, k)).

    Raises:
        ConfigError: a k outside ``1..K``, no k, or an unknown metric name.
        DataError: wrong shapes, ``n_relevant < 1``, or more hits than relevant items.

    Example:
        >>> hits = np.array([[True, False, True]])
        >>> out = ranking_metrics(hits, np.array([2]), ks=[1, 3], names=("recall", "mrr"))
        >>> {key: float(v[0]) for key, v in out.items()}
        {'recall@1': 0.5, 'mrr@1': 1.0, 'recall@3': 1.0, 'mrr@3': 1.0}
    """
    hits, n_relevant = _check_hits(hits, n_relevant)
    ks = check_ks(ks, hits.shape[1])
    names = _check_names(names)
    depth = hits.shape[1]
    ranks = np.arange(1, depth + 1, dtype=np.float64)  # (K,)
    hit_f = hits.astype(np.float64)  # (U, K)
    cum_hits = np.cumsum(hit_f, axis=1)  # (U, K) hits in top r
    discount = 1.0 / np.log2(ranks + 1.0)  # (K,)
    cum_dcg = np.cumsum(hit_f * discount, axis=1)  # (U, K)
    ideal = np.cumsum(discount)  # (K,) IDCG of r hits
    cum_ap = np.cumsum(hit_f * (cum_hits / ranks), axis=1)  # (U, K) sum of prec@hit
    has_hit = hits.any(axis=1)
    first_rank = np.where(has_hit, np.argmax(hits, axis=1) + 1, depth + 1)  # (U,)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        h = cum_hits[:, k - 1]  # (U,)
        n_ideal = np.minimum(n_relevant, k)  # (U,)
        values = {
            "recall": lambda: h / n_relevant,
            "precision": lambda: h / k,
            "ndcg": lambda: cum_dcg[:, k - 1] / ideal[n_ideal - 1],
            "mrr": lambda: np.where(first_rank <= k, 1.0 / first_rank, 0.0),
            "hit": lambda: (first_rank <= k).astype(np.float64),
            "map": lambda: cum_ap[:, k - 1] / n_ideal,
        }
        for name in names:
            out[f"{name}@{k}"] = np.asarray(values[name](), dtype=np.float64)
    return out


def _check_hits(hits, n_relevant) -> tuple[np.ndarray, np.ndarray]:
    hits = np.asarray(hits)
    if hits.ndim != 2:
        raise DataError(f"hits must be a (U, K) bool matrix; got shape {hits.shape}")
    if hits.dtype != np.bool_:
        if not np.isin(hits, (0, 1)).all():
            raise DataError("hits must be bool (or 0/1); got other values")
        hits = hits.astype(bool)
    n_relevant = np.asarray(n_relevant)
    if n_relevant.shape != (hits.shape[0],):
        raise DataError(
            f"n_relevant must have shape ({hits.shape[0]},) to match hits; got {n_relevant.shape}"
        )
    if n_relevant.size and (n_relevant.min() < 1 or not np.all(n_relevant == np.round(n_relevant))):
        bad = n_relevant[(n_relevant < 1) | (n_relevant != np.round(n_relevant))][:5]
        raise DataError(
            f"n_relevant must be integers >= 1; got {bad.tolist()}; "
            "drop users without relevant items before ranking"
        )
    n_relevant = n_relevant.astype(np.int64)
    too_many = hits.sum(axis=1) > n_relevant
    if too_many.any():
        raise DataError(
            f"{int(too_many.sum())} user(s) have more hits than relevant items "
            f"(first: row {int(np.argmax(too_many))}); hits and n_relevant disagree"
        )
    return hits, n_relevant


def check_ks(ks, depth: int, *, what: str = "positions in the ranked list") -> list[int]:
    """Cut-offs as ints, each in 1..depth; ConfigError naming the bad one otherwise."""
    ks = [ks] if np.isscalar(ks) else list(ks)
    if not ks:
        raise ConfigError("ks is empty; give at least one cut-off, e.g. ks=(10, 20)")
    out = []
    for k in ks:
        try:
            whole = not isinstance(k, (bool, np.bool_)) and float(k).is_integer()
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise ConfigError(f"cut-off k={k!r} is not an integer; use e.g. ks=(10, 20)")
        if not 1 <= int(k) <= depth:
            raise ConfigError(
                f"cut-off k={int(k)} is outside 1..{depth} ({depth} {what}); use a smaller k"
            )
        out.append(int(k))
    return out


def _check_names(names: Sequence[str]) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    lowered = [str(n).lower() for n in names]
    unknown = [n for n in lowered if n not in RANKING_METRICS]
    if unknown:
        raise ConfigError(
            f"unknown ranking metric(s) {unknown}; choose from {list(RANKING_METRICS)}"
        )
    return lowered


# --------------------------------------------------------------------------- AUC


def auc_from_counts(
    n_neg_above: np.ndarray, n_neg_tied: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray
) -> np.ndarray:
    """Per-user AUC from counts of mis-ordered and tied (positive, negative) pairs.

    Args:
        n_neg_above: (U,) summed over the user's positives, the number of negatives scored
            strictly above each positive.
        n_neg_tied: (U,) the same sum for negatives scored equal to a positive (ties count half).
        n_pos: (U,) int >= 1, positives of the user.
        n_neg: (U,) int >= 0, negatives of the user (candidate items that are not positives).

    Returns:
        (U,) float64 ``1 - (n_neg_above + n_neg_tied / 2) / (n_pos * n_neg)``: the probability
        that a random positive outranks a random negative. Users with ``n_neg == 0`` (every
        candidate is a positive) get NaN, since AUC is undefined for them; average with
        ``np.nanmean``.

    Raises:
        DataError: shapes differ, negative counts, ``n_pos < 1``, or more counted pairs than
            ``n_pos * n_neg``.

    Example:
        >>> float(auc_from_counts(np.array([1]), np.array([1]), np.array([2]), np.array([2]))[0])
        0.625
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (n_neg_above, n_neg_tied, n_pos, n_neg)]
    above, tied, pos, neg = arrays
    if len({a.shape for a in arrays}) != 1 or above.ndim != 1:
        raise DataError(
            "n_neg_above, n_neg_tied, n_pos and n_neg must be 1-D arrays of one "
            f"length; got shapes {[a.shape for a in arrays]}"
        )
    if any(np.isnan(a).any() or (a < 0).any() for a in arrays):
        raise DataError("AUC counts must be non-negative numbers; got NaN or negative values")
    if (pos < 1).any():
        raise DataError(
            f"n_pos must be >= 1 for every user; got {pos[pos < 1][:5].tolist()}; "
            "drop users without positives"
        )
    pairs = pos * neg  # (U,)
    if (above + tied > pairs).any():
        raise DataError(
            "n_neg_above + n_neg_tied exceeds n_pos * n_neg for some users; "
            "the counts must be summed over positives of the same user"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = 1.0 - (above + 0.5 * tied) / pairs
    return np.where(neg > 0, auc, np.nan)


# --------------------------------------------------------------------------- rating errors


def rmse(pred: np.ndarray, true: np.ndarray, user_idx: np.ndarray, n_users: int) -> np.ndarray:
    """Per-user root-mean-square error over each user's rated items.

    Args:
        pred, true: (N,) predicted and true ratings, one per (user, item) rating.
        user_idx: (N,) int in ``0..n_users-1``, the user of each rating.
        n_users: number of users U.

    Returns:
        (U,) float64; NaN for users without ratings. Note the mean of this array is a per-user
        average; the usual corpus RMSE over all ratings is ``sqrt(mean(squared error))`` — use
        :func:`rating_errors` for it.

    Raises:
        DataError: NaN / infinite values, shapes that differ, or user indices out of range.

    Example:
        >>> rmse(np.array([1., 3., 5.]), np.array([2., 3., 5.]), np.array([0, 0, 2]), 3)
        array([0.70710678,        nan, 0.        ])
    """
    err, counts = _per_user_sums(pred, true, user_idx, n_users, square=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(err / counts)


def mae(pred: np.ndarray, true: np.ndarray, user_idx: np.ndarray, n_users: int) -> np.ndarray:
    """Per-user mean absolute error; same arguments, NaN rule and errors as :func:`rmse`.

    Example:
        >>> mae(np.array([1., 3., 5.]), np.array([2., 3., 5.]), np.array([0, 0, 2]), 3)
        array([0.5, nan, 0. ])
    """
    err, counts = _per_user_sums(pred, true, user_idx, n_users, square=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        return err / counts


def rating_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Corpus RMSE and MAE over all ratings: ``{"rmse": sqrt(mean(e**2)), "mae": mean(|e|)}``.

    Raises:
        DataError: no ratings, NaN / infinite values, or shapes that differ.

    Example:
        >>> rating_errors(np.array([1., 3.]), np.array([2., 3.]))
        {'rmse': 0.7071067811865476, 'mae': 0.5}
    """
    diff = _rating_diff(pred, true)
    if diff.size == 0:
        raise DataError("no ratings to evaluate; pred and true are empty")
    return {"rmse": float(np.sqrt(np.mean(diff**2))), "mae": float(np.mean(np.abs(diff)))}


def _rating_diff(pred, true) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.ndim != 1 or pred.shape != true.shape:
        raise DataError(f"pred and true must be 1-D of one length; got {pred.shape}, {true.shape}")
    if not np.isfinite(pred).all():
        raise DataError(
            f"{int((~np.isfinite(pred)).sum())} prediction(s) are NaN or infinite; "
            "the model must score every rated (user, item) pair"
        )
    if not np.isfinite(true).all():
        raise DataError("true ratings contain NaN or infinite values; clean the test split")
    return pred - true


def _per_user_sums(pred, true, user_idx, n_users: int, *, square: bool):
    diff = _rating_diff(pred, true)
    user_idx = np.asarray(user_idx)
    if user_idx.shape != diff.shape:
        raise DataError(f"user_idx must have shape {diff.shape}; got {user_idx.shape}")
    if user_idx.size and (user_idx.min() < 0 or user_idx.max() >= n_users):
        raise DataError(
            f"user_idx must lie in 0..{n_users - 1}; got values in "
            f"{int(user_idx.min())}..{int(user_idx.max())}"
        )
    err = diff**2 if square else np.abs(diff)
    sums = np.bincount(user_idx.astype(np.int64), weights=err, minlength=n_users)
    counts = np.bincount(user_idx.astype(np.int64), minlength=n_users).astype(np.float64)
    return sums, counts


# --------------------------------------------------------------------------- beyond accuracy


def item_coverage(top_items: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue recommended to at least one user in the top k (a float in [0, 1]).

    ``top_items`` is (U, K) int of item indices, ``-1`` marking an empty slot (a user with fewer
    than K candidates).

    Example:
        >>> item_coverage(np.array([[0, 1], [1, -1]]), n_items=4, k=2)
        0.5
    """
    top = _check_top_items(top_items, k, n_items)
    return float(np.unique(top[top >= 0]).size / n_items)


def gini_exposure(top_items: np.ndarray, n_items: int, k: int) -> float:
    """Gini coefficient of how often each catalogue item appears in the top-k lists.

    Every one of the ``n_items`` items counts, recommended or not. With exposure counts sorted
    ascending ``x_1 <= ... <= x_n``: ``G = sum_i (2i - n - 1) x_i / (n * sum_i x_i)``. 0 means
    every item is shown equally often; a single item taking all exposure gives ``(n - 1) / n``
    (-> 1 for large catalogues). NaN when no slot holds an item.

    Example:
        >>> gini_exposure(np.array([[0], [0]]), n_items=4, k=1)
        0.75
    """
    top = _check_top_items(top_items, k, n_items)
    counts = np.sort(np.bincount(top[top >= 0], minlength=n_items).astype(np.float64))
    total = counts.sum()
    if total == 0:
        return float("nan")
    weights = 2.0 * np.arange(1, n_items + 1) - n_items - 1  # (n,)
    return float(np.dot(weights, counts) / (n_items * total))


def average_popularity(top_items: np.ndarray, item_popularity: np.ndarray, k: int) -> np.ndarray:
    """(U,) mean training popularity of each user's top-k items (empty slots skipped).

    ``item_popularity`` is (n_items,), e.g. the number of training users of each item. Users
    whose top k holds no item get NaN.

    Example:
        >>> average_popularity(np.array([[0, 1], [2, -1]]), np.array([10, 20, 3]), k=2)
        array([15.,  3.])
    """
    popularity = _check_popularity(item_popularity)
    return _mean_over_slots(top_items, k, popularity)


def novelty(top_items: np.ndarray, item_popularity: np.ndarray, n_users: int, k: int) -> np.ndarray:
    """(U,) mean self-information ``-log2(pop_i / n_users)`` of each user's top-k items.

    ``item_popularity[i]`` is the number of training users who interacted with item i and
    ``n_users`` the number of training users, so ``pop_i / n_users`` is the chance a random
    user knows the item. Popularity is floored at 1 so never-seen items get the finite maximum
    ``log2(n_users)`` instead of infinity. Empty slots are skipped; users with none get NaN.

    Example:
        >>> novelty(np.array([[0, 1]]), np.array([8, 0]), n_users=8, k=2)
        array([1.5])
    """
    popularity = _check_popularity(item_popularity)
    if n_users < 1:
        raise ConfigError(f"n_users must be >= 1; got {n_users}")
    information = -np.log2(np.maximum(popularity, 1.0) / n_users)  # (n_items,)
    return _mean_over_slots(top_items, k, information)


def intra_list_diversity(top_items: np.ndarray, item_features, k: int) -> np.ndarray:
    """(U,) mean pairwise cosine distance ``1 - cos(f_i, f_j)`` within each user's top k.

    Args:
        top_items: (U, K) int item indices, ``-1`` for an empty slot (skipped).
        item_features: (n_items, F) scipy sparse matrix (e.g. one-hot genres) or dense array.
        k: list length to look at.

    Returns:
        (U,) float64, the mean over unordered pairs of filled slots. An item whose feature row is
        all zeros has cosine similarity 0 with every item (distance 1), the usual convention of
        cosine-similarity routines. Users with fewer than two items in the top k get NaN. With
        non-negative features (one-hot genres) every value lies in [0, 1].

    Example:
        >>> feats = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1]]))
        >>> intra_list_diversity(np.array([[0, 1, 2]]), feats, k=3)
        array([0.66666667])
    """
    features = sp.csr_matrix(item_features, dtype=np.float64)
    top = _check_top_items(top_items, k, features.shape[0])
    norms = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())  # (n_items,)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sp.diags(scale) @ features  # (n_items, F) unit rows
    # The sum of pairwise dot products of vectors x_1..x_m is (|sum x|^2 - sum |x|^2) / 2.
    rows, slots = np.nonzero(top >= 0)
    picks = sp.csr_matrix(
        (np.ones(rows.size), (rows, top[rows, slots])), shape=(top.shape[0], features.shape[0])
    )  # (U, n_items) counts
    summed = picks @ unit  # (U, F)
    sq_norm_of_sum = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
    sum_sq_norms = picks @ (norms > 0).astype(np.float64)  # (U,) each |x|^2 is 1 or 0
    n_filled = (top >= 0).sum(axis=1).astype(np.float64)
    n_pairs = n_filled * (n_filled - 1) / 2.0
    pair_sim = (sq_norm_of_sum - sum_sq_norms) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, 1.0 - pair_sim / n_pairs, np.nan)


def _check_top_items(top_items, k: int, n_items: int) -> np.ndarray:
    if n_items < 1:
        raise ConfigError(f"n_items must be >= 1; got {n_items}")
    top = np.asarray(top_items)
    if top.ndim != 2:
        raise DataError(f"top_items must be a (U, K) int matrix; got shape {top.shape}")
    if top.size and not np.issubdtype(top.dtype, np.integer):
        raise DataError(f"top_items must hold integer item indices; got dtype {top.dtype}")
    (k,) = check_ks([k], top.shape[1])
    top = top[:, :k].astype(np.int64)
    if top.size and (top.min() < -1 or top.max() >= n_items):
        raise DataError(
            f"top_items must lie in 0..{n_items - 1} (or -1 for an empty slot); "
            f"got values in {int(top.min())}..{int(top.max())}"
        )
    return top


def _check_popularity(item_popularity) -> np.ndarray:
    popularity = np.asarray(item_popularity, dtype=np.float64)
    if popularity.ndim != 1 or np.isnan(popularity).any() or (popularity < 0).any():
        raise DataError(
            "item_popularity must be a 1-D array of non-negative counts "
            f"(one per item); got shape {popularity.shape}"
        )
    return popularity


def _mean_over_slots(top_items, k: int, item_values: np.ndarray) -> np.ndarray:
    top = _check_top_items(top_items, k, item_values.shape[0])
    filled = top >= 0  # (U, k)
    values = np.where(filled, item_values[np.where(filled, top, 0)], 0.0)  # (U, k)
    n_filled = filled.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_filled > 0, values.sum(axis=1) / n_filled, np.nan)
