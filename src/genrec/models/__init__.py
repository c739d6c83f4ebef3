"""Every model genrec ships, listed explicitly: name -> class, no registry magic.

Families plug in here as they land: classic baselines; auto-encoders, VAEs, diffusion, GANs and
slate CVAEs (issue 3); sequence models and generative retrieval (issue 4); language-model
recommenders (issues 5-6) and multimodal models to come.
"""

from __future__ import annotations

from typing import Any, Mapping

from genrec.errors import ConfigError
from genrec.models.base import ModelConfig, Recommender
from genrec.models.sequence.bert4rec import BERT4Rec, BERT4RecConfig
from genrec.models.language.bm25 import BM25Config, BM25Recommender
from genrec.models.classic.bpr import BPR, BPRConfig
from genrec.models.interactions.cdae import CDAE, CDAEConfig
from genrec.models.language.dense import DenseRetrieval, DenseRetrievalConfig
from genrec.models.interactions.diffrec import DiffRec, DiffRecConfig
from genrec.models.classic.ease import EASE, EASEConfig
from genrec.models.language.gpt4rec import GPT4Rec, GPT4RecConfig
from genrec.models.sequence.gru4rec import GRU4Rec, GRU4RecConfig
from genrec.pipelines.hybrid import Hybrid, HybridConfig
from genrec.models.interactions.irgan import IRGAN, IRGANConfig
from genrec.models.classic.itemknn import ItemKNN, ItemKNNConfig
from genrec.models.interactions.ldiffrec import LDiffRec, LDiffRecConfig
from genrec.models.language.llm import LLMConfig, LLMRecommender
from genrec.models.interactions.listcvae import ListCVAE, ListCVAEConfig
from genrec.models.interactions.multdae import MultDAE, MultDAEConfig
from genrec.models.interactions.multvae import MultVAE, MultVAEConfig
from genrec.models.classic.pop import Pop, PopConfig
from genrec.models.interactions.recvae import RecVAE, RecVAEConfig
from genrec.models.sequence.sasrec import GSASRec, GSASRecConfig, SASRec, SASRecConfig
from genrec.models.sequence.tiger import TIGER, TIGERConfig

MODELS: dict[str, type[Recommender]] = {
    # classic baselines
    "pop": Pop,
    "itemknn": ItemKNN,
    "ease": EASE,
    "bpr": BPR,
    # generative models of interactions (issue 3)
    "multdae": MultDAE,
    "cdae": CDAE,
    "multvae": MultVAE,
    "recvae": RecVAE,
    "diffrec": DiffRec,
    "ldiffrec": LDiffRec,
    "irgan": IRGAN,
    "listcvae": ListCVAE,
    # sequence models and generative retrieval (issue 4)
    "gru4rec": GRU4Rec,
    "sasrec": SASRec,
    "gsasrec": GSASRec,
    "bert4rec": BERT4Rec,
    "tiger": TIGER,
    # text retrieval (issue 5)
    "dense": DenseRetrieval,
    "bm25": BM25Recommender,
    "hybrid": Hybrid,
    # language-model recommenders (issue 5); "retriever+reranker" names build a TwoStage pipeline
    "llm": LLMRecommender,
    # LLM-derived features for classic retrieval (issue 6)
    "gpt4rec": GPT4Rec,
}


def build_model(spec: str, overrides: Mapping[str, Any] | None = None) -> Recommender:
    """An unfitted model from ``"name"`` or ``"name:preset"`` plus config ``overrides``.

    >>> build_model("ease:default", {"reg": 10.0}).config.reg
    10.0
    """
    name, _, preset = spec.partition(":")
    if "+" in spec:  # a two-stage pipeline: overrides keyed by part ("llm.shots") or its own
        from genrec.pipelines.two_stage import TwoStage

        return TwoStage.from_spec(spec, overrides)
    model_cls = get_model_class(name)
    return model_cls(model_cls.Config.from_preset(preset or "default", overrides))


def get_model_class(name: str) -> type[Recommender]:
    """The class registered as ``name``; ConfigError listing the known names otherwise."""
    base = name.lower().partition(":")[0]
    if "+" in name or base == "two_stage":
        from genrec.pipelines.two_stage import TwoStage

        return TwoStage
    try:
        return MODELS[base]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


__all__ = ["MODELS", "build_model", "get_model_class", "ModelConfig", "Recommender",
           "Pop", "PopConfig", "ItemKNN", "ItemKNNConfig", "EASE", "EASEConfig", "BPR", "BPRConfig",
           "MultDAE", "MultDAEConfig", "CDAE", "CDAEConfig", "MultVAE", "MultVAEConfig", "RecVAE",
           "RecVAEConfig", "DiffRec", "DiffRecConfig", "LDiffRec", "LDiffRecConfig", "IRGAN",
           "IRGANConfig", "ListCVAE", "ListCVAEConfig", "GRU4Rec", "GRU4RecConfig", "SASRec",
           "SASRecConfig", "GSASRec", "GSASRecConfig", "BERT4Rec", "BERT4RecConfig", "TIGER",
           "TIGERConfig", "DenseRetrieval", "DenseRetrievalConfig", "BM25Recommender", "BM25Config",
           "Hybrid", "HybridConfig", "LLMRecommender", "LLMConfig", "GPT4Rec", "GPT4RecConfig"]
