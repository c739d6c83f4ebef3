"""Every leaf model genrec ships, listed explicitly: name -> class, no registry magic.

Each model is one file in the package of its family:

* ``classic/``: strong baselines (popularity, ItemKNN, EASE, BPR-MF; iALS and a BPR-MF
  peer trained by the ``implicit`` package);
* ``interactions/``: generative models of the interaction matrix (auto-encoders, VAEs,
  diffusion, adversarial training, slate CVAEs);
* ``sequence/``: sequence models and generative retrieval with semantic IDs;
* ``language/``: text retrieval and language-model recommenders;
* ``multimodal/``: item images (and text) beside interactions.

Composites made of other models (retrieve-then-rerank, hybrid fusion) live in
:mod:`genrec.pipelines`; :mod:`genrec.build` turns specs such as ``"multvae:paper"`` or
``"ease+llm"`` into either.
"""

from __future__ import annotations

from genrec.models.base import ModelConfig, Recommender
from genrec.models.classic.bpr import BPR, BPRConfig
from genrec.models.classic.bpr_implicit import ImplicitBPR, ImplicitBPRConfig
from genrec.models.classic.ease import EASE, EASEConfig
from genrec.models.classic.ials import IALS, IALSConfig
from genrec.models.classic.itemknn import ItemKNN, ItemKNNConfig
from genrec.models.classic.pop import Pop, PopConfig
from genrec.models.interactions.cdae import CDAE, CDAEConfig
from genrec.models.interactions.diffrec import DiffRec, DiffRecConfig
from genrec.models.interactions.irgan import IRGAN, IRGANConfig
from genrec.models.interactions.ldiffrec import LDiffRec, LDiffRecConfig
from genrec.models.interactions.listcvae import ListCVAE, ListCVAEConfig
from genrec.models.interactions.multdae import MultDAE, MultDAEConfig
from genrec.models.interactions.multvae import MultVAE, MultVAEConfig
from genrec.models.interactions.recvae import RecVAE, RecVAEConfig
from genrec.models.language.bm25 import BM25Config, BM25Recommender
from genrec.models.language.dense import DenseRetrieval, DenseRetrievalConfig
from genrec.models.language.gpt4rec import GPT4Rec, GPT4RecConfig
from genrec.models.language.llm import LLMConfig, LLMRecommender
from genrec.models.multimodal.mmdense import MultimodalDense, MultimodalDenseConfig
from genrec.models.multimodal.mmdiffrec import MultimodalDiffRec, MultimodalDiffRecConfig
from genrec.models.multimodal.mmvae import MultimodalVAE, MultimodalVAEConfig
from genrec.models.multimodal.vbpr import VBPR, VBPRConfig
from genrec.models.sequence.bert4rec import BERT4Rec, BERT4RecConfig
from genrec.models.sequence.gru4rec import GRU4Rec, GRU4RecConfig
from genrec.models.sequence.sasrec import GSASRec, GSASRecConfig, SASRec, SASRecConfig
from genrec.models.sequence.tiger import TIGER, TIGERConfig

MODELS: dict[str, type[Recommender]] = {
    # classic baselines
    "pop": Pop,
    "itemknn": ItemKNN,
    "ease": EASE,
    "bpr": BPR,
    "ials": IALS,  # through implicit (the scale extra)
    "bpr-implicit": ImplicitBPR,  # through implicit (the scale extra)
    # generative models of interactions
    "multdae": MultDAE,
    "cdae": CDAE,
    "multvae": MultVAE,
    "recvae": RecVAE,
    "diffrec": DiffRec,
    "ldiffrec": LDiffRec,
    "irgan": IRGAN,
    "listcvae": ListCVAE,
    # sequence models and generative retrieval
    "gru4rec": GRU4Rec,
    "sasrec": SASRec,
    "gsasrec": GSASRec,
    "bert4rec": BERT4Rec,
    "tiger": TIGER,
    # text retrieval
    "dense": DenseRetrieval,
    "bm25": BM25Recommender,
    # language-model recommenders
    "llm": LLMRecommender,
    # LLM-derived features for classic retrieval
    "gpt4rec": GPT4Rec,
    # multimodal: item images beside text and interactions
    "vbpr": VBPR,
    "mmdense": MultimodalDense,
    "mmvae": MultimodalVAE,
    "mmdiffrec": MultimodalDiffRec,
}


__all__ = [
    "MODELS",
    "ModelConfig",
    "Recommender",
    "Pop",
    "PopConfig",
    "ItemKNN",
    "ItemKNNConfig",
    "EASE",
    "EASEConfig",
    "BPR",
    "BPRConfig",
    "IALS",
    "IALSConfig",
    "ImplicitBPR",
    "ImplicitBPRConfig",
    "MultDAE",
    "MultDAEConfig",
    "CDAE",
    "CDAEConfig",
    "MultVAE",
    "MultVAEConfig",
    "RecVAE",
    "RecVAEConfig",
    "DiffRec",
    "DiffRecConfig",
    "LDiffRec",
    "LDiffRecConfig",
    "IRGAN",
    "IRGANConfig",
    "ListCVAE",
    "ListCVAEConfig",
    "GRU4Rec",
    "GRU4RecConfig",
    "SASRec",
    "SASRecConfig",
    "GSASRec",
    "GSASRecConfig",
    "BERT4Rec",
    "BERT4RecConfig",
    "TIGER",
    "TIGERConfig",
    "DenseRetrieval",
    "DenseRetrievalConfig",
    "BM25Recommender",
    "BM25Config",
    "LLMRecommender",
    "LLMConfig",
    "GPT4Rec",
    "GPT4RecConfig",
    "VBPR",
    "VBPRConfig",
    "MultimodalDense",
    "MultimodalDenseConfig",
    "MultimodalVAE",
    "MultimodalVAEConfig",
    "MultimodalDiffRec",
    "MultimodalDiffRecConfig",
]
