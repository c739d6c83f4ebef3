"""Text-initialised item embeddings (``item_init="text"``) of SASRec and BERT4Rec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.synthetic import deterministic_sequences, planted_clusters
from genrec.errors import ConfigError
from genrec.models import BERT4Rec, SASRec
from genrec.models.sequence.sequences import text_item_init

from .contract import OPTIONS, ModelContract
from .test_bert4rec import TINY as BERT_TINY
from .test_sasrec import BAD as SASREC_BAD
from .test_sasrec import TINY as SASREC_TINY

TEXT = {"item_init": "text", "text_encoder": "hashing", "text_cache": "off"}
BAD_TEXT = [{"item_init": "glove"}, {"text_encoder": ""}, {"text_cache": ""}]


class TextInitContract(ModelContract):
    fit_with_valid = True
    stochastic = True
    quality_floor = 0.9

    def world(self):
        return deterministic_sequences(n_users=120, n_items=30, length=8, seed=0)


class TestSASRecTextInit(TextInitContract):
    model_cls = SASRec
    config = {**SASREC_TINY, "loss": "ce", **TEXT}
    bad_configs = SASREC_BAD + BAD_TEXT


class TestBERT4RecTextInit(TextInitContract):
    model_cls = BERT4Rec
    config = {**BERT_TINY, **TEXT}
    bad_configs = BAD_TEXT


@pytest.fixture(scope="module")
def world():
    return planted_clusters(n_users=60, n_items=40, n_clusters=4, noise=1, seed=0)


def cosine(x):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def within_minus_between(vectors, groups) -> float:
    sim, same = cosine(vectors), groups[:, None] == groups[None, :]
    off_diag = ~np.eye(len(groups), dtype=bool)
    return float(sim[same & off_diag].mean() - sim[~same].mean())


def test_text_init_puts_items_with_similar_text_closer(world):
    """Items whose text names the same cluster ("Genres: group2") start closer than others;
    the spread matches the random init's and missing components keep the random values."""
    groups = np.array([g[0] for g in world.data.catalog["genres"]])
    random = np.random.default_rng(0).normal(0, 0.03, (40, 8)).astype(np.float32)
    init = text_item_init(world.split.train, random, encoder="hashing", cache="off")
    assert init.shape == (40, 8) and init.dtype == np.float32
    assert np.std(init) == pytest.approx(np.std(random), rel=1e-4)
    assert within_minus_between(init, groups) > 0.3 > abs(within_minus_between(random, groups))
    wide = np.random.default_rng(0).normal(0, 0.03, (40, 64)).astype(np.float32)
    out = text_item_init(world.split.train, wide, encoder="hashing", cache="off")
    np.testing.assert_array_equal(out[:, 39:], wide[:, 39:])  # 40 centred items: rank <= 39


@pytest.mark.parametrize(
    "model_cls, config, table",
    [
        (SASRec, {**SASREC_TINY, "loss": "ce"}, lambda m: m.net_["item_emb"].weight[1:]),
        (BERT4Rec, BERT_TINY, lambda m: m.net_.items.weight[1:41]),
    ],
)
def test_fit_starts_from_the_text_and_leaves_other_weights_as_random(
    world, model_cls, config, table
):
    """One epoch at a negligible learning rate: the item table is the text init, every other
    weight equals the random-init model's (same seed), and the saved state has the same keys."""
    tiny = {**config, "lr": 1e-12, "max_epochs": 1}
    text = model_cls({**tiny, **TEXT}).fit(world.split.train, options=OPTIONS)
    rand = model_cls(tiny).fit(world.split.train, options=OPTIONS)
    groups = np.array([g[0] for g in world.data.catalog["genres"]])
    text_items = table(text).detach().numpy()
    rand_items = table(rand).detach().numpy()
    np.testing.assert_allclose(
        text_items,
        text_item_init(world.split.train, rand_items, encoder="hashing", cache="off"),
        atol=1e-6,
    )
    assert within_minus_between(text_items, groups) > 0.3
    text_state, rand_state = text.net_.state_dict(), rand.net_.state_dict()
    assert text_state.keys() == rand_state.keys() and text._state().keys() == rand._state().keys()
    item_key = "item_emb.weight" if model_cls is SASRec else "items.weight"
    for key in text_state:
        if key != item_key:
            torch.testing.assert_close(text_state[key], rand_state[key], rtol=0, atol=1e-9)


@pytest.mark.parametrize("model_cls", [SASRec, BERT4Rec])
def test_bad_item_init_names_the_allowed_values(model_cls):
    with pytest.raises(ConfigError, match="item_init.*random.*text"):
        model_cls(item_init="llm")
