"""Composed-query retrieval ("like this one, but red"), measured the CIRR way.

A query is a reference item plus a modifying text; the answer is any item of its target set.
Recall@K is the share of queries with a target among the top K of the gallery, the reference
item itself removed from the gallery (as CIRR's protocol does; Liu et al., ICCV 2021, and the
CLIP4Cir validation code). Items that merely look like the reference stay in the gallery: they
are the distractors a query that ignores its text falls for.

Example:
    >>> import numpy as np
    >>> scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.9, 0.3]])  # 2 queries x 3 items
    >>> composed_recall(scores, references=[0, 1], targets=[[2], [2]], ks=(1, 2))
    {'R@1': 0.5, 'R@2': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genrec.errors import DataError


def composed_recall(
    scores: np.ndarray,
    *,
    references: Sequence[int],
    targets: Sequence[Sequence[int]],
    ks: Sequence[int] = (1, 5, 10, 50),
) -> dict[str, float]:
    """``{"R@K": recall}`` of (Q, I) query scores with each query's reference removed.

    Raises:
        DataError: shapes disagree, or a query has no target.
    """
    scores = np.array(scores, dtype=np.float64)  # a copy: the reference is masked in place
    references = np.asarray(references, np.int64)
    if scores.ndim != 2 or len(scores) != len(references) or len(targets) != len(references):
        raise DataError(
            f"composed_recall needs (Q, I) scores, Q references and Q target sets; "
            f"got scores {scores.shape}, {len(references)} references, "
            f"{len(targets)} target sets"
        )
    if any(len(t) == 0 for t in targets):
        raise DataError("every composed query needs at least one target item")
    scores[np.arange(len(scores)), references] = -np.inf
    best = np.full(len(scores), np.inf)
    for q, target in enumerate(targets):  # rank of the best-placed target (0 = first)
        target_scores = scores[q, np.asarray(target, np.int64)]
        best[q] = (scores[q] > target_scores.max()).sum()
    return {f"R@{k}": float((best < k).mean()) for k in ks}


__all__ = ["composed_recall"]
