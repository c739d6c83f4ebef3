"""Hybrid retrieval: reciprocal rank fusion of dense, BM25 and (optionally) a collaborative model.

Method: reciprocal rank fusion (Cormack, Clarke and Buettcher, "Reciprocal Rank Fusion
outperforms Condorcet and individual Rank Learning Methods", SIGIR 2009), the usual way to
combine dense and lexical retrieval: each component ranks every item for the user and an item
scores ``sum_m w_m / (rrf_k + rank_m)``. Components: the ``dense`` model (text embeddings), the
``bm25`` model (words), and, when ``collaborative`` names one, any genrec model fitted on the
interactions (e.g. ``"ease"``), so that items with interactions profit from collaborative signal
while cold items still get the text components' votes.

Deliberate choices:

* Items of the history are excluded from every component's ranking before fusion (they are
  never recommended anyway), so ranks count unseen items only.
* Tied scores share their mean rank (a collaborative model scores every cold item 0: it adds the
  same vote to all of them).
* Every component is fitted with its own defaults, except the text settings (``text_encoder``,
  ``text_template``, ``text_cache``) shared by dense and BM25.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> from genrec.models import EASE
    >>> model = Hybrid(text_encoder="hashing", text_cache="off", collaborative="ease",
    ...                collaborative_model=EASE()).fit(world.split.train)
    >>> [m.name for m in model.components_]
    ['dense', 'bm25', 'ease']
"""

from __future__ import annotations

from dataclasses import dataclass

from genrec.errors import ConfigError
from genrec.models import MODELS
from genrec.models.base import ModelConfig, Recommender
from genrec.models.language.bm25 import BM25Recommender
from genrec.models.language.dense import DenseRetrieval
from genrec.ranking import as_score_tensor, mask_seen
from genrec.retrieval.fusion import reciprocal_rank_fusion


@dataclass(frozen=True)
class HybridConfig(ModelConfig):
    """Hyper-parameters of :class:`Hybrid`.

    Defaults: RRF's k = 60 and equal weights as in the paper, dense + BM25 only. On ML-100K
    validation NDCG@10 (holdout 0.8/0.1/0.1, split seed 2020) that fusion (0.077) beats both of
    its parts (dense 0.065, BM25 0.066); adding EASE with equal weights (0.167) falls below EASE
    alone (0.272), and weights (0.25, 0.25, 2) bring it to 0.268, so the collaborative
    component is a preset (``collab``), not the default. On held-out (cold) items every
    collaborative vote pushes cold items down (validation NDCG@10 0.001 with EASE vs 0.020
    without).
    """

    presets = {
        "paper": {"collaborative": "", "rrf_k": 60.0, "weights": ()},  # SIGIR 2009: k = 60
        "collab": {"collaborative": "ease", "weights": (0.25, 0.25, 2.0)},  # validation choice
    }

    text_encoder: str = (
        "minilm"  # text encoder of the dense component ("minilm", "hashing", a folder)
    )
    text_template: str = ""  # item text template shared by dense and BM25 ("" = text fields + year)
    text_cache: str = (
        "default"  # embedding cache of the dense component ("default", "off", a folder)
    )
    collaborative: str = ""  # a genrec model spec to fuse as well, e.g. "ease"; "" = none
    rrf_k: float = 60.0  # RRF constant: larger flattens the advantage of top ranks
    weights: tuple[float, ...] = ()  # one weight per component (dense, bm25[, collab]); () = 1s

    def __post_init__(self):
        name = self.collaborative.partition(":")[0]
        self.check(
            name == "" or (name in MODELS and name not in ("dense", "bm25", "hybrid")),
            "collaborative",
            "'' or the name of a genrec model other than the text ones "
            f"({', '.join(n for n in MODELS if n not in ('dense', 'bm25', 'hybrid'))})",
        )
        self.check(self.rrf_k >= 0, "rrf_k", "a number >= 0 (60 in the paper)")
        n = 3 if self.collaborative else 2
        parts = "dense, bm25" + (", collaborative" if n == 3 else "")
        self.check(
            len(self.weights) in (0, n) and all(w >= 0 for w in self.weights),
            "weights",
            f"() or {n} non-negative numbers ({parts})",
        )


class Hybrid(Recommender):
    """RRF of the dense and BM25 recommenders (and a collaborative one). ``components_`` lists
    the fitted components in fusion order."""

    name = "hybrid"
    Config = HybridConfig
    sequential = True  # the dense component may read the time order; the others binarise

    def __init__(self, config=None, *, collaborative_model: Recommender | None = None, **overrides):
        super().__init__(config, **overrides)
        if bool(self.config.collaborative) != (collaborative_model is not None):
            raise ConfigError(
                f"Hybrid(collaborative={self.config.collaborative!r}) needs the "
                "matching collaborative model (and none without one); build it with "
                "genrec.build.build_model('hybrid', {'collaborative': 'ease'})"
            )
        self.collaborative_model = collaborative_model

    @staticmethod
    def part_specs(config: HybridConfig) -> dict[str, tuple[str, dict]]:
        """The collaborative part's spec, which :func:`genrec.build.build_model` builds."""
        return {"collaborative_model": (config.collaborative, {})} if config.collaborative else {}

    def _components(self) -> list[Recommender]:
        c = self.config
        text = {"text_template": c.text_template}
        parts = [
            DenseRetrieval(text_encoder=c.text_encoder, text_cache=c.text_cache, **text),
            BM25Recommender(**text),
        ]
        return parts + ([self.collaborative_model] if self.collaborative_model is not None else [])

    def _fit(self, train, valid, options):
        self.components_ = [m.fit(train, valid=valid, options=options) for m in self._components()]

    def _score(self, histories, users):
        ranked = []
        for model in self.components_:
            scores = as_score_tensor(model.score(histories, users=users), model_name=model.name)
            ranked.append(mask_seen(scores, histories).numpy())  # (B, I), -inf on the history
        weights = self.config.weights or None
        return reciprocal_rank_fusion(ranked, k=self.config.rrf_k, weights=weights)

    def _state(self):
        return {
            f"{i}.{key}": value
            for i, model in enumerate(self.components_)
            for key, value in model._state().items()
        }

    def _load_state(self, state):
        self.components_ = self._components()
        for i, model in enumerate(self.components_):
            model.n_users_, model.n_items_ = self.n_users_, self.n_items_
            prefix = f"{i}."
            model._load_state(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
