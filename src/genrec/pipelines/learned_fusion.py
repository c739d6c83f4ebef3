"""Learned fusion of several shortlist features: a reranker over a retriever's shortlist that can
only add.

For one user's shortlist (the retriever's ``C`` best unseen items) every candidate has ``F``
features, each standardised within the shortlist as the linear fusion standardises its two
scores (:func:`genrec.pipelines.fusion.standardize`): the retriever's score, a reranker's score,
and side signals such as the log popularity of the item or the text similarity of the item to
the user's history. The fused score is linear, ``s = X w`` (X: (C, F)).

Fitting (:func:`fit_feature_fusion`) on validation users (their shortlists and held-out items):
``w`` maximises the listwise log-likelihood of the held-out items in the shortlist (ListNet
with the targets as the distribution: the mean log-softmax of ``s`` at each target), with an L2
penalty ``l2 * ||w - w0||^2`` towards ``w0`` = the retriever alone (1 on its feature, 0 on the
others); users whose shortlist holds none of their items carry no signal and are left out.

Only adds: the fitted weights are kept when their cross-validated gain over the retriever alone
exceeds ``min_gain_se`` paired standard errors (``folds`` folds of validation users: fitted on
the others, NDCG@k of the fold's users; every validation user counts, with gain 0 when the
shortlist holds none of their items); otherwise the weights are ``w0`` and the order is the
retriever's own (ties keep the retriever's order, so ``w0`` reproduces it exactly).

Example:
    >>> rng = np.random.default_rng(0)
    >>> feats = [standardize_columns(rng.normal(size=(5, 2))) for _ in range(40)]
    >>> hits = [np.eye(5, dtype=bool)[int(np.argmax(x[:, 1]))] for x in feats]  # feature 1 knows
    >>> fusion = fit_feature_fusion(feats, hits, names=("retriever", "oracle"))
    >>> fusion.kept, bool(fusion.weights[1] > fusion.weights[0])
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from genrec.errors import ConfigError, DataError
from genrec.pipelines.fusion import standardize


def standardize_columns(features: np.ndarray) -> np.ndarray:
    """(C, F) float64: each column of one shortlist's raw features standardised within it."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or not np.isfinite(features).all():
        raise DataError(f"features must be a finite (C, F) array, got shape {features.shape}")
    return np.stack([standardize(col) for col in features.T], axis=1)


@dataclass(frozen=True)
class FeatureFusion:
    """Fitted weights of a learned fusion and the evidence for keeping them.

    ``weights`` (F,) are the ones used (``fitted`` when ``kept``, else the retriever alone);
    ``cv_gain`` and ``cv_se`` are the cross-validated mean NDCG@k gain over the retriever alone
    and its paired standard error."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    fitted: tuple[float, ...]
    kept: bool
    cv_gain: float
    cv_se: float
    n_users: int

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(C,) fused scores of one shortlist's standardised (C, F) features; a stable sort
        of their negatives is the fused order (ties keep the retriever's order)."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.weights):
            raise DataError(
                f"features must be (C, {len(self.weights)}) for {self.names}, got {features.shape}"
            )
        return features @ np.asarray(self.weights)


def fit_feature_fusion(
    features: list[np.ndarray],
    targets: list[np.ndarray],
    *,
    names: tuple[str, ...],
    n_relevant: list[int] | None = None,
    retriever: int = 0,
    l2: float = 0.1,
    folds: int = 5,
    k: int = 10,
    min_gain_se: float = 2.0,
    seed: int = 0,
) -> FeatureFusion:
    """Fit the fusion weights on validation users (see the module docstring).

    Args:
        features: per user, (C, F) standardised features of the shortlist (retriever's order).
        targets: per user, (C,) bool: which candidates are the user's held-out items.
        names: the F feature names.
        n_relevant: per user, the number of held-out items (the NDCG ideal); default: the
            number in the shortlist.
        retriever: the column of the retriever's score (the fallback order).
        l2, folds, k, min_gain_se, seed: penalty, cross-validation folds over users, the
            NDCG cut-off, the keep rule and the fold draw.

    Raises:
        ConfigError: bad settings.  DataError: shapes disagree or too few users for the folds.
    """
    n_features = len(names)
    _check(features, targets, n_features, retriever, l2, folds)
    n_relevant = [int(t.sum()) for t in targets] if n_relevant is None else list(n_relevant)
    base = np.eye(n_features)[retriever]
    fold = np.random.default_rng(seed).permutation(len(features)) % folds
    gains = np.zeros(len(features))
    for f in range(folds):
        train = np.flatnonzero(fold != f)
        w = _fit([features[i] for i in train], [targets[i] for i in train], base, l2)
        for i in np.flatnonzero(fold == f):
            gains[i] = _ndcg(features[i] @ w, targets[i], n_relevant[i], k) - _ndcg(
                features[i] @ base, targets[i], n_relevant[i], k
            )
    fitted = _fit(features, targets, base, l2)
    se = gains.std(ddof=1) / np.sqrt(len(gains))
    kept = bool(gains.mean() > min_gain_se * se)
    return FeatureFusion(
        tuple(names),
        tuple((fitted if kept else base).tolist()),
        tuple(fitted.tolist()),
        kept,
        float(gains.mean()),
        float(se),
        len(features),
    )


def _check(features, targets, n_features, retriever, l2, folds) -> None:
    if not 0 <= retriever < n_features:
        raise ConfigError(f"retriever column {retriever} is not one of the {n_features} features")
    if not (l2 >= 0 and isinstance(folds, int) and folds >= 2):
        raise ConfigError(f"need l2 >= 0 and folds >= 2, got l2={l2!r}, folds={folds!r}")
    if len(features) != len(targets) or len(features) < 2 * folds:
        raise DataError(
            f"{len(features)} users' features and {len(targets)} targets: need one target row "
            f"per user and at least {2 * folds} users for {folds} folds"
        )
    for x, t in zip(features, targets):
        if x.ndim != 2 or x.shape[1] != n_features or len(t) != len(x):
            raise DataError(
                f"each user needs (C, {n_features}) features and (C,) targets, got "
                f"{x.shape} and {np.shape(t)}"
            )


def _fit(features, targets, base: np.ndarray, l2: float) -> np.ndarray:
    """Weights maximising the mean log-softmax of the targets, L2 towards ``base``."""
    taught = [(x, np.asarray(t, bool)) for x, t in zip(features, targets) if np.any(t)]
    if not taught:
        return base.copy()

    def loss(w):
        value, grad = l2 * np.sum((w - base) ** 2), 2 * l2 * (w - base)
        for x, t in taught:
            s = x @ w  # (C,)
            p = np.exp(s - s.max())
            p /= p.sum()
            q = t / t.sum()  # the targets as a distribution
            value -= np.sum(q * (s - s.max() - np.log(np.exp(s - s.max()).sum()))) / len(taught)
            grad -= x.T @ (q - p) / len(taught)
        return value, grad

    return scipy.optimize.minimize(loss, base.copy(), jac=True, method="L-BFGS-B").x


def _ndcg(scores: np.ndarray, targets: np.ndarray, n_relevant: int, k: int) -> float:
    """NDCG@k of a shortlist ordered by ``scores`` (ties: shortlist order)."""
    if n_relevant == 0:
        return 0.0
    top = np.argsort(-scores, kind="stable")[:k]
    dcg = np.sum(np.asarray(targets, bool)[top] / np.log2(np.arange(2, len(top) + 2)))
    return float(dcg / np.sum(1 / np.log2(np.arange(2, min(n_relevant, k) + 2))))


__all__ = ["FeatureFusion", "fit_feature_fusion", "standardize_columns"]
