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

    On a large catalog only the items of each row's best ``k`` blocks of :data:`BLOCK`
    consecutive items (by block maximum) are ranked: a pass of block maxima costs a fraction of
    a full top-k. It is exact: when the k-th best block maximum is strictly above the
    (k+1)-th, every item outside the chosen blocks has k items strictly above it; rows where
    they tie (or hold NaN) are ranked in full.

    Raises:
        DataError: if any score is NaN (a diverged model).
    """
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    n_blocks = n_items // BLOCK
    if (
        n_blocks < 4 * (k + 1)
        or n_rows == 0
        or not scores.is_contiguous()
        or scores.device.type != "cpu"
    ):
        return _top_k_full(scores, k, model_name=model_name)
    main = n_blocks * BLOCK
    block_max = scores[:, :main].view(n_rows, n_blocks, BLOCK).amax(dim=2).numpy()  # (B, NB)
    edge = np.partition(block_max, (n_blocks - k - 1, n_blocks - k, n_blocks - 1), axis=1)
    kth, next_ = edge[:, n_blocks - k], edge[:, n_blocks - k - 1]  # k-th, (k+1)-th best
    clean = (kth > next_) & ~np.isnan(edge[:, -1])  # (B,) False on a tie or NaN (sorted last)
    items = np.empty((n_rows, k), np.int64)
    values = np.empty((n_rows, k), np.float32)
    rows = np.flatnonzero(clean)
    if rows.size:
        items[rows], values[rows] = _top_k_in_blocks(
            scores.numpy(), block_max[rows] >= kth[rows, None], rows, kth[rows], k
        )
    if rows.size < n_rows:
        rest = np.flatnonzero(~clean)
        items[rest], values[rest] = _top_k_full(
            scores[torch.from_numpy(rest)], k, model_name=model_name
        )
    items[np.isneginf(values)] = -1
    return items, values


BLOCK = 64  # items per block of the block-maximum prefilter of top_k


def _top_k_in_blocks(
    scores: np.ndarray, chosen: np.ndarray, rows: np.ndarray, kth: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(items, values), both (R, k), of ``rows`` of ``scores`` (B, I), ranking only the items of
    the ``chosen`` (R, n_blocks) blocks (k per row) and of the partial block at the end that
    score at least ``kth`` (R,), the k-th best block maximum: at least k items per row do."""
    n_rows, n_items = len(rows), scores.shape[1]
    n_blocks = chosen.shape[1]
    main = n_blocks * BLOCK
    blocks = np.nonzero(chosen)[1].reshape(n_rows, k)  # (R, k) ascending
    grid = scores[:, :main].reshape(scores.shape[0], n_blocks, BLOCK)
    candidates = np.concatenate(  # (R, C) in increasing item order
        [grid[rows[:, None], blocks].reshape(n_rows, k * BLOCK), scores[rows, main:]], axis=1
    )
    cols = np.concatenate(
        [
            (blocks[:, :, None] * BLOCK + np.arange(BLOCK)).reshape(n_rows, k * BLOCK),
            np.broadcast_to(np.arange(main, n_items), (n_rows, n_items - main)),
        ],
        axis=1,
    )
    row, col = np.nonzero(candidates >= kth[:, None])  # row-major: items ascending per row
    vals = candidates[row, col]
    order = np.lexsort((-vals, row))  # by row, then best first; stable: ties by lower item
    starts = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n_rows))[:-1]])
    take = order[starts[:, None] + np.arange(k)]  # (R, k)
    return cols[row[take], col[take]], vals[take]


def _top_k_full(
    scores: torch.Tensor, k: int, *, model_name: str = "model"
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` over every item of every row."""
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
