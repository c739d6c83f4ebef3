"""Language as an input: item text rendered from catalogs and encoded into vectors."""

from genrec.text.encoder import (
    DEFAULT_MODEL,
    EmbeddingCache,
    HashingEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    encode_cached,
    get_encoder,
    render_item_texts,
)

__all__ = [
    "DEFAULT_MODEL",
    "EmbeddingCache",
    "HashingEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "encode_cached",
    "get_encoder",
    "render_item_texts",
]
