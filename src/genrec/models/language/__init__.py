"""Recommenders that read item text: dense and BM25 retrieval, language-model ranking and
LLM-written queries."""
