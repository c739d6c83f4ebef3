"""Retrieval: vector indexes (exact, FAISS flat / HNSW / IVF / IVF-PQ), candidate items from
user and item embeddings through them, BM25 and rank fusion.

The dense, BM25 and hybrid *recommenders* built on these live in ``genrec.models`` (``dense``,
``bm25``, ``hybrid``).
"""

from genrec.retrieval.bm25 import STOP_WORDS, BM25Index, bm25_weights, term_counts, tokenize
from genrec.retrieval.candidates import CandidateIndex, factor_embeddings, recall_vs_exact
from genrec.retrieval.fusion import fuse_rankings, ranks, reciprocal_rank_fusion
from genrec.retrieval.index import (
    KINDS,
    ExactIndex,
    FaissIndex,
    VectorIndex,
    build_index,
    load_index,
    recall_at_k,
)

__all__ = [
    "CandidateIndex",
    "factor_embeddings",
    "recall_vs_exact",
    "BM25Index",
    "STOP_WORDS",
    "bm25_weights",
    "term_counts",
    "tokenize",
    "fuse_rankings",
    "ranks",
    "reciprocal_rank_fusion",
    "KINDS",
    "ExactIndex",
    "FaissIndex",
    "VectorIndex",
    "build_index",
    "load_index",
    "recall_at_k",
]
