"""EASE: embarrassingly shallow auto-encoder, a closed-form item-item linear model.

Method: Harald Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019. With X the
binary user x item matrix, EASE learns the item-item weights B of

    min_B |X - X B|_F^2 + reg |B|_F^2   subject to diag(B) = 0,

whose solution is ``P = (X^T X + reg I)^-1`` and ``B = I - P diag(1 / diag(P))`` (so
``B[i, j] = -P[i, j] / P[j, j]`` off the diagonal, 0 on it). A history x scores ``x @ B``.

Deviations from the paper: none in the math. The Gram matrix and the inverse are computed in
float64 and B is stored in float32. B is dense (n_items x n_items), so fitting refuses more than
``max_items`` items with a ConfigError instead of exhausting memory.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> model = EASE(reg=10.0).fit(world.split.train)
    >>> bool((model.weights_.diagonal() == 0).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError
from genrec.models.base import ModelConfig, Recommender


@dataclass(frozen=True)
class EASEConfig(ModelConfig):
    """Hyper-parameters of :class:`EASE`.

    ``reg`` tuned on ML-100K validation NDCG@10 (holdout 0.8/0.1/0.1, four split seeds): flat
    between 250 and 500, best mean at 300. RecBole uses 250.
    """

    reg: float = 300.0  # L2 penalty added to the Gram diagonal; larger = smoother weights
    max_items: int = 40_000  # refuse to fit more items than this (B takes 4 * n_items^2 bytes)

    def __post_init__(self):
        self.check(self.reg > 0, "reg", "a positive number (the inverse needs X^T X + reg I)")
        self.check(
            isinstance(self.max_items, int) and self.max_items >= 1,
            "max_items",
            "a positive integer",
        )


class EASE(Recommender):
    """Closed-form item-item model; ``weights_`` is the dense (n_items, n_items) B (0 diagonal)."""

    name = "ease"
    Config = EASEConfig

    def _fit(self, train, valid, options):
        n_items = train.n_items
        if n_items > self.config.max_items:
            gb = 3 * 8 * n_items**2 / 1e9  # Gram + inverse in float64, plus B
            raise ConfigError(
                f"EASE needs dense {n_items} x {n_items} matrices (about {gb:.1f} GB) but "
                f"max_items = {self.config.max_items}; filter rare items out of the dataset "
                f"(e.g. a k-core) or raise max_items if the machine has the memory"
            )
        self.weights_ = ease_weights(train.user_items, reg=self.config.reg)

    def _score(self, histories, users):
        return histories @ self.weights_  # (B, I) sparse @ (I, I) dense -> (B, I)

    def _state(self):
        return {"weights": self.weights_}

    def _load_state(self, state):
        self.weights_ = np.asarray(state["weights"], dtype=np.float32)


def ease_weights(user_items: sp.csr_matrix, *, reg: float) -> np.ndarray:
    """The (n_items, n_items) float32 EASE weights B of a binary user x item matrix."""
    x = sp.csr_matrix(user_items, dtype=np.float64)
    x.data[:] = 1.0
    gram = (x.T @ x).toarray()  # (I, I) float64
    gram[np.diag_indices_from(gram)] += reg
    p = np.linalg.inv(gram)  # (I, I), symmetric positive definite
    del gram
    p /= -np.diag(p)[None, :]  # in place: B[i, j] = -P[i, j] / P[j, j]
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32)
