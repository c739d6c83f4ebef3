"""Retrieval-augmented two-stage recommendation: a retriever proposes, a reranker orders.

Method (LlamaRec: Yue et al., "LlamaRec: Two-Stage Recommendation using Large Language Models
for Ranking", 2023; Sec. 3.2 of the survey): any genrec model (EASE, the dense text retriever,
...) proposes the ``n_candidates`` items it scores highest among those the user has not seen; the
reranker orders them by its ``score_candidates``; for the LLM recommender its ``mode`` decides how
(the likelihood of each title, yes/no log-odds, or ``mode="listwise"``, which asks the LLM
recommender once per user with the candidates listed under letters A, B, ... (in the retriever's
order) and orders them by the probability of each letter: LlamaRec's verbaliser).

The final order of the shortlist fuses both stages (:mod:`genrec.pipelines.fusion`): by default a
calibrated linear fusion ``(1 - w) * z(retriever) + w * z(reranker)`` of the scores standardised
within the shortlist, with the reranker's weight ``w`` learned at fit on ``fusion_users``
validation users (their training histories, their validation items as targets; the weight with
the best NDCG@10, kept when its gain over the retriever alone exceeds two paired standard
errors, else 0). A reranker that does not help on validation users thus gets weight 0, and the
pipeline returns its retriever's ranking without asking the reranker at all. Fitted without
validation users who have a training history (no ``valid``, or a cold-start split), the weight is
1 (the reranker's order). ``fusion="none"`` keeps the unfused
order (the reranker's scores alone, LlamaRec's pipeline); ``fusion_weight`` fixes the weight
instead of learning it.

Injection guard: when the reranker flags items whose text held an injection
(:mod:`genrec.text.guard`), the fused order keeps each flagged item at or below its position in
the retriever's shortlist (fusion could otherwise lift it again through the reranker's score).

The result is a full ranking, so ``evaluate`` measures the pipeline under the same protocol as
every model: the shortlist ranks above every other item, in the fused order, and the other items
follow in the retriever's order. Final scores are rank values (exact in float32):
``n_items + C - j`` for the j-th item of the shortlist, ``-(retriever rank)`` below.

Deviations from LlamaRec: the score fusion; no fine-tuning of the LLM here (``genrec tune`` makes
one), the retriever is any genrec model rather than LRURec, and the pointwise option is ours.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters(n_users=8, n_items=12, n_clusters=2)
    >>> from genrec.models import LLMRecommender, Pop
    >>> pipe = TwoStage(n_candidates=4, retriever=Pop(), reranker=LLMRecommender(lm="fake"))
    >>> pipe.fit(world.split.train).score(world.split.train.user_item_order[:1]).shape
    (1, 12)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError
from genrec.evaluation.metrics import ranking_metrics
from genrec.models.base import ModelConfig, Recommender
from genrec.pipelines.fusion import WEIGHT_GRID, LearnedWeight, check_fusion, fuse, learn_weight
from genrec.ranking import as_score_tensor, mask_seen, top_k
from genrec.text import guard


@dataclass(frozen=True)
class TwoStageConfig(ModelConfig):
    """What the pipeline is made of. ``n_candidates = 20`` as in LlamaRec."""

    retriever: str = "ease"  # model spec ("name" or "name:preset") proposing candidates
    reranker: str = "llm"  # model spec ordering them
    n_candidates: int = 20  # candidates the reranker orders per user
    fusion: str = "linear"  # linear (calibrated scores), rrf (ranks) or none (the reranker alone)
    fusion_weight: float | None = None  # the reranker's weight in 0..1; None = learned at fit
    fusion_users: int = 100  # validation users the weight is learned on (reranker calls at fit)
    fusion_k: float = 60.0  # the RRF constant (fusion="rrf")
    retriever_overrides: dict = field(default_factory=dict)  # config of the retriever
    reranker_overrides: dict = field(default_factory=dict)  # config of the reranker

    def __post_init__(self):
        for name in ("retriever", "reranker"):
            value = getattr(self, name)
            self.check(
                isinstance(value, str) and bool(value.strip()) and "+" not in value,
                name,
                "one model spec such as 'ease' or 'llm' (see genrec.models.MODELS)",
            )
            self.check(
                isinstance(getattr(self, name + "_overrides"), dict),
                name + "_overrides",
                "a mapping of config keys to values",
            )
        self.check_positive_ints("n_candidates", "fusion_users")
        check_fusion(self.fusion, self.fusion_weight)
        self.check(self.fusion_k >= 0, "fusion_k", "a number >= 0 (60 in the RRF paper)")


@dataclass
class Shortlist:
    """One user's first stage: the retriever's whole order and the shortlist both stages score."""

    order: np.ndarray  # (n_items,) every item, the retriever's best first
    candidates: np.ndarray  # (C,) the best unseen items, best first
    retriever: np.ndarray  # (C,) their retriever scores
    reranker: np.ndarray | None  # (C,) their reranker scores; None when the reranker was not asked


class TwoStage(Recommender):
    """``retriever`` proposes ``n_candidates`` unseen items, ``reranker`` scores them, and the two
    scores are fused into the final order (see the module docstring).

    Args:
        config, overrides: a :class:`TwoStageConfig` or its fields.
        retriever, reranker: the (unfitted or fitted) models; a pipeline of parts fitted on
            one dataset can shortlist and score without a fit of its own. Their names and configs are
            recorded in the pipeline's config so that a saved pipeline rebuilds them
            (:func:`genrec.build.load_model`). :func:`genrec.build.build_model` builds both from
            a spec such as ``"ease+llm"``.

    Learned attributes: ``fusion_weight_`` (the reranker's weight used at scoring) and
    ``fusion_search_`` (a :class:`~genrec.pipelines.fusion.LearnedWeight`: the validation NDCG@10
    of every weight tried; None when the weight was not learned).
    """

    name = "two_stage"
    Config = TwoStageConfig
    sequential = True  # keep time order: the reranker (an LLM) reads the recent titles

    def __init__(
        self,
        config=None,
        *,
        retriever: Recommender | None = None,
        reranker: Recommender | None = None,
        **overrides,
    ):
        for part, model in (("retriever", retriever), ("reranker", reranker)):
            if model is not None:
                if not isinstance(model, Recommender):
                    raise ConfigError(f"{part} must be a genrec model, got {type(model).__name__}")
                if config is None:  # record the given parts so that a saved pipeline rebuilds them
                    overrides.setdefault(part, model.name)
                    overrides.setdefault(part + "_overrides", model.config.to_dict())
        super().__init__(config, **overrides)
        if retriever is None or reranker is None:
            raise ConfigError(
                "a TwoStage pipeline needs its retriever and reranker models; pass "
                "them, or build one from a spec with genrec.build.build_model("
                f"'{self.config.retriever}+{self.config.reranker}')"
            )
        self.retriever, self.reranker = retriever, reranker
        if getattr(reranker.config, "mode", None) == "listwise" and self.config.n_candidates > 26:
            raise ConfigError(
                f"n_candidates={self.config.n_candidates} is too many for a listwise "
                "reranker (one letter per candidate); use at most 26"
            )
        self.fusion_weight_: float | None = None
        self.fusion_search_: LearnedWeight | None = None
        fitted = [m for m in (retriever, reranker) if m.n_items_ is not None]
        sizes = {(m.n_users_, m.n_items_) for m in fitted}
        if len(sizes) > 1:
            raise ConfigError(
                f"the retriever and the reranker were fitted on different data ({sorted(sizes)} "
                "users and items); fit both on one dataset, or pass them unfitted"
            )
        if len(fitted) == 2:  # shortlists and scores at once (the weight: the config's, else 1)
            self.n_users_, self.n_items_ = sizes.pop()

    @staticmethod
    def part_specs(config: TwoStageConfig) -> dict[str, tuple[str, dict]]:
        """The spec and overrides of each part, which :func:`genrec.build.build_model` builds."""
        return {
            "retriever": (config.retriever, config.retriever_overrides),
            "reranker": (config.reranker, config.reranker_overrides),
        }

    # ---- fit ---------------------------------------------------------------------------------
    def _fit(self, train, valid, options):
        self.retriever.fit(train, valid=valid, options=options)
        self.reranker.fit(train, valid=valid, options=options)
        self.fusion_search_ = None
        if self.config.fusion == "none":
            self.fusion_weight_ = 1.0
        elif self.config.fusion_weight is not None:
            self.fusion_weight_ = float(self.config.fusion_weight)
        else:
            self.fusion_weight_ = self._learn_weight(train, valid, seed=options.seed)

    def _learn_weight(self, train, valid, *, seed: int) -> float:
        """The reranker weight learned on up to ``fusion_users`` validation users (their
        training histories, their validation items as targets); 1 (the reranker's order)
        without any."""
        users, relevant = validation_targets(train, valid, self.config.fusion_users, seed=seed)
        if len(users) == 0:
            return 1.0
        lists = self.shortlists(train.user_item_order[users], users=users)
        self.fusion_search_ = self.search_weight(lists, train.user_items[users], relevant)
        return self.fusion_search_.weight

    def search_weight(
        self,
        lists: list[Shortlist],
        seen: sp.csr_matrix,
        relevant: sp.csr_matrix,
        *,
        fusion: str | None = None,
        k: int = 10,
    ) -> LearnedWeight:
        """The reranker weight of :data:`~genrec.pipelines.fusion.WEIGHT_GRID` with the best
        NDCG@k of ``lists`` against ``relevant`` (U, n_items) targets, or 0 when its gain is within
        two paired standard errors (:func:`~genrec.pipelines.fusion.learn_weight`); ``seen``
        (U, n_items) items are excluded from the rankings."""
        per_user = np.stack(
            [
                ndcg_at(self.fused_scores(lists, weight=w, fusion=fusion), seen, relevant, k=k)
                for w in WEIGHT_GRID
            ]
        )  # (G, U)
        return learn_weight(per_user, WEIGHT_GRID)

    # ---- score -------------------------------------------------------------------------------
    def _score(self, histories, users):
        self._require_weight()
        ask = self.config.fusion == "none" or self.fusion_weight_ != 0
        return self.fused_scores(self._shortlists(histories, users, rerank=ask))

    def shortlists(
        self, histories: sp.spmatrix, *, users: np.ndarray | None = None, rerank: bool = True
    ) -> list[Shortlist]:
        """Both stages' scores of each history's shortlist (one reranker call per history;
        none with ``rerank=False``): what :meth:`fused_scores` orders under any fusion."""
        histories, users = self._check_batch(histories, users)
        return self._shortlists(histories, users, rerank=rerank)

    def _shortlists(self, histories, users, *, rerank: bool) -> list[Shortlist]:
        base = np.array(self.retriever.score(histories, users=users), np.float64, copy=True)
        if np.isnan(base).any():
            raise DataError(f"the retriever {self.config.retriever!r} returned NaN scores")
        lists = []
        for row in range(base.shape[0]):  # the reranker works per user (one prompt each)
            order = np.argsort(-base[row], kind="stable")
            unseen = order[~np.isin(order, histories[row].indices)][: self.config.n_candidates]
            scores = None
            if rerank and len(unseen):
                user = None if users is None else users[row : row + 1]
                scores = self.reranker.score_candidates(
                    histories[row], unseen[None, :], users=user
                )[0]
            lists.append(Shortlist(order, unseen, base[row, unseen], scores))
        return lists

    def fused_scores(
        self, lists: list[Shortlist], *, weight: float | None = None, fusion: str | None = None
    ) -> np.ndarray:
        """(B, n_items) float32 full-ranking scores of ``lists`` under ``fusion`` with the
        reranker's ``weight`` (default: the fitted ones); ties keep the retriever's order."""
        fusion = self.config.fusion if fusion is None else fusion
        if weight is None:
            self._require_weight()
            weight = self.fusion_weight_
        check_fusion(fusion, weight)
        n_items = len(lists[0].order) if lists else self.n_items_
        flagged = self.flagged_items(n_items)
        out = np.empty((len(lists), n_items), np.float32)
        for row, item in enumerate(lists):
            out[row, item.order] = -np.arange(n_items, dtype=np.float32)  # retriever order below
            if len(item.candidates) == 0:
                continue
            scores = fuse(
                item.retriever,
                item.reranker if fusion == "none" or weight else None,
                weight=weight,
                method=fusion,
                k=self.config.fusion_k,
            )
            ranked = item.candidates[guard.capped_order(scores, flagged[item.candidates])]
            out[row, ranked] = n_items + np.arange(len(ranked), 0, -1, dtype=np.float32)
        return out

    def flagged_items(self, n_items: int) -> np.ndarray:
        """(n_items,) bool: items whose text the reranker's injection guard flagged
        (:attr:`LLMRecommender.flagged_`; none for a reranker without one). The fused order
        never ranks such an item above its retriever position within the shortlist."""
        flagged = getattr(self.reranker, "flagged_", None)
        return np.zeros(n_items, bool) if flagged is None else np.asarray(flagged, bool)

    def _require_weight(self) -> None:
        self._require_fitted()
        if self.fusion_weight_ is None:  # fitted parts loaded without a pipeline fit
            self.fusion_weight_ = (
                1.0 if self.config.fusion_weight is None else float(self.config.fusion_weight)
            )

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        state = {f"retriever/{k}": v for k, v in self.retriever._state().items()}
        state.update({f"reranker/{k}": v for k, v in self.reranker._state().items()})
        state["fusion/weight"] = np.array([self.fusion_weight_], np.float64)
        return state

    def _load_state(self, state):
        for part in ("retriever", "reranker"):
            model = getattr(self, part)
            model.n_users_, model.n_items_ = self.n_users_, self.n_items_
            model._load_state(
                {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith(part + "/")}
            )
        weight = state.get("fusion/weight")  # absent in pipelines saved before fusion: unfused
        self.fusion_weight_ = 1.0 if weight is None else float(np.asarray(weight).ravel()[0])


def validation_targets(
    train, valid, n_users: int, *, seed: int
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Up to ``n_users`` users (drawn with ``seed``, sorted) with a training history and a
    validation item not in it, and (U, n_items) CSR of those items; none without ``valid`` (nor
    in a cold-start split, whose validation users have no training history to rank from)."""
    if valid is None or len(valid) == 0:
        return np.zeros(0, np.int64), sp.csr_matrix((0, train.n_items), dtype=np.float32)
    relevant = valid.user_items - valid.user_items.multiply(train.user_items)
    relevant.eliminate_zeros()
    users = np.flatnonzero((np.diff(relevant.indptr) > 0) & (train.user_counts > 0))
    if len(users) > n_users:
        users = np.sort(np.random.default_rng(seed).choice(users, n_users, replace=False))
    return users, relevant[users]


def ndcg_at(
    scores: np.ndarray, seen: sp.csr_matrix, relevant: sp.csr_matrix, *, k: int
) -> np.ndarray:
    """(B,) NDCG@k of full-ranking ``scores`` (B, n_items) against ``relevant`` (B, n_items)
    CSR targets, items in ``seen`` excluded; every row needs at least one target."""
    top, _ = top_k(mask_seen(as_score_tensor(scores), seen), k)
    rows = np.arange(len(top))[:, None]
    hits = (np.asarray(relevant[rows, np.maximum(top, 0)].todense()) > 0) & (top >= 0)  # (B, k)
    return ranking_metrics(hits, np.diff(relevant.indptr), [k], names=["ndcg"])[f"ndcg@{k}"]


__all__ = ["Shortlist", "TwoStage", "TwoStageConfig", "ndcg_at", "validation_targets"]
