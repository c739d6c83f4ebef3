"""RecVAE under the shared contract, plus its encoder, composite prior and alternating updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.models import RecVAE
from genrec.models.interactions.recvae import RecVAEConfig, composite_log_prior, encode, log_normal
from genrec.models.neural import DataParallel

from .contract import OPTIONS, ModelContract

TINY = {
    "hidden_dim": 32,
    "latent_dim": 16,
    "n_layers": 2,
    "lr": 1e-2,
    "batch_size": 32,
    "max_epochs": 15,
    "patience": 5,
    "dropout": 0.2,
    "n_enc_epochs": 2,
}


class TestRecVAE(ModelContract):
    model_cls = RecVAE
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"hidden_dim": 0},
        {"latent_dim": 0},
        {"n_layers": 0},
        {"dropout": 1.0},
        {"gamma": -1.0},
        {"prior_weights": (0.5, 0.5)},
        {"prior_weights": (0.5, 0.6, -0.1)},
        {"prior_weights": (0.2, 0.2, 0.2)},
        {"n_enc_epochs": 0},
        {"n_dec_epochs": 0},
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
    return RecVAE({**TINY, "max_epochs": 5}).fit(world.split.train, options=OPTIONS)


def test_encoder_blocks_are_densely_connected():
    """With identity-like pieces the block outputs follow h_k = LN(swish(W_k h_{k-1} + sum h_j))."""
    model = RecVAE(hidden_dim=4, latent_dim=2, n_layers=3)
    enc = model._build_encoder(6)
    x = torch.rand(5, 6).round()
    x[0] = 1.0
    with torch.no_grad():
        h = torch.nn.functional.normalize(x, dim=1)
        hs = []
        for block, norm in zip(enc["blocks"], enc["norms"]):
            h = norm(torch.nn.functional.silu(block(h) + sum(hs)))
            hs.append(h)
        mu, logvar = encode(enc, x, 0.0, training=False)
    torch.testing.assert_close(torch.cat([mu, logvar], 1), enc["head"](hs[-1]))


def test_log_normal_matches_the_formula():
    z, mu, logvar = torch.tensor([1.5]), torch.tensor([0.5]), torch.tensor([math.log(4.0)])
    expected = -0.5 * math.log(2 * math.pi * 4.0) - (1.0**2) / (2 * 4.0)
    assert float(log_normal(z, mu, logvar)) == pytest.approx(expected, rel=1e-6)


def test_composite_prior_is_the_weighted_mixture():
    model = RecVAE(hidden_dim=4, latent_dim=3, n_layers=2)
    old = model._build_encoder(5)
    x, z = torch.rand(4, 5).round(), torch.randn(4, 3)
    x[:, 0] = 1.0
    with torch.no_grad():
        mu, logvar = encode(old, x, 0.0, training=False)
        got = composite_log_prior(z, mu, logvar, weights=(0.15, 0.75, 0.1), wide_logvar=10.0)

    def pdf(m, lv):
        return np.exp(log_normal(z, m, lv).numpy().astype(np.float64))

    mixture = (
        0.15 * pdf(torch.zeros(1), torch.zeros(1))
        + 0.75 * pdf(mu, logvar)
        + 0.1 * pdf(torch.zeros(1), torch.full((1,), 10.0))
    )
    np.testing.assert_allclose(got.numpy(), np.log(mixture), rtol=1e-5)


def test_kl_weight_grows_with_the_users_items(fitted, world):
    """beta_u = gamma * |x_u|: doubling gamma doubles the KL part of the loss exactly."""
    x = torch.from_numpy(world.split.train.user_items[:20].toarray().astype(np.float32))
    old = fitted._old_posterior(world.split.train.user_items[:20])
    losses = {}
    for gamma in (0.0, 0.01, 0.02):
        fitted.config = RecVAEConfig(**{**fitted.config.to_dict(), "gamma": gamma})
        torch.manual_seed(0)
        losses[gamma] = float(fitted._negative_elbo(x, *old).detach())
    fitted.config = RecVAEConfig(**{**fitted.config.to_dict(), "gamma": TINY.get("gamma", 0.005)})
    kl1, kl2 = losses[0.01] - losses[0.0], losses[0.02] - losses[0.0]
    assert kl2 == pytest.approx(2 * kl1, rel=1e-4)


def test_encoder_and_decoder_passes_update_only_their_part(world):
    model = RecVAE({**TINY, "max_epochs": 1})
    model.fit(world.split.train, options=OPTIONS)
    user_items = world.split.train.user_items
    rng = np.random.default_rng(0)
    old = model._old_posterior(user_items)
    enc_opt = torch.optim.Adam(model.net_["encoder"].parameters(), lr=0.01)
    dec_opt = torch.optim.Adam(model.net_["decoder"].parameters(), lr=0.01)
    enc_opt, dec_opt = (
        DataParallel(model.net_[part], opt, seed=0)
        for part, opt in (("encoder", enc_opt), ("decoder", dec_opt))
    )
    before = {k: v.clone() for k, v in model.net_.state_dict().items()}
    model.net_.train()
    model._encoder_pass(user_items, old, enc_opt, rng)
    after_enc = {k: v.clone() for k, v in model.net_.state_dict().items()}
    assert all(torch.equal(before[k], after_enc[k]) for k in before if k.startswith("decoder"))
    assert not all(torch.equal(before[k], after_enc[k]) for k in before if k.startswith("encoder"))
    model._decoder_pass(user_items, dec_opt, rng)
    after_dec = model.net_.state_dict()
    assert all(torch.equal(after_enc[k], after_dec[k]) for k in before if k.startswith("encoder"))
    assert not torch.equal(after_enc["decoder.weight"], after_dec["decoder.weight"])
    assert all(p.requires_grad for p in model.net_.parameters())


def test_sample_profiles(fitted, tmp_path):
    a = fitted.sample_profiles(30, seed=2)
    assert a.shape == (30, fitted.n_items_)
    assert set(a.getnnz(axis=1)) <= set(fitted.train_lengths_.tolist())
    assert (a != fitted.sample_profiles(30, seed=2)).nnz == 0
    fitted.save(tmp_path / "m")
    assert (RecVAE.load(tmp_path / "m").sample_profiles(30, seed=2) != a).nnz == 0
    lengths = np.array([1, 4, 7])
    assert fitted.sample_profiles(3, lengths=lengths).getnnz(axis=1).tolist() == [1, 4, 7]


def test_paper_preset():
    paper = RecVAEConfig.from_preset("paper")
    assert (
        paper.hidden_dim,
        paper.latent_dim,
        paper.gamma,
        paper.lr,
        paper.batch_size,
        paper.n_enc_epochs,
        paper.n_dec_epochs,
        paper.prior_weights,
    ) == (600, 200, 0.005, 5e-4, 500, 3, 1, (0.15, 0.75, 0.1))


def test_default_config_is_the_ml100k_validation_choice():
    cfg = RecVAE().config
    assert (
        cfg.hidden_dim,
        cfg.n_layers,
        cfg.latent_dim,
        cfg.gamma,
        cfg.n_enc_epochs,
        cfg.lr,
        cfg.batch_size,
        cfg.dropout,
    ) == (256, 3, 200, 0.02, 2, 2e-3, 256, 0.5)
