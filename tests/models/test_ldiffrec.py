"""L-DiffRec under the shared contract, plus item clustering, the latent split and sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError
from genrec.models import LDiffRec
from genrec.models.interactions.ldiffrec import item_embeddings

from .contract import OPTIONS, ModelContract

TINY = {
    "latent_dim": 32,
    "hidden": (32,),
    "lr": 0.01,
    "batch_size": 32,
    "max_epochs": 40,
    "patience": 5,
    "svd_dim": 8,
}


class TestLDiffRec(ModelContract):
    model_cls = LDiffRec
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"n_clusters": 0},
        {"latent_dim": 0},
        {"latent_dim": 1, "n_clusters": 2},
        {"svd_dim": 0},
        {"kmeans_iters": 0},
        {"kl_anneal_steps": 0},
        {"steps": 0},
        {"noise_min": 0.02, "noise_max": 0.01},
        {"hidden": ()},
        {"denoiser_dropout": 1.0},
        {"diffusion_weight": -1.0},
        {"kl_cap": -0.1},
        {"dropout": -0.1},
        {"lr": 0.0},
        {"batch_size": 0},
    ]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


@pytest.fixture(scope="module")
def fitted(world):
    return LDiffRec({**TINY, "n_clusters": 4, "max_epochs": 15}).fit(
        world.split.train, options=OPTIONS
    )


def test_items_are_clustered_by_the_planted_groups(world, fitted):
    """SVD item embeddings + k-means recover the world's 4 item groups."""
    group = np.arange(world.data.n_items) % 4
    assert len({(a, b) for a, b in zip(group, fitted.item_cluster_)}) == 4
    emb = item_embeddings(world.split.train.user_items, 8, seed=0)
    assert emb.shape == (world.data.n_items, 8)


def test_latent_is_split_by_cluster_size(fitted):
    sizes = np.bincount(fitted.item_cluster_)
    assert fitted.latent_dims_.sum() == 32 and len(fitted.latent_dims_) == 4
    np.testing.assert_array_equal(fitted.latent_dims_, (sizes * 32) // sizes.sum())


def test_decoder_returns_items_in_their_own_order(fitted):
    """Each cluster's decoder output lands on that cluster's items."""
    z = torch.zeros(1, 32)
    with torch.no_grad():
        out = fitted._decode(z)[0]
        for dec, items in zip(fitted.autoencoder_["decoders"], fitted.cluster_items_):
            torch.testing.assert_close(out[items], dec.bias)


def test_joint_training_lowers_the_loss(world):
    model = LDiffRec({**TINY, "max_epochs": 20}).fit(world.split.train, options=OPTIONS)
    assert model.loss_history_[-1] < model.loss_history_[0]


def test_sample_profiles(world, fitted):
    profiles = fitted.sample_profiles(40, seed=2)
    assert profiles.shape == (40, world.data.n_items)
    lengths = np.asarray(profiles.sum(axis=1)).ravel()
    assert set(lengths) <= set(fitted.train_lengths_)
    assert (profiles != fitted.sample_profiles(40, seed=2)).nnz == 0
    assert (profiles != fitted.sample_profiles(40, seed=5)).nnz > 0
    fixed = fitted.sample_profiles(3, lengths=np.array([0, 3, 60]))
    assert np.asarray(fixed.sum(axis=1)).ravel().tolist() == [0, 3, 60]
    with pytest.raises(ConfigError, match="lengths"):
        fitted.sample_profiles(2, lengths=np.array([1]))


def test_too_many_clusters_for_the_items_raise(world):
    with pytest.raises(ConfigError, match="n_clusters"):
        LDiffRec({**TINY, "n_clusters": 61}).fit(world.split.train, options=OPTIONS)


def test_paper_preset_builds():
    cfg = LDiffRec.Config.from_preset("paper")
    assert cfg.steps == 40 and cfg.latent_dim == 300


def test_multinomial_decoder_trains_and_samples(world):
    model = LDiffRec({**TINY, "recon": "multinomial", "max_epochs": 3}).fit(
        world.split.train, options=OPTIONS
    )
    assert np.isfinite(model.score(world.split.train.user_items[:3])).all()
    profiles = model.sample_profiles(5, lengths=np.full(5, 4), seed=1)
    assert np.asarray(profiles.sum(axis=1)).ravel().tolist() == [4] * 5
