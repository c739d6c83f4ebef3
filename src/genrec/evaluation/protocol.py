"""The one evaluation protocol every family is measured under.

Full ranking over all items: for each user with target items, the model scores every item from
the user's history, history items are excluded (train at validation; train + valid at test), the
top K are taken, and per-user metric arrays are computed from them. Users are processed in batches
so memory is bounded by ``batch_size x n_items``, not users x items.

Target interactions whose item is already in the user's history cannot be recommended under this
protocol; they are removed from the targets and counted in ``Evaluation.info``.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> from genrec.models import EASE
    >>> world = planted_clusters()
    >>> model = EASE().fit(world.split.train)
    >>> result = evaluate_split(model, world.split, "test", ks=(1, 5))
    >>> round(result.mean("hit@1"), 2)
    1.0
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from genrec.data.dataset import Dataset, Split
from genrec.errors import ConfigError, DataError
from genrec.evaluation import metrics as M
from genrec.options import progress_bar
from genrec.ranking import as_score_tensor, mask_seen, top_k

RANKING = M.RANKING_METRICS  # per user, at each k
BEYOND = ("auc", "coverage", "gini", "popularity", "novelty", "diversity")
DEFAULT_METRICS = RANKING + BEYOND  # also the order reports list them in
HIGHER_IS_BETTER = RANKING + ("auc",)  # the metrics paired tests compare models on


@dataclass
class Evaluation:
    """Per-user metric arrays of one model on one target set.

    Attributes:
        users: (U,) evaluated user indices (users with at least one target item).
        per_user: metric name (``"ndcg@10"``) -> (U,) values; the unit of every interval/test.
        corpus: corpus-level metrics (``"coverage@10"``, ``"gini@10"``) -> value.
        top_items, top_scores: (U, K) the ranked lists (item indices, -1 = empty slot).
        n_relevant: (U,) target items per user.
        score_seconds: wall time of scoring + ranking.
        info: counts worth reporting (e.g. targets dropped because already seen).
    """

    users: np.ndarray
    per_user: dict[str, np.ndarray]
    corpus: dict[str, float]
    top_items: np.ndarray
    top_scores: np.ndarray
    n_relevant: np.ndarray
    score_seconds: float
    info: dict = field(default_factory=dict)

    def mean(self, name: str) -> float:
        if name in self.corpus:
            return self.corpus[name]
        try:
            return float(np.nanmean(self.per_user[name]))
        except KeyError:
            raise ConfigError(
                f"metric {name!r} was not computed; computed: "
                f"{sorted(self.per_user) + sorted(self.corpus)}"
            ) from None


def evaluate_split(model, split: Split, part: str = "test", **kwargs) -> Evaluation:
    """:func:`evaluate` on ``split.test`` (or ``split.valid``) with the matching history."""
    target = {"valid": split.valid, "test": split.test}.get(part)
    if target is None:
        raise ConfigError(f"part must be 'valid' or 'test', got {part!r}")
    kwargs.setdefault("item_popularity", split.train.item_counts)
    return evaluate(model, split.history(part), target, **kwargs)


def evaluate(
    model,
    history: Dataset,
    target: Dataset,
    *,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = DEFAULT_METRICS,
    batch_size: int = 1024,
    item_popularity: np.ndarray | None = None,
    item_features: sp.csr_matrix | None = None,
    progress: bool = False,
    users: Sequence[int] | None = None,
) -> Evaluation:
    """Rank all items for every user of ``target`` and compute per-user metrics at each k.

    Args:
        model: a fitted genrec Recommender.
        history: what the model may see (its rows are excluded from the rankings).
        target: held-out interactions to find.
        ks: cut-offs, each in 1..n_items.
        metrics: names from ``RANKING`` and ``BEYOND``.
        batch_size: users scored per batch.
        item_popularity: (n_items,) training popularity for popularity/novelty (default: history).
        item_features: (n_items, F) CSR for intra-list diversity (default: catalog genres if any).
        users: evaluate only these user indices (e.g. a sample, when scoring is costly);
            default all users with a target item.
    """
    ks = M.check_ks(ks, target.n_items, what="items in the catalog")
    if isinstance(metrics, str):
        metrics = (metrics,)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if history.items is not target.items or history.users is not target.users:
        raise DataError(
            "history and target must be parts of the same dataset (shared vocabularies)"
        )
    unknown = sorted(set(metrics) - set(DEFAULT_METRICS))
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; choose from {list(DEFAULT_METRICS)}")
    seen = history.user_items
    ordered = history.user_item_order  # the same entries, valued by time (sequential models)
    relevant = target.user_items - target.user_items.multiply(seen)  # drop already-seen targets
    relevant.eliminate_zeros()
    n_relevant = np.diff(relevant.indptr)
    users = _evaluated_users(n_relevant, users)
    k_max = max(ks)
    top_items = np.empty((len(users), k_max), np.int64)
    top_scores = np.empty((len(users), k_max), np.float32)
    auc_counts = np.zeros((len(users), 2)) if "auc" in metrics else None
    start = time.perf_counter()
    batches = progress_bar(
        range(0, len(users), batch_size),
        enabled=progress,
        total=-(-len(users) // batch_size),
        desc="evaluating",
        unit="batch",
    )
    name = getattr(model, "name", "model")
    for lo in batches:
        batch = users[lo : lo + batch_size]
        scores = mask_seen(
            as_score_tensor(model.score(ordered[batch], users=batch), model_name=name), seen[batch]
        )
        top_items[lo : lo + len(batch)], top_scores[lo : lo + len(batch)] = top_k(
            scores, k_max, model_name=name
        )
        if auc_counts is not None:
            auc_counts[lo : lo + len(batch)] = _negatives_above(scores, relevant[batch])
    seconds = time.perf_counter() - start
    hits = _hits(top_items, relevant[users])
    per_user = M.ranking_metrics(
        hits, n_relevant[users], ks, names=[m for m in metrics if m in RANKING]
    )
    if auc_counts is not None:
        n_candidates = target.n_items - np.diff(seen.indptr)[users]
        n_pos = n_relevant[users]
        per_user["auc"] = M.auc_from_counts(
            auc_counts[:, 0], auc_counts[:, 1], n_pos, n_candidates - n_pos
        )
    popularity = history.item_counts if item_popularity is None else np.asarray(item_popularity)
    features = item_features
    if (
        features is None
        and "diversity" in metrics
        and history.catalog is not None
        and "genres" in history.catalog
    ):
        features = history.catalog.feature_matrix("genres")
    corpus = _beyond_accuracy(
        per_user,
        top_items,
        metrics,
        ks,
        popularity,
        features,
        n_items=target.n_items,
        n_users=history.n_users,
    )
    info = {
        "users": int(len(users)),
        "dropped_seen_targets": int(target.user_items.nnz - relevant.nnz),
    }
    return Evaluation(
        users, per_user, corpus, top_items, top_scores, n_relevant[users], seconds, info
    )


def evaluate_sampled(
    model,
    history: Dataset,
    target: Dataset,
    *,
    n_negatives: int = 19,
    ks: Sequence[int] = (1, 5, 10),
    seed: int = 0,
    batch_size: int = 64,
    users: Sequence[int] | None = None,
    progress: bool = False,
) -> Evaluation:
    """Rank one held-out item among ``n_negatives`` sampled ones: the LLM-ranking protocol.

    For every user with a target item, one target (drawn with ``seed`` when there are several)
    and ``n_negatives`` items drawn uniformly without replacement from the items neither in the
    history nor among the user's targets form the candidates; the model scores them with
    ``score_candidates`` (so a language model scores 20 items, not the catalog). Candidates are
    shuffled, so ties are broken at random, never in the target's favour. The same seed gives the
    same candidates to every model, which is what makes per-user paired tests valid.

    Returns:
        An :class:`Evaluation` whose ``top_items`` hold each user's candidates best first;
        metrics ``hit``, ``ndcg`` and ``mrr`` at each k (k <= candidates).
    """
    if (
        isinstance(n_negatives, bool)
        or not isinstance(n_negatives, (int, np.integer))
        or n_negatives < 1
    ):
        raise ConfigError(f"n_negatives must be a positive integer, got {n_negatives!r}")
    if history.items is not target.items or history.users is not target.users:
        raise DataError(
            "history and target must be parts of the same dataset (shared vocabularies)"
        )
    seen = history.user_items
    relevant = target.user_items - target.user_items.multiply(seen)
    relevant.eliminate_zeros()
    users = _evaluated_users(np.diff(relevant.indptr), users)
    n_candidates = n_negatives + 1
    ks = M.check_ks(ks, n_candidates, what="candidates per user")
    rng = np.random.default_rng(seed)
    candidates = np.empty((len(users), n_candidates), np.int64)
    chosen = np.empty(len(users), np.int64)
    for row, u in enumerate(users):  # sampling set-up, not scoring: one draw per user
        targets = relevant.indices[relevant.indptr[u] : relevant.indptr[u + 1]]
        excluded = np.union1d(targets, seen.indices[seen.indptr[u] : seen.indptr[u + 1]])
        pool = np.setdiff1d(np.arange(target.n_items), excluded, assume_unique=True)
        if len(pool) < n_negatives:
            raise DataError(
                f"user {history.users.ids[u]!r} has only {len(pool)} items left to "
                f"sample {n_negatives} negatives from; lower n_negatives"
            )
        chosen[row] = candidates[row, 0] = rng.choice(targets)
        candidates[row, 1:] = rng.choice(pool, n_negatives, replace=False)
        rng.shuffle(candidates[row])
    ordered = history.user_item_order
    scores = np.empty(candidates.shape, np.float32)
    start = time.perf_counter()
    name = getattr(model, "name", "model")
    for lo in progress_bar(
        range(0, len(users), batch_size),
        enabled=progress,
        desc="evaluating",
        total=-(-len(users) // batch_size),
        unit="batch",
    ):
        batch = users[lo : lo + batch_size]
        scores[lo : lo + len(batch)] = model.score_candidates(
            ordered[batch], candidates[lo : lo + len(batch)], users=batch
        )
    seconds = time.perf_counter() - start
    if np.isnan(scores).any():
        raise DataError(f"{name} returned NaN scores for some candidates (a diverged model?)")
    order = np.argsort(-scores, axis=1, kind="stable")  # ties: the shuffled position decides
    top_items = np.take_along_axis(candidates, order, axis=1)
    hits = top_items == chosen[:, None]
    n_relevant = np.ones(len(users), np.int64)
    per_user = M.ranking_metrics(hits, n_relevant, ks, names=("hit", "ndcg", "mrr"))
    info = {"users": int(len(users)), "candidates": n_candidates, "seed": int(seed)}
    return Evaluation(
        users,
        per_user,
        {},
        top_items,
        np.take_along_axis(scores, order, axis=1),
        n_relevant,
        seconds,
        info,
    )


def _evaluated_users(n_relevant: np.ndarray, users: Sequence[int] | None) -> np.ndarray:
    """Users with a target item, restricted to ``users`` when given."""
    with_targets = np.flatnonzero(n_relevant > 0)
    if users is not None:
        asked = np.asarray(users).reshape(-1)
        if asked.size and (
            not np.issubdtype(asked.dtype, np.integer)
            or asked.min() < 0
            or asked.max() >= len(n_relevant)
        ):
            raise DataError(f"users must be user indices in 0..{len(n_relevant) - 1}")
        with_targets = np.intersect1d(with_targets, asked)
    if len(with_targets) == 0:
        raise DataError(
            "no user has a target item to evaluate; the split's evaluated part is empty"
            + ("" if users is None else " (for the users given)")
        )
    return with_targets


def validation_ndcg(
    model, history: Dataset, target: Dataset, *, k: int = 10, batch_size: int = 1024
) -> float:
    """Mean NDCG@k of ``model`` on ``target`` given ``history``: the early-stopping signal."""
    result = evaluate(model, history, target, ks=(k,), metrics=("ndcg",), batch_size=batch_size)
    return result.mean(f"ndcg@{k}")


@dataclass
class RatingEvaluation:
    """Rating-prediction errors: per-user RMSE/MAE arrays and the global values over all ratings."""

    users: np.ndarray  # (U,) users with at least one target rating
    per_user: dict[str, np.ndarray]  # "rmse", "mae" -> (U,)
    overall: dict[str, float]  # "rmse", "mae" over every rating
    predictions: np.ndarray  # (N,) aligned with the target's interactions
    score_seconds: float


def evaluate_ratings(
    model, history: Dataset, target: Dataset, *, batch_size: int = 4096
) -> RatingEvaluation:
    """RMSE and MAE of a rating predictor on every (user, item) of ``target``.

    The model must implement ``predict_ratings(histories, *, users, items) -> (B,)`` where row b
    of ``histories`` (B, n_items) holds the ratings user ``users[b]`` gave in ``history`` and
    ``items[b]`` is the item to rate; like ranking, it sees histories, not only ids.
    """
    if not callable(getattr(model, "predict_ratings", None)):
        raise ConfigError(
            f"{getattr(model, 'name', model)} does not predict ratings (it has no "
            "predict_ratings method); use evaluate() for ranking instead"
        )
    if len(target) == 0:
        raise DataError("the target has no ratings to predict")
    ratings = history.ratings
    predictions = np.empty(len(target), np.float64)
    start = time.perf_counter()
    for lo in range(0, len(target), batch_size):
        users = target.user_idx[lo : lo + batch_size].astype(np.int64)
        items = target.item_idx[lo : lo + batch_size].astype(np.int64)
        predictions[lo : lo + len(users)] = np.asarray(
            model.predict_ratings(ratings[users], users=users, items=items), np.float64
        )
    seconds = time.perf_counter() - start
    per_user = {
        "rmse": M.rmse(predictions, target.value, target.user_idx, target.n_users),
        "mae": M.mae(predictions, target.value, target.user_idx, target.n_users),
    }
    users = np.flatnonzero(target.user_counts > 0)
    return RatingEvaluation(
        users,
        {k: v[users] for k, v in per_user.items()},
        M.rating_errors(predictions, target.value),
        predictions,
        seconds,
    )


# ---- steps -----------------------------------------------------------------------------------
def _hits(top_items: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """(U, K) bool: is the item at each rank a target item of the user (row u of ``relevant``)."""
    relevant = relevant.tocsr(copy=True)
    relevant.sort_indices()
    n_items = relevant.shape[1]
    rel_rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    rel_keys = rel_rows * n_items + relevant.indices  # sorted: rows, then items
    top_keys = np.arange(top_items.shape[0], dtype=np.int64)[:, None] * n_items + top_items
    pos = np.minimum(np.searchsorted(rel_keys, top_keys), len(rel_keys) - 1)
    return (rel_keys[pos] == top_keys) & (top_items >= 0)


def _negatives_above(scores: torch.Tensor, relevant: sp.csr_matrix) -> np.ndarray:
    """(B, 2): per user, summed over its positives, negatives scored above / tied (for AUC)."""
    n_pos = np.diff(relevant.indptr)
    p_max = int(n_pos.max())
    rows = np.repeat(np.arange(len(n_pos)), n_pos)
    cols = np.arange(len(rows)) - np.repeat(relevant.indptr[:-1], n_pos)
    pos_idx = np.zeros((len(n_pos), p_max), np.int64)
    pos_idx[rows, cols] = relevant.indices
    mask = torch.zeros((len(n_pos), p_max), dtype=torch.bool)
    mask[rows, cols] = True
    pos_scores = torch.gather(scores, 1, torch.from_numpy(pos_idx)).contiguous()  # (B, P)
    ordered = torch.sort(scores, dim=1).values.contiguous()  # -inf (excluded) first
    n_le = torch.searchsorted(ordered, pos_scores, right=True)
    n_lt = torch.searchsorted(ordered, pos_scores, right=False)
    above_all = scores.shape[1] - n_le  # items strictly above
    tied_all = n_le - n_lt - 1  # other items with the same score
    pair = pos_scores[:, :, None], pos_scores[:, None, :]
    both = mask[:, :, None] & mask[:, None, :]
    pos_above = ((pair[1] > pair[0]) & both).sum(dim=2)
    pos_tied = ((pair[1] == pair[0]) & both).sum(dim=2) - 1
    neg_above = ((above_all - pos_above) * mask).sum(dim=1)
    neg_tied = ((tied_all - pos_tied) * mask).sum(dim=1)
    return torch.stack([neg_above, neg_tied], dim=1).numpy()


def _beyond_accuracy(per_user, top_items, metrics, ks, popularity, features, *, n_items, n_users):
    corpus = {}
    for k in ks:
        if "coverage" in metrics:
            corpus[f"coverage@{k}"] = M.item_coverage(top_items, n_items, k)
        if "gini" in metrics:
            corpus[f"gini@{k}"] = M.gini_exposure(top_items, n_items, k)
        if "popularity" in metrics:
            per_user[f"popularity@{k}"] = M.average_popularity(top_items, popularity, k)
        if "novelty" in metrics:
            per_user[f"novelty@{k}"] = M.novelty(top_items, popularity, n_users, k)
        if "diversity" in metrics and features is not None:
            per_user[f"diversity@{k}"] = M.intra_list_diversity(top_items, features, k)
    return corpus
