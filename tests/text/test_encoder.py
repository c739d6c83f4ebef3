"""Text encoders: hashing (no dependencies), the on-disk cache, templates, the MiniLM default."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from genrec.data import ItemCatalog, Vocabulary
from genrec.errors import ConfigError, MissingExtraError
from genrec.text import (
    EmbeddingCache,
    HashingEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    encode_cached,
    get_encoder,
    render_item_texts,
)

TITLES = ["Toy Story", "Toy Story 2", "Schindler's List"]


def test_hashing_encoder_is_deterministic_and_normalised():
    encoder = HashingEncoder(dim=128)
    assert isinstance(encoder, TextEncoder)
    a, b = encoder.encode(TITLES), HashingEncoder(dim=128).encode(TITLES)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 128) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    sims = a @ a.T
    assert sims[0, 1] > sims[0, 2]
    empty = encoder.encode([""])
    assert np.isclose(np.linalg.norm(empty), 1.0)


@pytest.mark.parametrize("bad", [{"dim": 1}, {"dim": "8"}, {"char_ngrams": -1}])
def test_hashing_encoder_rejects_bad_arguments(bad):
    with pytest.raises(ConfigError):
        HashingEncoder(**bad)


class CountingEncoder:
    def __init__(self):
        self.inner, self.calls = HashingEncoder(dim=32), []
        self.name = self.inner.name

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.inner.encode(texts)


def test_cache_hit_on_second_run(tmp_path):
    encoder = CountingEncoder()
    first = encode_cached(encoder, TITLES, tmp_path)
    assert len(encoder.calls) == 1
    assert sorted(encoder.calls[0]) == sorted(TITLES)
    cache = EmbeddingCache(tmp_path)  # a new process would open it like this
    second = cache.encode(encoder, TITLES)
    assert cache.last_encoded == 0 and len(encoder.calls) == 1  # nothing encoded again
    np.testing.assert_array_equal(first, second)
    third = cache.encode(encoder, ["Heat", *TITLES])  # only the new text is encoded
    assert cache.last_encoded == 1 and encoder.calls[-1] == ["Heat"]
    np.testing.assert_array_equal(third[1:], first)


def test_cache_is_keyed_by_encoder(tmp_path):
    small, large = HashingEncoder(dim=16), HashingEncoder(dim=64)
    assert encode_cached(small, TITLES, tmp_path).shape == (3, 16)
    assert encode_cached(large, TITLES, tmp_path).shape == (3, 64)


def test_template_rendering():
    catalog = ItemCatalog(
        Vocabulary(["a", "b", "c"], kind="item"),
        {
            "title": ["Heat", "Up", None],
            "genres": [("Crime", "Drama"), (), None],
            "year": [1995.0, float("nan"), 2001.0],
        },
    )
    assert render_item_texts(catalog) == ["Heat. Genres: Crime, Drama", "Up", "c"]
    assert render_item_texts(catalog, "{title} ({year}): {genres}") == [
        "Heat (1995): Crime, Drama",
        "Up (): ",
        " (2001): ",
    ]
    assert render_item_texts(catalog, "{title}", items=[1]) == ["Up"]
    with pytest.raises(ConfigError, match="plot"):
        render_item_texts(catalog, "{title} {plot}")


def test_missing_extra_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_st(name, *args, **kwargs):
        if name.startswith("sentence_transformers"):
            raise ImportError("no module named sentence_transformers")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_st)
    import sys

    monkeypatch.delitem(sys.modules, "sentence_transformers", raising=False)
    with pytest.raises(MissingExtraError, match=r"pip install 'genrec\[llm\]'"):
        SentenceTransformerEncoder().encode(["x"])


def test_get_encoder_names():
    assert isinstance(get_encoder("hashing"), HashingEncoder)
    assert isinstance(get_encoder("minilm"), SentenceTransformerEncoder)
    with pytest.raises(ConfigError, match="minilm"):
        get_encoder("no-such-encoder")


def test_minilm_encodes_titles_offline():
    vectors = SentenceTransformerEncoder().encode(TITLES)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > 0.8


def test_sentence_transformer_device_is_checked_before_loading():
    from genrec.text.encoder import SentenceTransformerEncoder

    with pytest.raises(ConfigError, match="device must be one of.*got 'gpu'"):
        SentenceTransformerEncoder(device="gpu")
    with pytest.raises(ConfigError, match="device must be one of"):
        get_encoder("minilm", device="tpu")
