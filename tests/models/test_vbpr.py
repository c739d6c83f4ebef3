"""VBPR under the shared contract on the procedural multimodal world, plus its exact objective,
cold items scored by content, and the text-only mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("PIL")

from genrec.data.splits import held_out_items_split  # noqa: E402
from genrec.errors import DataError  # noqa: E402
from genrec.evaluation.protocol import evaluate_split  # noqa: E402
from genrec.models import VBPR, Pop  # noqa: E402
from genrec.models.multimodal.vbpr import VBPRConfig, vbpr_loss  # noqa: E402

from .contract import OPTIONS, ModelContract  # noqa: E402
from .multimodal_fixtures import FAST, shared_world  # noqa: E402

TINY = {**FAST, "epochs": 30, "features": "image"}


class TestVBPR(ModelContract):
    model_cls = VBPR
    config = TINY
    quality_floor = 0.8  # Hit@5 of the held-out item; measured 0.875 (EASE 1.0, text dense 0.27)
    stochastic = True
    bad_configs = [
        {"k": 0},
        {"lr": 0},
        {"lambda_w": -1},
        {"features": "audio"},
        {"image_encoder": ""},
        {"image_cache": ""},
    ]

    def world(self):
        return shared_world()


def test_loss_is_cornacs_objective_term_by_term():
    """x_uij and every regulariser of Cornac's recom_vbpr.py, written out by hand."""
    g = torch.Generator().manual_seed(0)
    p = {
        "gamma_user": torch.randn(2, 3, generator=g),
        "gamma_item": torch.randn(4, 3, generator=g),
        "theta_user": torch.randn(2, 2, generator=g),
        "E": torch.randn(5, 2, generator=g),
        "beta_item": torch.randn(4, generator=g),
        "beta_prime": torch.randn(5, 1, generator=g),
    }
    feats = torch.randn(4, 5, generator=g)
    u, i, j = torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([3, 0])
    c = VBPRConfig(lambda_w=0.3, lambda_b=0.2, lambda_e=0.1)
    expected = 0.0
    for b in range(2):
        uu, ii, jj = int(u[b]), int(i[b]), int(j[b])
        d = feats[ii] - feats[jj]
        x = (
            p["beta_item"][ii]
            - p["beta_item"][jj]
            + p["gamma_user"][uu] @ (p["gamma_item"][ii] - p["gamma_item"][jj])
            + p["theta_user"][uu] @ (p["E"].T @ d)
            + p["beta_prime"][:, 0] @ d
        )
        expected -= torch.log(torch.sigmoid(x))
        expected += (
            0.3
            / 2
            * (
                p["gamma_user"][uu].pow(2).sum()
                + p["gamma_item"][ii].pow(2).sum()
                + p["gamma_item"][jj].pow(2).sum()
                + p["theta_user"][uu].pow(2).sum()
            )
        )
        expected += 0.2 / 2 * p["beta_item"][ii] ** 2 + 0.2 / 20 * p["beta_item"][jj] ** 2
    expected += 0.1 / 2 * (p["E"].pow(2).sum() + p["beta_prime"].pow(2).sum())
    torch.testing.assert_close(vbpr_loss(p, feats, u, i, j, c), expected)


def test_cold_items_found_by_their_images_where_popularity_cannot():
    split = held_out_items_split(shared_world().data, 0.2, seed=0)
    cold = np.flatnonzero(split.train.item_counts == 0)
    model = VBPR(TINY).fit(split.train, options=OPTIONS)
    v = evaluate_split(model, split, "test", ks=(10,), metrics=("hit",))
    p = evaluate_split(Pop().fit(split.train), split, "test", ks=(10,), metrics=("hit",))
    assert v.mean("hit@10") >= 0.85 > 0.1 >= p.mean("hit@10")  # measured 0.967 vs 0.0
    assert np.isin(v.top_items, cold).any()
    gamma, _, _ = model._item_parts()  # untrained factors of cold items do not score
    assert not gamma[cold].any()


def test_text_only_mode_needs_no_images(tmp_path):
    world = shared_world()
    model = VBPR({**TINY, "features": "text", "epochs": 2}).fit(world.split.train, options=OPTIONS)
    assert model.features_.shape[1] == 256  # hashed text only


def test_dataset_without_images_says_how_to_load_them():
    from genrec.data.synthetic import planted_clusters

    with pytest.raises(DataError, match="genrec.data.multimodal"):
        VBPR(TINY).fit(planted_clusters().split.train)


def test_pre_extracted_features_are_used_as_given():
    """MMRec / Cornac style: an ``image_features`` catalog column, no image files needed."""
    from genrec.data.dataset import ItemCatalog
    from genrec.data.multimodal import with_catalog
    from genrec.multimodal.images import PixelEncoder

    train = shared_world().split.train
    vectors = PixelEncoder(16).encode(list(train.catalog["image"]))
    vectors[3] = np.nan  # one item without features: a zero row, not an error
    catalog = ItemCatalog(train.items, {"image_features": vectors * 7.0})  # scale is undone
    model = VBPR({**TINY, "epochs": 1}).fit(with_catalog(train, catalog), options=OPTIONS)
    expected = np.where(np.isnan(vectors), 0.0, vectors)
    np.testing.assert_allclose(model.features_, expected, atol=1e-6)
