"""EASE: embarrassingly shallow auto-encoder, a closed-form item-item linear model.

Method: Harald Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019. With X the
binary user x item matrix, EASE learns the item-item weights B of

    min_B |X - X B|_F^2 + reg |B|_F^2   subject to diag(B) = 0,

whose solution is ``P = (X^T X + reg I)^-1`` and ``B = I - P diag(1 / diag(P))`` (so
``B[i, j] = -P[i, j] / P[j, j]`` off the diagonal, 0 on it). A history x scores ``x @ B``.

Deviations from the paper: none in the math. The Gram matrix and the inverse are computed in
float64 and B is stored in float32. ``X^T X + reg I`` is symmetric positive definite, so the
inverse is taken through its Cholesky factor, in place (LAPACK ``potrf`` + ``potri``: n^3 flops
against a general inverse's 2 n^3, and no second matrix). B is dense (n_items x n_items); the fit
holds one dense float64 matrix and the float32 B at its peak (``12 * n_items^2`` bytes,
:func:`ease_fit_bytes`), so fitting refuses, with a ConfigError saying how much it would need and
what to use instead, when that exceeds the available memory (``MemAvailable`` of /proc/meminfo,
capped by a cgroup limit; ``memory_gb`` overrides it) or when there are more than ``max_items``
items.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> model = EASE(reg=10.0).fit(world.split.train)
    >>> bool((model.weights_.diagonal() == 0).all())
    True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError
from genrec.models.base import ModelConfig, Recommender


@dataclass(frozen=True)
class EASEConfig(ModelConfig):
    """Hyper-parameters of :class:`EASE`.

    ``reg`` tuned on ML-100K validation NDCG@10 (holdout 0.8/0.1/0.1, four split seeds): flat
    between 250 and 500, best mean at 300. RecBole uses 250.
    """

    reg: float = 300.0  # L2 penalty added to the Gram diagonal; larger = smoother weights
    max_items: int = 40_000  # refuse to fit more items than this (B takes 4 * n_items^2 bytes)
    memory_gb: float | None = None  # memory the fit may use; None = what the machine has free

    def __post_init__(self):
        self.check(self.reg > 0, "reg", "a positive number (the inverse needs X^T X + reg I)")
        self.check(
            isinstance(self.max_items, int) and self.max_items >= 1,
            "max_items",
            "a positive integer",
        )
        self.check(
            self.memory_gb is None or self.memory_gb > 0,
            "memory_gb",
            "a positive number of gigabytes, or None to read the machine's available memory",
        )


class EASE(Recommender):
    """Closed-form item-item model; ``weights_`` is the dense (n_items, n_items) B (0 diagonal)."""

    name = "ease"
    Config = EASEConfig

    def _fit(self, train, valid, options):
        check_fits_in_memory(
            train.n_items, max_items=self.config.max_items, memory_gb=self.config.memory_gb
        )
        self.weights_ = ease_weights(train.user_items, reg=self.config.reg)

    def _score(self, histories, users):
        return histories @ self.weights_  # (B, I) sparse @ (I, I) dense -> (B, I)

    def _state(self):
        return {"weights": self.weights_}

    def _load_state(self, state):
        self.weights_ = np.asarray(state["weights"], dtype=np.float32)


def ease_fit_bytes(n_items: int) -> int:
    """Peak bytes of :func:`ease_weights` for ``n_items`` items: one dense float64
    (n_items, n_items) matrix (the Gram matrix, inverted in place) and the float32 weights."""
    return (8 + 4) * n_items**2


def check_fits_in_memory(n_items: int, *, max_items: int, memory_gb: float | None) -> None:
    """Raise a ConfigError, saying what the fit needs, what there is and what to use instead,
    when the fit's peak exceeds the available memory (``memory_gb``, or
    :func:`available_memory_bytes` when None) or ``n_items`` exceeds ``max_items``."""
    need = ease_fit_bytes(n_items)
    have = available_memory_bytes() if memory_gb is None else int(memory_gb * 1e9)
    instead = (
        "use ials (memory linear in users + items) or fit EASE on a subset of items "
        "(e.g. a k-core or the most popular items)"
    )
    if need > have:
        source = (
            f"is allowed (memory_gb = {memory_gb})"
            if memory_gb is not None
            else "is available on this machine"
        )
        raise ConfigError(
            f"EASE on {n_items} items needs about {_amount(need)} (a dense float64 and a "
            f"float32 {n_items} x {n_items} matrix) but only {_amount(have)} {source}; {instead}"
        )
    if n_items > max_items:
        raise ConfigError(
            f"EASE needs dense {n_items} x {n_items} matrices (about {_amount(need)}) but "
            f"max_items = {max_items}; {instead}, or raise max_items if the machine has the memory"
        )


def _amount(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.3g} MB"


def available_memory_bytes() -> int:
    """Memory a new allocation can get: /proc/meminfo's MemAvailable (free physical pages where
    /proc is missing), capped by the cgroup v2 limit when one is set (a container)."""
    try:
        with open("/proc/meminfo") as f:
            have = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            have = min(have, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(0, have)


def ease_weights(user_items: sp.csr_matrix, *, reg: float, binarize: bool = True) -> np.ndarray:
    """The (n_items, n_items) float32 EASE weights B of a user x item matrix, binarised first
    (every stored entry counts 1) unless ``binarize=False`` (then the values weight the Gram
    matrix X^T X: an entry of 0.5 counts half an interaction)."""
    x = sp.csr_matrix(user_items, dtype=np.float64, copy=True)  # never the caller's matrix
    if binarize:
        x.data[:] = 1.0
    gram = (x.T @ x).toarray(order="C")  # (I, I) float64
    gram[np.diag_indices_from(gram)] += reg
    p = spd_inverse_inplace(gram)  # (I, I) = (X^T X + reg I)^-1, the same memory
    weights = np.empty(p.shape, np.float32)
    scale = -1.0 / np.diag(p)  # (I,): B[i, j] = -P[i, j] / P[j, j]
    for start in range(0, len(p), 2048):  # rows in blocks: no (I, I) float64 temporary
        block = slice(start, start + 2048)
        np.multiply(p[block], scale[None, :], out=weights[block], casting="same_kind")
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


def spd_inverse_inplace(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix, written over ``a`` when ``a`` is a
    C-ordered float64 array (otherwise over a C-ordered float64 copy, which is returned).

    LAPACK ``dpotrf`` (Cholesky) then ``dpotri`` (inverse from the factor) on ``a.T``, the
    Fortran-ordered view of the same memory (``a`` is symmetric, so ``a.T`` is the same matrix);
    they fill one triangle, mirrored into the other block by block.

    Raises:
        DataError: ``a`` is not positive definite (a non-positive ``reg`` would do that).
    """
    from scipy.linalg import lapack

    a = np.ascontiguousarray(a, dtype=np.float64)
    factor, info = lapack.dpotrf(a.T, lower=True, overwrite_a=True, clean=False)
    if info == 0:
        factor, info = lapack.dpotri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise DataError(
            f"EASE's regularised Gram matrix is not positive definite (LAPACK info {info}); "
            "use a positive reg"
        )
    if not np.shares_memory(factor, a):  # LAPACK worked on a copy (not expected for C order)
        a.T[...] = factor
    _mirror_upper(a)  # dpotri filled the lower triangle of a.T, i.e. the upper one of a
    return a


def _mirror_upper(a: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle of the square ``a`` onto its lower one, in place, by blocks."""
    n = len(a)
    for start in range(0, n, block):
        stop = min(n, start + block)
        diag = a[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        diag[lower] = diag.T[lower]
        a[stop:, start:stop] = a[start:stop, stop:].T
