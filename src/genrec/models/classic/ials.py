"""iALS: implicit-feedback alternating least squares, trained by the ``implicit`` package.

Method: Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008,
solved with the conjugate-gradient updates of Takács, Pilászy & Tikk, "Applications of the
Conjugate Gradient Method for Implicit Feedback Collaborative Filtering", RecSys 2011. Users and
items get embeddings x_u, y_i; with P the binary user x item matrix and confidences c_ui
(``alpha`` where P = 1, 1 elsewhere), ALS alternately solves for every user (then every item)

    min_x  sum_i c_ui (p_ui - x . y_i)^2 + reg |x|^2,
    i.e.   (Y^T Y + Y_u^T (C_u - I) Y_u + reg I) x = Y_u^T C_u 1,

each side in closed form given the other. Training is ``implicit.cpu.als`` (multi-threaded C++);
this file chooses the inputs, the seed and the threads, and owns scoring and persistence.

Deviations from the paper:
    * the confidence of an observed interaction is ``alpha`` itself (implicit's convention), not
      ``1 + alpha``; the two are the same model with ``alpha`` shifted by one;
    * each ALS half-step runs three conjugate-gradient steps warm-started from the previous
      factors (implicit's ``use_cg``), not the exact solve;
    * fold-in for users unknown to the model (not in the paper): the exact user half-step above
      for the history row, solved for a whole batch at once by conjugate gradient.

Determinism: the factors are initialised from ``RunOptions.seed`` and every user's (item's)
update depends only on the other side's factors, so the result does not depend on the thread
count (checked: 1 and 2 threads give bit-identical factors on ML-100K).

Needs the ``scale`` extra (``pip install 'genrec[scale]'``).

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> model = IALS(dim=8, iterations=5).fit(world.split.train)
    >>> model.score(world.split.train.user_items[:2]).shape
    (2, 60)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from genrec.errors import require
from genrec.models.base import ModelConfig, Recommender


@dataclass(frozen=True)
class IALSConfig(ModelConfig):
    """Hyper-parameters of :class:`IALS`.

    Defaults: chosen on ML-100K (holdout 0.8/0.1/0.1, split seed 2020) by validation NDCG@10 at
    training seed 42, one thread: a grid of dim 32/64/128, reg 0.01/1/10/50/100 and alpha
    1/5/10/20/40 at 15 iterations, then dim 64/128/256, reg 25/50/100/200, alpha 5/10/20 and 15/30
    iterations (``python benchmarks/scale_models.py --tune ials``). Best: dim 128, reg 50,
    alpha 10, 30 iterations at valid NDCG@10 0.2671; the defaults reach 0.2664 in a fifteenth of
    its fit time. reg and alpha go together (the best reg grows with alpha).
    """

    dim: int = 64  # embedding size of users and items
    reg: float = 50.0  # L2 penalty on each embedding in its least-squares half-step
    alpha: float = 10.0  # confidence of an observed interaction (unobserved: 1)
    iterations: int = 15  # ALS sweeps (each solves all users, then all items)

    def __post_init__(self):
        self.check_positive_ints("dim", "iterations")
        self.check(self.reg > 0, "reg", "a positive number")
        self.check(self.alpha > 0, "alpha", "a positive number")


class ImplicitFactorModel(Recommender):
    """A factor model trained by ``implicit`` (shared by ``ials`` and ``bpr-implicit``): fits the
    estimator that :meth:`_estimator` builds on the binary train matrix, scores with
    ``user_vectors @ item_factors_.T``, folds in users it never saw (:meth:`_fold_in`) and
    persists its factors.

    Learned attributes: ``user_factors_`` (n_users, D), ``item_factors_`` (n_items, D),
    ``trained_users_`` (n_users,) bool.
    """

    def _estimator(self, options):
        """The configured ``implicit`` model (not yet fitted)."""
        raise NotImplementedError

    def _fold_in(self, histories: sp.csr_matrix, out: np.ndarray) -> None:
        """Write user vectors for ``histories`` (rows the model never trained on) into ``out``."""
        raise NotImplementedError

    def _fit(self, train, valid, options):
        with single_threaded_blas():  # implicit's own threads do the work; BLAS would oversubscribe
            model = self._estimator(options)
            model.fit(binary(train.user_items), show_progress=options.progress)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.trained_users_ = np.diff(train.user_items.indptr) > 0

    def _score(self, histories, users):
        return self.user_vectors(histories, users=users) @ self.item_factors_.T  # (B, I)

    def user_vectors(
        self, histories: sp.csr_matrix, *, users: np.ndarray | None = None
    ) -> np.ndarray:
        """(B, D) float32 user vectors: learned ones for trained users, fold-in for the rest."""
        known = np.zeros(histories.shape[0], bool) if users is None else self.trained_users_[users]
        out = np.ones((histories.shape[0], self.item_factors_.shape[1]), np.float32)
        if known.any():
            out[known] = self.user_factors_[users[known]]
        if not known.all():
            unknown = np.ones((int((~known).sum()), out.shape[1]), np.float32)
            self._fold_in(histories[~known], unknown)
            out[~known] = unknown
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


class IALS(ImplicitFactorModel):
    """iALS through ``implicit`` (factors of size ``dim``; see :class:`ImplicitFactorModel`)."""

    name = "ials"
    Config = IALSConfig

    def _estimator(self, options):
        als = require("implicit.cpu.als", "scale")
        cfg = self.config
        return als.AlternatingLeastSquares(
            factors=cfg.dim,
            regularization=cfg.reg,
            alpha=cfg.alpha,
            iterations=cfg.iterations,
            dtype=np.float32,
            num_threads=options.n_threads,
            random_state=options.seed,
        )

    def _fold_in(self, histories, out):
        cfg = self.config
        out[:] = als_fold_in(histories, self.item_factors_, reg=cfg.reg, alpha=cfg.alpha)


def als_fold_in(
    histories: sp.csr_matrix, item_factors: np.ndarray, *, reg: float, alpha: float
) -> np.ndarray:
    """(B, dim) exact ALS user vectors for binary history rows (B, I) given item factors Y (I, D).

    Solves ``(Y^T Y + (alpha - 1) Y_u^T Y_u + reg I) x = alpha Y_u^T 1`` for every row at once
    by conjugate gradient in float64 (D steps: exact up to rounding for a D x D system).
    """
    y = np.asarray(item_factors, np.float64)  # (I, D)
    x_hist = binary(histories).astype(np.float64)  # (B, I)
    gram = y.T @ y  # (D, D)
    rhs = alpha * (x_hist @ y)  # (B, D)

    def apply(v: np.ndarray) -> np.ndarray:  # (B, D) -> (B, D): the batch of A_u v_u
        rows, cols = x_hist.nonzero()
        along = np.einsum("nd,nd->n", v[rows], y[cols])  # (nnz,) y_i . v_u on history entries
        local = sp.csr_matrix((along, (rows, cols)), shape=x_hist.shape) @ y  # (B, D)
        return v @ gram + (alpha - 1.0) * local + reg * v

    solution = np.zeros_like(rhs)
    residual = rhs.copy()
    direction = residual.copy()
    norm = np.einsum("bd,bd->b", residual, residual)  # (B,)
    for _ in range(y.shape[1]):
        if not norm.any():
            break
        a_dir = apply(direction)
        step = norm / np.maximum(np.einsum("bd,bd->b", direction, a_dir), 1e-300)
        solution += step[:, None] * direction
        residual -= step[:, None] * a_dir
        new_norm = np.einsum("bd,bd->b", residual, residual)
        direction = residual + (new_norm / np.maximum(norm, 1e-300))[:, None] * direction
        norm = new_norm
    return solution.astype(np.float32)


def binary(user_items: sp.spmatrix) -> sp.csr_matrix:
    """A float32 CSR copy of ``user_items`` with every stored positive entry set to 1."""
    out = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    out.data = (out.data > 0).astype(np.float32)
    out.eliminate_zeros()
    return out


def single_threaded_blas():
    """A context in which BLAS runs on one thread (threadpoolctl), so a library that parallelises
    over users itself does not multiply its threads by BLAS's."""
    import threadpoolctl

    return threadpoolctl.threadpool_limits(limits=1, user_api="blas")
