"""A trained probe on how a language model reads a shortlist, fused so it can only add.

The other rerankers read a language model's *answers* (a title's likelihood, a letter's
probability). A probe reads its *hidden states*: for each user, the listwise prompt over the
retriever's shortlist goes through the model once, and each candidate gets the last layer's
state averaged over its entry (:meth:`genrec.models.LLMRecommender.candidate_states`). The
model stays frozen; only a linear head is trained, on validation users, the way
:mod:`genrec.pipelines.learned_fusion` fits its weights:

1. each shortlist's (C, D) states are centred within the shortlist (what every candidate shares,
   the user and the prompt, cannot order them), then projected on their ``dims`` leading
   principal directions over all validation candidates;
2. the projected states, standardised within the shortlist, join the base features (the
   retriever's score first, then any side signals), and :func:`fit_feature_fusion` fits one
   linear score by the listwise likelihood of the held-out items, with L2 towards the retriever
   alone; the weights are kept only when their cross-validated NDCG gain over the retriever
   exceeds two paired standard errors, else the order is the retriever's own.

So a probe that finds nothing in the states orders exactly as the retriever does.

Example (states whose first dimension marks the held-out item):
    >>> rng = np.random.default_rng(0)
    >>> targets = [np.eye(8, dtype=bool)[rng.integers(8)] for _ in range(60)]
    >>> states = np.stack([np.c_[t * 3.0, rng.normal(size=(8, 5))] for t in targets])
    >>> base = [rng.normal(size=(8, 1)) for _ in targets]
    >>> probe = fit_state_probe(states, base, targets, names=("retriever",), dims=2)
    >>> probe.fusion.kept
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.errors import ConfigError, DataError
from genrec.pipelines.learned_fusion import (
    FeatureFusion,
    fit_feature_fusion,
    standardize_columns,
)


@dataclass(frozen=True)
class StateProbe:
    """A fitted probe: the projection of the states and the fused linear score.

    ``fusion.names`` are the base features' names then ``state 1`` .. ``state dims``."""

    mean: np.ndarray  # (D,) mean of the centred validation states
    directions: np.ndarray  # (D, dims) leading principal directions
    fusion: FeatureFusion
    n_base: int  # base features before the state features

    def features(self, states: np.ndarray, base: list[np.ndarray]) -> list[np.ndarray]:
        """Per user, the (C, n_base + dims) standardised features the fusion scores."""
        states = _check_states(states, base, self.n_base)
        if states.shape[2] != len(self.mean):
            raise DataError(
                f"the probe was fitted on states of width {len(self.mean)}, got {states.shape[2]}"
            )
        return _features(states, base, self.mean, self.directions)

    def scores(self, states: np.ndarray, base: list[np.ndarray]) -> list[np.ndarray]:
        """Per user, (C,) fused scores (the kept weights); a stable sort of their negatives is
        the probe's order, ties in the retriever's order."""
        return [self.fusion.scores(x) for x in self.features(states, base)]

    def state_scores(self, states: np.ndarray, base: list[np.ndarray]) -> np.ndarray:
        """(U, C) the fitted head's part of the score that reads the states (whether or not
        the fusion kept it): what the probe says about each candidate on its own."""
        head = np.asarray(self.fusion.fitted)[self.n_base :]
        return np.stack([x[:, self.n_base :] @ head for x in self.features(states, base)])


def fit_state_probe(
    states: np.ndarray,
    base: list[np.ndarray],
    targets: list[np.ndarray],
    *,
    names: tuple[str, ...],
    dims: int = 16,
    n_relevant: list[int] | None = None,
    l2: float = 0.1,
    seed: int = 0,
) -> StateProbe:
    """Fit a probe on validation users (see the module docstring).

    Args:
        states: (U, C, D) each user's candidate states (retriever's order).
        base: per user, (C, F) standardised base features, the retriever's score in column 0.
        targets: per user, (C,) bool: the candidates that are the user's held-out items.
        names: the F base feature names.
        dims: principal directions of the states kept (1 <= dims <= D).
        n_relevant, l2, seed: as :func:`genrec.pipelines.learned_fusion.fit_feature_fusion`.

    Raises:
        ConfigError: a bad ``dims``.  DataError: shapes that disagree.
    """
    states = _check_states(states, base, len(names))
    if not (isinstance(dims, int) and 1 <= dims <= states.shape[2]):
        raise ConfigError(f"dims must be an integer in 1..{states.shape[2]}, got {dims!r}")
    centred = (states - states.mean(axis=1, keepdims=True)).reshape(-1, states.shape[2])
    mean = centred.mean(axis=0)
    _, _, vt = np.linalg.svd(centred - mean, full_matrices=False)
    directions = vt[:dims].T
    fusion = fit_feature_fusion(
        _features(states, base, mean, directions),
        targets,
        names=tuple(names) + tuple(f"state {i + 1}" for i in range(dims)),
        n_relevant=n_relevant,
        l2=l2,
        seed=seed,
    )
    return StateProbe(mean, directions, fusion, len(names))


def _features(states, base, mean, directions) -> list[np.ndarray]:
    """Per user, [base features, centred states projected on ``directions``], standardised."""
    projected = (states - states.mean(axis=1, keepdims=True) - mean) @ directions
    return [standardize_columns(np.c_[b, p]) for b, p in zip(base, projected)]


def _check_states(states, base, n_base: int) -> np.ndarray:
    states = np.asarray(states, np.float64)
    if states.ndim != 3 or not np.isfinite(states).all():
        raise DataError(f"states must be a finite (users, C, D) array, got shape {states.shape}")
    if len(base) != len(states) or any(np.shape(b) != (states.shape[1], n_base) for b in base):
        raise DataError(
            f"base must hold one ({states.shape[1]}, {n_base}) feature array per user of the "
            f"{len(states)} states"
        )
    return states


__all__ = ["StateProbe", "fit_state_probe"]
