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

from genrec.errors import require
from genrec.models.base import ModelConfig
from genrec.models.classic.bpr import ridge_fold_in
from genrec.models.classic.ials import ImplicitFactorModel


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


class ImplicitBPR(ImplicitFactorModel):
    """BPR-MF through ``implicit``: factors of size ``dim + 1``, the user's last entry 1 and the
    item's last entry its bias (see :class:`~genrec.models.classic.ials.ImplicitFactorModel`)."""

    name = "bpr-implicit"
    Config = ImplicitBPRConfig

    def _estimator(self, options):
        bpr = require("implicit.cpu.bpr", "scale")
        cfg = self.config
        return bpr.BayesianPersonalizedRanking(
            factors=cfg.dim,
            learning_rate=cfg.lr,
            regularization=cfg.reg,
            iterations=cfg.iterations,
            dtype=np.float32,
            num_threads=options.n_threads,
            verify_negative_samples=True,
            random_state=options.seed,
        )

    def _fold_in(self, histories, out):
        """A ridge fold-in on the item factors without the bias column; the bias weight stays 1."""
        item_part = self.item_factors_[:, :-1]  # (I, dim)
        out[:, :-1] = ridge_fold_in(histories, item_part, self.config.fold_in_reg)
