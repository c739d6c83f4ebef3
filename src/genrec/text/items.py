"""Item text: the one place a model turns a dataset's catalog into texts and vectors.

Every model that reads item text (dense, BM25, hybrid, gpt4rec, TIGER and text-initialised
SASRec/BERT4Rec) carries the same three config fields, meaning the same thing everywhere:

* ``text_encoder``: ``"minilm"`` (all-MiniLM-L6-v2, shipped offline), ``"hashing"`` (no weights)
  or a sentence-transformers folder; see :func:`genrec.text.encoder.get_encoder`.
* ``text_template``: a ``str.format`` template over catalog columns, e.g.
  ``"{title} ({year})"``; ``""`` is the catalog's text fields plus the year when there is one
  ("Toy Story. Genres: Animation, Children's, Comedy. Year: 1995").
* ``text_cache``: where encoded texts are kept on disk: ``"default"``
  (``~/.cache/genrec/embeddings``), ``"off"`` or a folder.

A dataset without a catalog (or with no text columns) is an error that says what the model
needs; no model falls back to item ids as text.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters(n_users=4, n_items=6, n_clusters=2)
    >>> catalog_texts(world.split.train, "", model="dense")[0]
    'Item 0. Genres: group0'
    >>> item_embeddings(world.split.train, encoder="hashing", template="", cache="off",
    ...                 model="dense").shape
    (6, 256)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrec.errors import DataError
from genrec.text.encoder import encode_cached, get_encoder, render_item_texts

ENCODER_HELP = "'minilm', 'hashing' or a sentence-transformers folder"
CACHE_HELP = "'default', 'off' or a folder path"


def check_text_fields(config) -> None:
    """Validate a config's ``text_encoder`` / ``text_template`` / ``text_cache`` (the ones it has)."""
    if hasattr(config, "text_encoder"):
        config.check(
            isinstance(config.text_encoder, str) and config.text_encoder.strip() != "",
            "text_encoder",
            ENCODER_HELP,
        )
    if hasattr(config, "text_template"):
        config.check(
            isinstance(config.text_template, str),
            "text_template",
            "a str.format template over catalog columns, or '' for the text fields",
        )
    if hasattr(config, "text_cache"):
        config.check(
            isinstance(config.text_cache, str) and config.text_cache.strip() != "",
            "text_cache",
            CACHE_HELP,
        )


def catalog_texts(data, template: str = "", *, model: str) -> list[str]:
    """One text per item of ``data`` rendered from its catalog.

    Raises:
        DataError: ``data`` has no item catalog with text columns (the message names ``model``).
    """
    catalog = data.catalog
    if catalog is None or not (catalog.text_fields or (template and catalog.columns)):
        raise DataError(
            f"the {model} model reads item text, but dataset {data.name!r} has no "
            "item catalog with text columns; it needs a catalog with 'title' (and "
            "optionally 'genres', 'description') columns, e.g. the MovieLens or "
            "Amazon loaders' items"
        )
    texts = render_item_texts(catalog, template or None)
    if not template and "year" in catalog.columns:  # the default text also names the year
        years = [item_year(y) for y in catalog["year"]]
        texts = [f"{t}. Year: {y}" if y else t for t, y in zip(texts, years)]
    return texts


def item_embeddings(data, *, encoder, template: str, cache: str, model: str) -> np.ndarray:
    """(n_items, D) float32 embeddings of ``data``'s item texts, through the on-disk cache.
    ``encoder`` is a spec (``"minilm"``...) or a ready :class:`~genrec.text.TextEncoder`."""
    texts = catalog_texts(data, template, model=model)
    encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
    return encode_cached(encoder, texts, embedding_cache(cache))


def embedding_cache(setting: str) -> Path | None:
    """The cache folder a ``text_cache`` value means (None: no cache)."""
    if setting == "off":
        return None
    if setting == "default":
        from genrec.data.sources import default_cache_dir

        return default_cache_dir() / "embeddings"
    return Path(setting).expanduser()


def item_year(value) -> str:
    """``"1995"`` from 1995, 1995.0 or "1995"; ``""`` when missing."""
    try:
        year = float(value)
    except (TypeError, ValueError):
        return str(value or "")
    return str(int(year)) if np.isfinite(year) else ""


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with every non-zero row scaled to unit L2 norm (zero rows stay zero), float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


__all__ = [
    "CACHE_HELP",
    "ENCODER_HELP",
    "catalog_texts",
    "check_text_fields",
    "embedding_cache",
    "item_embeddings",
    "item_year",
    "unit_rows",
]
