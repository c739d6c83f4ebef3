"""Masking and top-k: the one implementation behind ``Recommender.recommend`` and the evaluator.

Ties are broken by the lower item index, so a ranking never depends on the batch, on which other
cut-offs were asked for, or on the thread count.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from genrec.errors import DataError


def as_score_tensor(scores, *, model_name: str = "model") -> torch.Tensor:
    """(B, n_items) float32 tensor that may be written in place; DataError on NaN or +inf."""
    if isinstance(scores, torch.Tensor):
        t = scores.detach().to(torch.float32)
    else:
        arr = np.asarray(scores, dtype=np.float32)
        if not (arr.flags.writeable and arr.flags.c_contiguous):  # e.g. a broadcast view
            arr = np.array(arr, order="C")
        t = torch.from_numpy(arr)
    if t.ndim != 2:
        raise DataError(
            f"{model_name} returned scores of shape {tuple(t.shape)}; expected (batch, n_items)"
        )
    return t


def mask_seen(scores: torch.Tensor, histories: sp.csr_matrix) -> torch.Tensor:
    """Set -inf in place where ``histories`` (B, n_items) has an entry; returns ``scores``."""
    rows = np.repeat(np.arange(histories.shape[0]), np.diff(histories.indptr))
    scores[
        torch.from_numpy(rows), torch.from_numpy(histories.indices.astype(np.int64))
    ] = -torch.inf
    return scores


def mask_non_candidates(scores: torch.Tensor, candidates) -> torch.Tensor:
    """Set -inf in place outside ``candidates``: (C,) shared or (B, C) per row item indices."""
    candidates = np.asarray(candidates)
    if candidates.dtype == bool or not np.issubdtype(candidates.dtype, np.integer):
        raise DataError(
            f"candidates must be integer item indices, got dtype {candidates.dtype}; "
            "convert a boolean mask with np.flatnonzero(mask)"
        )
    if candidates.ndim not in (1, 2):
        raise DataError(
            f"candidates must be 1-D (shared) or 2-D (per row), got {candidates.ndim}-D"
        )
    n_rows, n_items = scores.shape
    if candidates.size and (candidates.min() < 0 or candidates.max() >= n_items):
        raise DataError(f"candidate item index out of range 0..{n_items - 1}")
    allowed = torch.zeros(scores.shape, dtype=torch.bool)
    idx = torch.from_numpy(candidates.astype(np.int64))
    if candidates.ndim == 1:
        allowed[:, idx] = True
    else:
        if candidates.shape[0] != n_rows:
            raise DataError(
                f"per-row candidates have {candidates.shape[0]} rows, expected {n_rows}"
            )
        allowed.scatter_(1, idx, True)
    return scores.masked_fill_(~allowed, -torch.inf)


def top_k(
    scores: torch.Tensor, k: int, *, model_name: str = "model"
) -> tuple[np.ndarray, np.ndarray]:
    """``(items, values)``, both (B, k), best first, ties by lower item index; -inf -> item -1.

    Raises:
        DataError: if any score is NaN (a diverged model).
    """
    n_items = scores.shape[1]
    k = min(k, n_items)
    # One extra place tells whether the k-th value is shared with an item left out.
    vals, idx = torch.topk(scores, min(k + 1, n_items), dim=1)
    if torch.isnan(vals).any():  # topk ranks NaN above everything, so checking it suffices
        raise DataError(
            f"{model_name} produced NaN scores; the model diverged or was given "
            "bad input (try a lower learning rate)"
        )
    if k < n_items:
        crossing = torch.nonzero((vals[:, k] == vals[:, k - 1]) & torch.isfinite(vals[:, k]))
        vals, idx = vals[:, :k].contiguous(), idx[:, :k].contiguous()
        crossing = crossing.flatten()
        if len(crossing):  # re-rank those rows by a stable sort (lower index first among ties)
            order = torch.sort(scores[crossing], dim=1, descending=True, stable=True).indices[:, :k]
            idx[crossing] = order
            vals[crossing] = torch.gather(scores[crossing], 1, order)
    # Within the k, order ties by item index: sort by index, then stably by value.
    idx, perm = torch.sort(idx, dim=1)
    vals = torch.gather(vals, 1, perm)
    vals, perm = torch.sort(vals, dim=1, descending=True, stable=True)
    idx = torch.gather(idx, 1, perm)
    items, values = idx.numpy().astype(np.int64), vals.numpy()
    items[np.isneginf(values)] = -1
    return items, values
