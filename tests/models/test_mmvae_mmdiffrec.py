"""The content-aware generative recommenders (mmvae, mmdiffrec) under the shared contract on the
procedural multimodal world, plus a planted visual-only preference found on cold items, the
mask-and-fallback of a missing image, and the text-only mode."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile

import numpy as np
import pytest

pytest.importorskip("PIL")

from genrec.data.dataset import ItemCatalog  # noqa: E402
from genrec.data.multimodal import with_catalog  # noqa: E402
from genrec.data.splits import held_out_items_split  # noqa: E402
from genrec.errors import ConfigError, DataError  # noqa: E402
from genrec.models import MultimodalDiffRec, MultimodalVAE  # noqa: E402
from genrec.models.multimodal.mmvae import item_tower  # noqa: E402
from genrec.multimodal.features import Modalities  # noqa: E402

from .contract import OPTIONS, ModelContract  # noqa: E402
from .multimodal_fixtures import FAST, shared_world  # noqa: E402

VAE = {**FAST, "latent_dim": 32, "batch_size": 32, "max_epochs": 25}
DIFF = {**FAST, "hidden": (32,), "lr": 0.01, "dropout": 0.1, "batch_size": 32, "max_epochs": 40}
CONTENT_BAD = [
    {"modalities": "audio"},
    {"id_dropout": 1.0},
    {"modality_dropout": -0.1},
    {"image_encoder": ""},
]


class TestMultimodalVAE(ModelContract):
    model_cls = MultimodalVAE
    config = VAE
    quality_floor = 0.9  # Hit@5 of the last item; measured 1.0
    stochastic = True
    bad_configs = [*CONTENT_BAD, {"latent_dim": 0}, {"dropout": 1.0}, {"beta_max": -1}]

    def world(self):
        return shared_world()


class TestMultimodalDiffRec(ModelContract):
    model_cls = MultimodalDiffRec
    config = DIFF
    quality_floor = 0.9  # Hit@5 of the last item; measured 1.0
    stochastic = True
    bad_configs = [*CONTENT_BAD, {"hidden": ()}, {"steps": 0}, {"dropout": 1.0}]

    def world(self):
        return shared_world()


@functools.cache
def visual_only_world():
    """A world whose descriptions never name the colour: each user's preferred colour is seen
    in the images only."""
    from genrec.data.synthetic_multimodal import multimodal_world

    folder = tempfile.mkdtemp(prefix="genrec-mmworld-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return multimodal_world(folder, n_users=120, n_items=96, mention=0.0, seed=1)


def colour_precision(model, split, traits, k: int = 3) -> float:
    """Over test users: the share of their top-k *cold* items whose colour is the colour of
    their training items (the planted preference)."""
    train = split.train
    cold = np.flatnonzero(train.item_counts == 0)
    users = np.unique(split.test.user_idx)
    users = users[train.user_counts[users] > 0]
    scores = model.score(train.user_items[users], users=users)[:, cold]  # (U, n_cold)
    top = cold[np.argsort(-scores, axis=1, kind="stable")[:, :k]]  # (U, k)
    liked = np.array([traits["colour"][train.user_items[u].indices[0]] for u in users])
    return float((traits["colour"][top] == liked[:, None]).mean())


@pytest.mark.parametrize("model_cls, config", [(MultimodalVAE, VAE), (MultimodalDiffRec, DIFF)])
def test_visual_only_preference_ranks_cold_items_of_the_seen_colour(model_cls, config):
    world = visual_only_world()
    split = held_out_items_split(world.data, 0.3, seed=0)
    image = model_cls(config).fit(split.train, options=OPTIONS)
    text = model_cls({**config, "modalities": "text"}).fit(split.train, options=OPTIONS)
    seen, read = (colour_precision(m, split, world.traits) for m in (image, text))
    assert image.modality_counts()["cold"] == int((split.train.item_counts == 0).sum()) > 0
    # chance: 0.25 (four colours); measured: vae 0.87 vs text 0.30, diffrec 0.77 vs text 0.27
    assert seen >= 0.6 and seen > read + 0.3


def without_images(train, items: np.ndarray):
    """``train`` with the image of ``items`` removed from the catalog."""
    columns = dict(train.catalog.columns)
    columns["image"] = columns["image"].copy()
    columns["image"][items] = None
    catalog = ItemCatalog(train.catalog.vocab, columns, text_fields=train.catalog.text_fields)
    return with_catalog(train, catalog)


@pytest.mark.parametrize("model_cls, config", [(MultimodalVAE, VAE), (MultimodalDiffRec, DIFF)])
def test_a_missing_image_falls_back_on_text_and_is_counted(model_cls, config):
    world = shared_world()
    split = held_out_items_split(world.data, 0.3, seed=0)
    cold = np.flatnonzero(split.train.item_counts == 0)
    blind = cold[::2]  # cold items scored from their text alone
    train = without_images(split.train, blind)
    model = model_cls(config).fit(train, options=OPTIONS)
    assert model.modality_counts()["missing_image"] == len(blind)
    users = np.flatnonzero(train.user_counts > 0)
    scores = model.score(train.user_items[users], users=users)[:, blind]  # (U, n_blind)
    liked = np.array([world.traits["shape"][train.user_items[u].indices[0]] for u in users])
    match = world.traits["shape"][blind][None, :] == liked[:, None]  # (U, n_blind)
    # every description names the shape: text alone must rank the imageless items of the
    # user's shape above the other imageless items (AUC per user, over users with both kinds)
    both = match.any(axis=1) & ~match.all(axis=1)
    pairs = (scores[:, :, None] > scores[:, None, :]) & match[:, :, None] & ~match[:, None, :]
    auc = pairs.sum(axis=(1, 2))[both] / (match.sum(1) * (~match).sum(1))[both]
    assert auc.mean() >= 0.8  # chance 0.5; measured: vae 0.997, diffrec 0.935


def test_item_tower_falls_back_on_the_present_modality_and_drops_cold_ids():
    import torch

    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 2))
    present_image = np.array([True, False, True, False])  # item 3 has no content at all
    present_text = np.array([True, True, False, False])
    image[~present_image] = 0
    text[~present_text] = 0
    content = Modalities(image, present_image, text.astype(np.float32), present_text)
    trained = np.array([True, True, False, True])
    tower = item_tower(content, trained, dim=5).eval()
    with torch.no_grad():
        items, c = tower()
        a = tower.project_image(torch.from_numpy(image)).numpy()
        b = tower.project_text(torch.from_numpy(text.astype(np.float32))).numpy()
        ids = tower.ids.numpy()
    c, items = c.numpy(), items.numpy()
    np.testing.assert_allclose(c[0], (a[0] + b[0]) / 2, atol=1e-6)  # both: the mean
    np.testing.assert_allclose(c[1], b[1], atol=1e-6)  # no image: the text alone
    np.testing.assert_allclose(c[2], a[2], atol=1e-6)  # no text: the image alone
    assert not c[3].any()  # neither: no content
    np.testing.assert_allclose(items[2], c[2], atol=1e-6)  # cold: content only, no ID part
    np.testing.assert_allclose(items[0], ids[0] + c[0], atol=1e-6)


@pytest.mark.parametrize("model_cls, config", [(MultimodalVAE, VAE), (MultimodalDiffRec, DIFF)])
def test_text_only_mode_reads_no_images(model_cls, config):
    train = shared_world().split.train
    no_images = with_catalog(
        train,
        ItemCatalog(
            train.catalog.vocab,
            {k: v for k, v in train.catalog.columns.items() if k != "image"},
            text_fields=train.catalog.text_fields,
        ),
    )
    short = {**config, "max_epochs": 2}
    with pytest.raises(DataError, match="genrec.data.multimodal"):
        model_cls(short).fit(no_images, options=OPTIONS)
    model = model_cls({**short, "modalities": "text"}).fit(no_images, options=OPTIONS)
    assert model.net_["tower"].project_image is None
    assert np.isfinite(model.score(no_images.user_items[:4])).all()


def test_reg_must_be_non_negative():
    with pytest.raises(ConfigError, match="reg"):
        MultimodalVAE(reg=-1.0)


def test_mmdiffrec_noised_start_is_deterministic_per_row():
    """sampling_steps > 0: the history is noised with the fit's fixed noise, the same for every
    row, so scores are reproducible and a batch equals its rows."""
    train = shared_world().split.train
    model = MultimodalDiffRec({**DIFF, "sampling_steps": 2, "max_epochs": 2}).fit(
        train, options=OPTIONS
    )
    histories = train.user_items[:6]
    together = model.score(histories)
    assert np.isfinite(together).all()
    np.testing.assert_array_equal(together, model.score(histories))
    np.testing.assert_allclose(model.score(histories[2])[0], together[2], rtol=1e-5, atol=1e-5)
