"""EASE: embarrassingly shallow auto-encoder, a closed-form item-item linear model.

Method: Harald Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019. With X the
binary user x item matrix, EASE learns the item-item weights B of

    min_B |X - X B|_F^2 + reg |B|_F^2   subject to diag(B) = 0,

whose solution is ``P = (X^T X + reg I)^-1`` and ``B = I - P diag(1 / diag(P))`` (so
``B[i, j] = -P[i, j] / P[j, j]`` off the diagonal, 0 on it). A history x scores ``x @ B``.

Deviations from the paper: none in the math. The Gram matrix and the inverse are computed in
float64 and B is stored in float32. B is dense (n_items x n_items) and the fit holds three dense
float64 copies at its peak (the Gram matrix, LAPACK's working copy and the inverse:
``24 * n_items^2`` bytes, :func:`ease_fit_bytes`), so fitting refuses, with a ConfigError saying
how much it would need and what to use instead, when that exceeds the available memory
(``MemAvailable`` of /proc/meminfo, capped by a cgroup limit; ``memory_gb`` overrides it) or
when there are more than ``max_items`` items.

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
    """Peak bytes of :func:`ease_weights` for ``n_items`` items: three dense float64
    (n_items, n_items) matrices (Gram, LAPACK's copy, inverse)."""
    return 3 * 8 * n_items**2


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
            f"EASE on {n_items} items needs about {_amount(need)} (three dense float64 "
            f"{n_items} x {n_items} matrices) but only {_amount(have)} {source}; {instead}"
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
    gram = (x.T @ x).toarray()  # (I, I) float64
    gram[np.diag_indices_from(gram)] += reg
    p = np.linalg.inv(gram)  # (I, I), symmetric positive definite
    del gram
    p /= -np.diag(p)[None, :]  # in place: B[i, j] = -P[i, j] / P[j, j]
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32)
