"""Scenario ``exposure``: popularity bias and exposure of the recommended lists (item side).

All metrics read the same (U, K) top-K matrix of the standard test evaluation and the training
popularity of items. The long tail is selectable (:func:`long_tail`):

* ``elliot``: items sorted by training popularity; the short head is the most popular items
  whose interactions reach ``head_share`` (0.8) of all training interactions; the rest is the
  long tail (Elliot, ``popularity_utils/popularity.py``).
* ``recbole``: the least popular ``tail_ratio`` (0.1) of the items is the long tail (RecBole's
  ``tail_ratio`` given as a fraction; ``TailPercentage``).

Gini and coverage reuse :mod:`genrec.evaluation.metrics`; ARP reuses ``average_popularity``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from genrec.audit.context import AuditContext
from genrec.audit.results import Definition, Finding, point, summarise
from genrec.evaluation import metrics as M

NAME = "exposure"
HEADLINE = "gini@{k}"
METRICS = {
    "gini": Definition(
        "Gini index of how often each catalogue item appears in the top-K lists "
        "(never-recommended items count 0): sum_i (2i-n-1) c_i / (n sum c), counts "
        "sorted ascending. 0 = equal exposure, towards 1 = concentrated.",
        "RecBole GiniIndex; genrec.evaluation.metrics.gini_exposure",
        "lower",
    ),
    "coverage": Definition(
        "Share of the catalogue recommended to at least one user in the top-K.",
        "RecBole ItemCoverage; genrec.evaluation.metrics.item_coverage",
        "higher",
    ),
    "arp": Definition(
        "Average recommendation popularity: per user, the mean number of training "
        "interactions of the items in the top-K; mean over users.",
        "Abdollahpouri et al. 2019 / Elliot bias/arp; genrec.evaluation.metrics.average_popularity",
        "lower",
    ),
    "aplt": Definition(
        "Average percentage of long tail: per user, the share of the top-K that "
        "is long-tail (see short_head); mean over users.",
        "Abdollahpouri et al. RecSys 2017; Elliot bias/aplt (RecBole "
        "TailPercentage with its own tail)",
        "higher",
    ),
    "pop_reo": Definition(
        "Popularity-opportunity bias (ranking-based equal opportunity): for "
        "groups g in {short head, long tail}, P(g) = sum_u |topK_u & test_u & g| "
        "/ sum_u |test_u & g|; PopREO = std(P) / mean(P) (population std).",
        "Zhu, Wang & Caverlee SIGIR 2020; Elliot bias/pop_reo",
        "lower",
    ),
    "pop_rsp": Definition(
        "Popularity statistical parity (ranking-based): P(g) = sum_u "
        "|topK_u & g| / sum_u |g minus train_u| for g in {short head, long tail};"
        " PopRSP = std(P) / mean(P).",
        "Zhu, Wang & Caverlee SIGIR 2020; Elliot bias/pop_rsp",
        "lower",
    ),
    "exposure_disparity": Definition(
        "Position-discounted exposure gap between popularity groups: an item at rank j gets "
        "exposure 1/log2(1+j); with E(g) the mean exposure per item of group g, disparity = 1 - "
        "E(tail) / E(head). 0 = demographic parity of exposure, 1 = the tail is never shown, "
        "negative = the tail gets more per item.",
        "Singh & Joachims KDD 2018 (demographic parity of exposure); ratio form: genrec",
        "lower",
    ),
    "tail_items": Definition(
        "Share of catalogue items in the long tail under the chosen "
        "short-head definition (context for aplt).",
        "genrec",
        "",
    ),
}


def applies(model) -> str | None:
    return None


def long_tail(
    item_counts: np.ndarray,
    *,
    how: str = "elliot",
    head_share: float = 0.8,
    tail_ratio: float = 0.1,
) -> np.ndarray:
    """(n_items,) bool: is each item in the long tail (see the module docstring).

    Example:
        >>> long_tail(np.array([80, 10, 5, 5]), how="elliot").tolist()
        [False, True, True, True]
        >>> long_tail(np.array([80, 10, 5, 5, 1, 1, 1, 1, 1, 1]), how="recbole", tail_ratio=0.2).tolist()
        [False, False, False, False, False, False, False, False, True, True]
    """
    counts = np.asarray(item_counts, np.float64)
    order = np.argsort(-counts, kind="stable")  # most popular first
    tail = np.ones(len(counts), bool)
    if how == "elliot":
        covered = np.cumsum(counts[order]) / max(counts.sum(), 1.0)
        n_head = int(np.searchsorted(covered, head_share) + 1)  # reach head_share inclusive
        tail[order[:n_head]] = False
    else:
        n_tail = max(1, int(round(tail_ratio * len(counts))))
        tail[order[: len(counts) - n_tail]] = False
    return tail


def run(ctx: AuditContext, label: str) -> Finding:
    cfg, k = ctx.config, ctx.config.k
    ev = ctx.evaluation(label)
    history = ctx.split.history("test")
    popularity = ctx.split.train.item_counts
    tail = long_tail(
        popularity, how=cfg.short_head, head_share=cfg.head_share, tail_ratio=cfg.tail_ratio
    )
    top = ev.top_items[:, :k]
    n_items = ctx.split.train.n_items
    filled = top >= 0
    in_tail = np.where(filled, tail[np.maximum(top, 0)], False)
    metrics = {
        f"gini@{k}": point(M.gini_exposure(top, n_items, k)),
        f"coverage@{k}": point(M.item_coverage(top, n_items, k)),
        f"arp@{k}": summarise(M.average_popularity(top, popularity, k), seed=cfg.seed),
        f"aplt@{k}": summarise(in_tail.sum(1) / np.maximum(filled.sum(1), 1), seed=cfg.seed),
        f"pop_reo@{k}": point(_pop_reo(top, ctx, ev.users, tail, history)),
        f"pop_rsp@{k}": point(_pop_rsp(top, ev.users, tail, history)),
        f"exposure_disparity@{k}": point(exposure_disparity(top, tail)),
        "tail_items": point(float(tail.mean())),
    }
    settings = {
        "k": k,
        "short_head": cfg.short_head,
        "head_share" if cfg.short_head == "elliot" else "tail_ratio": cfg.head_share
        if cfg.short_head == "elliot"
        else cfg.tail_ratio,
        "users": int(len(ev.users)),
        "popularity": "training interactions per item",
    }
    return Finding(label, NAME, metrics, settings)


def _ratio_std_mean(p_head: float, p_tail: float) -> float:
    p = np.array([p_head, p_tail])
    return float(p.std() / p.mean()) if p.mean() > 0 else float("nan")


def _pop_reo(top, ctx, users, tail, history) -> float:
    test = ctx.split.test.user_items[users]
    test = (test - test.multiply(history.user_items[users])).tocsr()  # recommendable targets
    test.eliminate_zeros()
    hit_items = _hit_items(top, test)  # (n_hits,) item of every hit
    rows, cols = test.nonzero()
    p_head = np.sum(~tail[hit_items]) / max(np.sum(~tail[cols]), 1)
    p_tail = np.sum(tail[hit_items]) / max(np.sum(tail[cols]), 1)
    return _ratio_std_mean(p_head, p_tail)


def _pop_rsp(top, users, tail, history) -> float:
    seen = history.user_items[users]
    seen_tail = np.asarray(seen[:, np.flatnonzero(tail)].sum(1)).ravel()
    seen_head = np.asarray(seen.sum(1)).ravel() - seen_tail
    shown = top[top >= 0]
    p_head = np.sum(~tail[shown]) / max(np.sum((~tail).sum() - seen_head), 1)
    p_tail = np.sum(tail[shown]) / max(np.sum(tail.sum() - seen_tail), 1)
    return _ratio_std_mean(p_head, p_tail)


def _hit_items(top, relevant) -> np.ndarray:
    """(n_hits,) the item of every (user, item) pair both in a top list and relevant: one
    element-wise product of the (U, I) list matrix with the (U, I) relevance CSR."""
    valid = top >= 0
    rows = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)[valid]
    shown = sp.csr_matrix(
        (np.ones(int(valid.sum())), (rows, top[valid])), shape=relevant.shape
    )  # (U, I)
    hits = shown.multiply(relevant != 0).tocoo()
    return hits.col[hits.data != 0].astype(np.int64)


def exposure_disparity(top_items: np.ndarray, tail: np.ndarray) -> float:
    """``1 - E(tail) / E(head)`` with E(g) the mean position-discounted exposure per item of g.

    Example:
        >>> exposure_disparity(np.array([[0, 1], [1, 0]]), np.array([False, False, True]))
        1.0
    """
    ranks = np.arange(1, top_items.shape[1] + 1)
    weight = np.broadcast_to(1.0 / np.log2(1 + ranks), top_items.shape)
    filled = top_items >= 0
    exposure = np.bincount(top_items[filled], weights=weight[filled], minlength=len(tail))
    head, tailed = exposure[~tail], exposure[tail]
    if not len(head) or not len(tailed) or head.mean() == 0:
        return float("nan")
    return float(1.0 - tailed.mean() / head.mean())
