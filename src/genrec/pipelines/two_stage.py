"""Retrieval-augmented two-stage recommendation: a retriever proposes, a reranker orders.

Method (LlamaRec: Yue et al., "LlamaRec: Two-Stage Recommendation using Large Language Models
for Ranking", 2023; Sec. 3.2 of the survey): any genrec model (EASE, the dense text retriever,
...) proposes the ``n_candidates`` items it scores highest among those the user has not seen; the
reranker orders them by its ``score_candidates``; for the LLM recommender its ``mode`` decides how
(the likelihood of each title, yes/no log-odds, or ``mode="listwise"``, which asks the LLM
recommender once per user with the candidates listed under letters A, B, ... (in the retriever's
order) and orders them by the probability of each letter: LlamaRec's verbaliser).

The result is a full ranking, so ``evaluate`` measures the pipeline under the same protocol as
every model: the reranked candidates rank above every other item, and the other items follow in
the retriever's order. Final scores are rank values (exact in float32): ``n_items + C - j`` for
the j-th reranked candidate, ``-(retriever rank)`` below.

Deviations from LlamaRec: no fine-tuning of the LLM here (``genrec tune`` makes one), the retriever is any
genrec model rather than LRURec, and the pointwise option is ours.

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

from genrec.errors import ConfigError, DataError
from genrec.models.base import ModelConfig, Recommender


@dataclass(frozen=True)
class TwoStageConfig(ModelConfig):
    """What the pipeline is made of. ``n_candidates = 20`` as in LlamaRec."""

    retriever: str = "ease"  # model spec ("name" or "name:preset") proposing candidates
    reranker: str = "llm"  # model spec ordering them
    n_candidates: int = 20  # candidates the reranker orders per user
    retriever_overrides: dict = field(default_factory=dict)  # config of the retriever
    reranker_overrides: dict = field(default_factory=dict)  # config of the reranker

    def __post_init__(self):
        for name in ("retriever", "reranker"):
            value = getattr(self, name)
            self.check(isinstance(value, str) and bool(value.strip()) and "+" not in value, name,
                       "one model spec such as 'ease' or 'llm' (see genrec.models.MODELS)")
            self.check(isinstance(getattr(self, name + "_overrides"), dict), name + "_overrides",
                       "a mapping of config keys to values")
        self.check_positive_ints("n_candidates")


class TwoStage(Recommender):
    """``retriever`` proposes ``n_candidates`` unseen items, ``reranker`` orders them.

    Args:
        config, overrides: a :class:`TwoStageConfig` or its fields.
        retriever, reranker: the (unfitted or fitted) models; their names and configs are
            recorded in the pipeline's config so that a saved pipeline rebuilds them
            (:func:`genrec.build.load_model`). :func:`genrec.build.build_model` builds both from
            a spec such as ``"ease+llm"``.
    """

    name = "two_stage"
    Config = TwoStageConfig
    sequential = True  # keep time order: the reranker (an LLM) reads the recent titles

    def __init__(self, config=None, *, retriever: Recommender | None = None,
                 reranker: Recommender | None = None, **overrides):
        for part, model in (("retriever", retriever), ("reranker", reranker)):
            if model is not None:
                if not isinstance(model, Recommender):
                    raise ConfigError(f"{part} must be a genrec model, got {type(model).__name__}")
                if config is None:  # record the given parts so that a saved pipeline rebuilds them
                    overrides.setdefault(part, model.name)
                    overrides.setdefault(part + "_overrides", model.config.to_dict())
        super().__init__(config, **overrides)
        if retriever is None or reranker is None:
            raise ConfigError("a TwoStage pipeline needs its retriever and reranker models; pass "
                              "them, or build one from a spec with genrec.build.build_model("
                              f"'{self.config.retriever}+{self.config.reranker}')")
        self.retriever, self.reranker = retriever, reranker
        if getattr(reranker.config, "mode", None) == "listwise" and self.config.n_candidates > 26:
            raise ConfigError(f"n_candidates={self.config.n_candidates} is too many for a listwise "
                              "reranker (one letter per candidate); use at most 26")

    @staticmethod
    def part_specs(config: TwoStageConfig) -> dict[str, tuple[str, dict]]:
        """The spec and overrides of each part, which :func:`genrec.build.build_model` builds."""
        return {"retriever": (config.retriever, config.retriever_overrides),
                "reranker": (config.reranker, config.reranker_overrides)}

    # ---- fit and score -----------------------------------------------------------------------
    def _fit(self, train, valid, options):
        self.retriever.fit(train, valid=valid, options=options)
        self.reranker.fit(train, valid=valid, options=options)

    def _score(self, histories, users):
        base = np.array(self.retriever.score(histories, users=users), np.float64, copy=True)
        if np.isnan(base).any():
            raise DataError(f"the retriever {self.config.retriever!r} returned NaN scores")
        out = np.empty(base.shape, np.float32)
        n_items = base.shape[1]
        for row in range(base.shape[0]):  # the reranker works per user (one prompt each)
            order = np.argsort(-base[row], kind="stable")
            out[row, order] = -np.arange(n_items, dtype=np.float32)  # retriever order below
            seen = histories[row].indices
            unseen = order[~np.isin(order, seen)][:self.config.n_candidates]  # (C,) best first
            if len(unseen) == 0:
                continue
            user = None if users is None else users[row:row + 1]
            scores = self._rerank(histories[row], unseen, user)
            ranked = unseen[np.argsort(-scores, kind="stable")]  # ties: the retriever's order
            out[row, ranked] = n_items + np.arange(len(ranked), 0, -1, dtype=np.float32)
        return out

    def _rerank(self, history, candidates: np.ndarray, user) -> np.ndarray:
        """(C,) reranker scores of one history's candidates (given best first)."""
        return self.reranker.score_candidates(history, candidates[None, :], users=user)[0]

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        state = {f"retriever/{k}": v for k, v in self.retriever._state().items()}
        state.update({f"reranker/{k}": v for k, v in self.reranker._state().items()})
        return state

    def _load_state(self, state):
        for part in ("retriever", "reranker"):
            model = getattr(self, part)
            model.n_users_, model.n_items_ = self.n_users_, self.n_items_
            model._load_state({k.split("/", 1)[1]: v for k, v in state.items()
                               if k.startswith(part + "/")})


__all__ = ["TwoStage", "TwoStageConfig"]
