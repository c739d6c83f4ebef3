"""BPR-MF trained by the ``implicit`` package: a fast, multi-threaded peer of genrec's ``bpr``.

Method: Rendle, Freudenthaler, Gantner & Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from
Implicit Feedback", UAI 2009, as implemented by ``implicit.cpu.bpr``: per-triple SGD (Hogwild
across threads) on ``log sigmoid(x_u . y_i - x_u . y_j)`` with one uniform negative per sampled
positive, re-drawn when the user has seen it. Registered as ``bpr-implicit``; genrec's own
``bpr`` (:mod:`genrec.models.classic.bpr`) trains the same model with minibatch Adam in torch.

Deviations from the paper (implicit's choices):
    * each item has a learned bias, stored as the last column of the item factors (the user
      factors carry a constant 1 there), so a score is ``x_u . y_i + b_i``;
    * an epoch draws as many triples as there are training interactions, positives sampled
      uniformly over interactions;
    * fold-in for users unknown to the model (not in the paper): the ridge fit of the history's
      binary row onto the item embeddings, as genrec's ``bpr`` does (:func:`ridge_fold_in`).

Determinism: with one thread, the same ``RunOptions.seed`` gives bit-identical factors. With more
threads implicit's Hogwild updates race, so results vary in the low digits from run to run (the
metrics do not move beyond noise); pass ``threads=1`` to reproduce a run exactly.

Needs the ``scale`` extra (``pip install 'genrec[scale]'``).

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> model = ImplicitBPR(dim=8, iterations=5).fit(world.split.train)
    >>> model.score(world.split.train.user_items[:2]).shape
    (2, 60)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from genrec.errors import require
from genrec.models.base import ModelConfig, Recommender
from genrec.models.classic.bpr import ridge_fold_in
from genrec.models.classic.ials import binary, single_threaded_blas


@dataclass(frozen=True)
class ImplicitBPRConfig(ModelConfig):
    """Hyper-parameters of :class:`ImplicitBPR`.

    Defaults: chosen on ML-100K (holdout 0.8/0.1/0.1, split seed 2020) by validation NDCG@10 at
    training seed 42, one thread: a grid of dim 32/64/128, lr 0.005/0.01/0.05/0.1 and reg
    1e-4/1e-3/0.01/0.1 at 100 iterations, then dim 64 with lr 0.001/0.002/0.005, reg 1e-4/1e-3
    and 100/200/400 iterations (``python benchmarks/scale_models.py --tune bpr-implicit``).
    Best: the defaults, valid NDCG@10 0.2155 (genrec's ``bpr``: 0.2617); more epochs at this
    learning rate overfit (0.1571 at 200), lower rates need 200-400 epochs to reach 0.21.
    """

    dim: int = 64  # embedding size (the item bias is one more column)
    lr: float = 0.005  # SGD learning rate
    reg: float = 1e-4  # L2 penalty applied at each SGD update
    iterations: int = 100  # epochs (each draws as many triples as there are interactions)
    fold_in_reg: float = 50.0  # fold-in ridge lambda, in units of the mean eigenvalue of Q^T Q

    def __post_init__(self):
        self.check_positive_ints("dim", "iterations")
        self.check(self.lr > 0, "lr", "a positive number")
        self.check(self.reg >= 0, "reg", "a non-negative number")
        self.check(self.fold_in_reg > 0, "fold_in_reg", "a positive number")


class ImplicitBPR(Recommender):
    """BPR-MF through ``implicit``.

    Learned attributes: ``user_factors_`` (n_users, dim + 1; last column 1),
    ``item_factors_`` (n_items, dim + 1; last column the item bias), ``trained_users_``.
    """

    name = "bpr-implicit"
    Config = ImplicitBPRConfig

    def _fit(self, train, valid, options):
        bpr = require("implicit.cpu.bpr", "scale")
        cfg = self.config
        with single_threaded_blas():
            model = bpr.BayesianPersonalizedRanking(
                factors=cfg.dim,
                learning_rate=cfg.lr,
                regularization=cfg.reg,
                iterations=cfg.iterations,
                dtype=np.float32,
                num_threads=options.n_threads,
                verify_negative_samples=True,
                random_state=options.seed,
            )
            model.fit(binary(train.user_items), show_progress=options.progress)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.trained_users_ = np.diff(train.user_items.indptr) > 0

    def _score(self, histories, users):
        return self.user_vectors(histories, users=users) @ self.item_factors_.T  # (B, I)

    def user_vectors(
        self, histories: sp.csr_matrix, *, users: np.ndarray | None = None
    ) -> np.ndarray:
        """(B, dim + 1) float32 user vectors (last entry 1, the bias weight): learned ones for
        trained users, a ridge fold-in of the history for the rest."""
        known = np.zeros(histories.shape[0], bool) if users is None else self.trained_users_[users]
        out = np.ones((histories.shape[0], self.item_factors_.shape[1]), np.float32)
        if known.any():
            out[known] = self.user_factors_[users[known]]
        if not known.all():
            item_part = self.item_factors_[:, :-1]  # (I, dim) without the bias column
            out[~known, :-1] = ridge_fold_in(histories[~known], item_part, self.config.fold_in_reg)
        return out

    def _state(self):
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "trained_users": self.trained_users_,
        }

    def _load_state(self, state):
        self.user_factors_ = np.asarray(state["user_factors"], np.float32)
        self.item_factors_ = np.asarray(state["item_factors"], np.float32)
        self.trained_users_ = np.asarray(state["trained_users"], bool)
