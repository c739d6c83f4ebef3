"""Mult-VAE under the shared contract, plus its KL, annealing, noise and sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError
from genrec.models import MultVAE
from genrec.models.interactions.multvae import MultVAEConfig, annealed_beta, gaussian_kl

from .contract import OPTIONS, ModelContract

TINY = {
    "hidden_dims": (32,),
    "latent_dim": 16,
    "lr": 1e-2,
    "batch_size": 32,
    "max_epochs": 30,
    "patience": 5,
    "dropout": 0.2,
    "anneal_steps": 50,
}


class TestMultVAE(ModelContract):
    model_cls = MultVAE
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"hidden_dims": (-1,)},
        {"latent_dim": 0},
        {"dropout": 1.0},
        {"beta_max": -0.1},
        {"anneal_steps": -1},
        {"reg": -1.0},
        {"lr": 0.0},
        {"batch_size": 0},
        {"max_epochs": 0},
        {"patience": 0},
        {"eval_every": 0},
    ]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


@pytest.fixture(scope="module")
def fitted(world):
    return MultVAE({**TINY, "max_epochs": 8}).fit(world.split.train, options=OPTIONS)


def test_gaussian_kl_matches_the_closed_form():
    mu = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    logvar = torch.tensor([[0.0, np.log(2.0)], [np.log(0.5), 0.0]])
    per_dim = 0.5 * (np.exp(logvar.numpy()) + mu.numpy() ** 2 - 1 - logvar.numpy())
    assert float(gaussian_kl(mu, logvar)) == pytest.approx(per_dim.sum(axis=1).mean(), rel=1e-6)
    assert float(gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0


def test_annealing_is_linear_then_capped():
    betas = [annealed_beta(s, beta_max=0.2, anneal_steps=100) for s in (0, 10, 20, 50, 10**6)]
    assert betas == pytest.approx([0.0, 0.1, 0.2, 0.2, 0.2])
    assert annealed_beta(0, beta_max=0.3, anneal_steps=0) == 0.3


def test_beta_history_follows_the_schedule(world):
    model = MultVAE({**TINY, "max_epochs": 4, "anneal_steps": 1000, "beta_max": 1.0}).fit(
        world.split.train, options=OPTIONS
    )
    steps_per_epoch = -(-world.split.train.n_users // TINY["batch_size"])
    expected = [(e * steps_per_epoch - 1) / 1000 for e in range(1, 5)]  # beta of the last step
    assert model.beta_history_ == pytest.approx(expected)


def test_reparameterisation_noise_is_standard_normal(fitted, world):
    """The training loss decodes z = mu + sigma * eps with eps ~ N(0, I) (RecBole: N(0, 0.01^2))."""
    x = torch.from_numpy(world.split.train.user_items.toarray().astype(np.float32))
    seen = {}
    hooks = [
        fitted.net_["encoder"][-1].register_forward_hook(  # the encoder's output layer
            lambda m, i, out: seen.__setitem__("enc", out.detach())
        ),
        fitted.net_["decoder"][0].register_forward_pre_hook(  # the decoder's first layer
            lambda m, i: seen.__setitem__("z", i[0].detach())
        ),
    ]
    torch.manual_seed(0)
    fitted._loss(x, 0.0)
    for hook in hooks:
        hook.remove()
    mu, logvar = seen["enc"].chunk(2, dim=1)
    eps = (seen["z"] - mu) / (0.5 * logvar).exp()  # (B, D)
    assert abs(float(eps.mean())) < 0.05 and 0.95 < float(eps.std()) < 1.05


def test_sample_profiles_lengths_and_determinism(fitted):
    a = fitted.sample_profiles(20, seed=3)
    b = fitted.sample_profiles(20, seed=3)
    assert a.shape == (20, fitted.n_items_) and (a != b).nnz == 0
    assert set(a.getnnz(axis=1)) <= set(fitted.train_lengths_.tolist())
    assert (a.data == 1).all()
    c = fitted.sample_profiles(5, lengths=np.array([0, 1, 2, 3, 60]), seed=0)
    assert c.getnnz(axis=1).tolist() == [0, 1, 2, 3, 60]
    assert (fitted.sample_profiles(20, seed=4) != a).nnz > 0


def test_sample_profiles_follow_the_decoder(fitted):
    """Planted clusters: a profile drawn from one z stays mostly inside one item cluster."""
    profiles = fitted.sample_profiles(200, lengths=np.full(200, 5), seed=0).toarray()
    group = np.arange(fitted.n_items_) % 4
    in_best_cluster = np.max([profiles[:, group == g].sum(axis=1) for g in range(4)], axis=0)
    assert in_best_cluster.mean() / 5 > 0.6  # uniform draws would give about 0.4


@pytest.mark.parametrize(
    "n, lengths", [(0, None), (2.5, None), (3, np.array([1, 2])), (2, np.array([1, 1000]))]
)
def test_sample_profiles_bad_arguments(fitted, n, lengths):
    with pytest.raises(ConfigError):
        fitted.sample_profiles(n, lengths=lengths)


def test_saved_model_samples_the_same(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = MultVAE.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.train_lengths_, fitted.train_lengths_)
    assert (loaded.sample_profiles(10, seed=1) != fitted.sample_profiles(10, seed=1)).nnz == 0


def test_paper_preset():
    paper = MultVAEConfig.from_preset("paper")
    assert (paper.beta_max, paper.anneal_steps, paper.batch_size, paper.reg) == (
        0.2,
        200_000,
        500,
        0.0,
    )


def test_default_config_is_the_ml100k_validation_choice():
    cfg = MultVAE().config
    assert (
        cfg.hidden_dims,
        cfg.latent_dim,
        cfg.dropout,
        cfg.beta_max,
        cfg.anneal_steps,
        cfg.lr,
        cfg.batch_size,
        cfg.reg,
    ) == ((), 200, 0.5, 0.3, 200, 3e-3, 256, 0.0)
