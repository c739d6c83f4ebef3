"""Score fusion for retrieve -> rerank: the final order combines both stages, so a reranker can
only add to its retriever.

For one user's shortlist (the retriever's ``C`` best unseen items, best first) with retriever
scores ``r`` and reranker scores ``l``:

* ``"linear"`` (calibrated linear fusion): ``(1 - w) * z(r) + w * z(l)``, where ``z`` standardises
  the scores within the shortlist (mean 0, standard deviation 1; all-equal scores give 0). The
  standardisation is the calibration: title log-likelihoods, yes/no log-odds, letter
  log-probabilities and EASE scores live on unrelated scales, and per-user standardising puts
  them on one before they are mixed.
* ``"rrf"`` (weighted reciprocal-rank fusion, Cormack et al. 2009): ``(1 - w) / (k + rank(r)) +
  w / (k + rank(l))`` with 1-based ranks within the shortlist (ties share their mean rank).
* ``"none"``: the reranker's order alone (the unfused LlamaRec pipeline).

Ties in the fused score keep the retriever's order, so ``w = 0`` reproduces the retriever exactly
and ``w = 1`` gives the reranker's order with ties broken by the retriever.

:func:`learn_weight` picks ``w`` on validation users: the weight of a grid with the best mean
NDCG@k, kept only when its mean gain over ``w = 0`` exceeds two paired standard errors (else 0).
A reranker that is noise thus gets weight 0 (the retriever alone) unless validation users are
fooled by more than twice their standard error, and one that helps gets its best weight.

:func:`shortlist_auc` says whether a reranker knows anything to fuse: per user, the chance that
a target outscores a non-target of the same shortlist. Scored on the reranker's scores minus
their mean at each shortlist position (positions in the retriever's order, the mean taken over
other users), it measures what the reranker says beyond the retriever's order: near 0.5 there,
no fusion weight can help.

Example:
    >>> r = np.array([3.0, 2.0, 1.0])   # the retriever's shortlist, best first
    >>> l = np.array([0.0, 0.0, 5.0])   # the reranker likes the third
    >>> np.argsort(-fuse(r, l, weight=0.0), kind="stable").tolist()
    [0, 1, 2]
    >>> np.argsort(-fuse(r, l, weight=0.9), kind="stable").tolist()
    [2, 0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats

from genrec.errors import ConfigError, DataError

FUSIONS = ("linear", "rrf", "none")
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)  # candidate reranker weights


def standardize(scores: np.ndarray) -> np.ndarray:
    """(C,) float64 ``(s - mean) / std`` of one shortlist's scores; all equal -> all 0."""
    scores = np.asarray(scores, np.float64)
    spread = scores.std()
    if not np.isfinite(spread) or spread == 0:
        return np.zeros_like(scores)
    return (scores - scores.mean()) / spread


def fuse(
    retriever: np.ndarray,
    reranker: np.ndarray | None,
    *,
    weight: float,
    method: str = "linear",
    k: float = 60.0,
) -> np.ndarray:
    """(C,) fused scores of one shortlist (higher = better); see the module docstring.

    Args:
        retriever: (C,) the retriever's scores of the shortlist.
        reranker: (C,) the reranker's scores, or None when ``weight`` is 0 (not asked).
        weight: the reranker's weight in 0..1.
        method: one of :data:`FUSIONS`.
        k: the RRF constant (``method="rrf"``).

    Raises:
        ConfigError: bad method or weight.  DataError: shapes differ or NaN scores.
    """
    check_fusion(method, weight)
    retriever = np.asarray(retriever, np.float64)
    if reranker is None:
        if method == "none" or weight != 0:
            raise DataError(f"fusion {method!r} with weight {weight} needs the reranker's scores")
        return standardize(retriever)
    reranker = np.asarray(reranker, np.float64)
    if reranker.shape != retriever.shape or np.isnan(reranker).any() or np.isnan(retriever).any():
        raise DataError(
            f"retriever and reranker scores must be NaN-free and of one shape, got "
            f"{retriever.shape} and {reranker.shape}"
        )
    if method == "none":
        return reranker
    if method == "rrf":
        return (1 - weight) / (k + scipy.stats.rankdata(-retriever)) + weight / (
            k + scipy.stats.rankdata(-reranker)
        )
    return (1 - weight) * standardize(retriever) + weight * standardize(reranker)


def check_fusion(method: str, weight: float | None) -> None:
    """Raise :class:`ConfigError` unless ``method`` is a fusion and ``weight`` is None or in 0..1."""
    if method not in FUSIONS:
        raise ConfigError(f"fusion {method!r} is unknown; choose from {list(FUSIONS)}")
    if weight is not None and (
        isinstance(weight, bool) or not np.isfinite(weight) or not 0 <= weight <= 1
    ):
        raise ConfigError(
            f"fusion weight {weight!r} must be a number in 0..1 (0 = the retriever "
            "alone, 1 = the reranker alone), or None to learn it on validation users"
        )


@dataclass(frozen=True)
class LearnedWeight:
    """What :func:`learn_weight` chose and why: the grid, each weight's mean validation metric,
    the best weight and the chosen weight (the best, or 0 when its gain is within noise)."""

    weight: float
    best: float
    grid: tuple[float, ...]
    means: tuple[float, ...]
    n_users: int


def learn_weight(
    per_user: np.ndarray, grid: np.ndarray = WEIGHT_GRID, *, min_gain_se: float = 2.0
) -> LearnedWeight:
    """The reranker weight of ``grid`` chosen from ``per_user`` validation metric values.

    Args:
        per_user: (G, U) metric of each user (e.g. NDCG@10) under each weight of ``grid``.
        grid: (G,) ascending weights, ``grid[0] = 0`` (the retriever alone).
        min_gain_se: how many paired standard errors the best weight's mean gain over
            ``grid[0]`` must exceed for it to be chosen.

    Returns:
        the weight with the best mean when its gain over the retriever alone exceeds
        ``min_gain_se`` paired standard errors, else ``grid[0]``.
    """
    per_user = np.asarray(per_user, np.float64)
    grid = np.asarray(grid, np.float64)
    if per_user.ndim != 2 or per_user.shape[0] != len(grid) or per_user.shape[1] == 0:
        raise DataError(
            f"per_user must be (len(grid)={len(grid)}, users >= 1), got {per_user.shape}"
        )
    means = per_user.mean(axis=1)
    best = int(np.argmax(means))
    gain = per_user[best] - per_user[0]
    se = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else np.inf
    chosen = best if gain.mean() > min_gain_se * se else 0
    return LearnedWeight(
        float(grid[chosen]),
        float(grid[best]),
        tuple(grid.tolist()),
        tuple(means.tolist()),
        per_user.shape[1],
    )


def shortlist_auc(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(U,) per user, the probability that a target of the shortlist scores above a non-target
    of it (ties count half): 1 orders every target first, 0.5 is chance. NaN for a user whose
    shortlist holds no target or only targets.

    Args:
        scores: (U, C) each user's scores of their C shortlisted candidates.
        targets: (U, C) bool, which candidates are the user's held-out items.
    """
    scores = np.asarray(scores, np.float64)
    targets = np.asarray(targets, bool)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise DataError(
            f"scores and targets must be the same (U, C) shape, got "
            f"{scores.shape} and {targets.shape}"
        )
    out = np.full(len(scores), np.nan)
    for u, (s, t) in enumerate(zip(scores, targets)):
        if t.any() and not t.all():
            diff = s[t][:, None] - s[~t][None, :]
            out[u] = np.mean(diff > 0) + 0.5 * np.mean(diff == 0)
    return out


__all__ = [
    "FUSIONS",
    "LearnedWeight",
    "WEIGHT_GRID",
    "check_fusion",
    "fuse",
    "learn_weight",
    "shortlist_auc",
    "standardize",
]
