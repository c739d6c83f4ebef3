"""Mult-DAE under the shared contract, plus its loss, penalty and architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.models import MultDAE
from genrec.models.interactions.multdae import MultDAEConfig, multinomial_nll, normalised_dropout

from .contract import OPTIONS, ModelContract

TINY = {
    "hidden_dims": (32,),
    "latent_dim": 16,
    "lr": 1e-2,
    "batch_size": 32,
    "max_epochs": 30,
    "patience": 5,
    "dropout": 0.2,
    "reg": 1e-4,
}


class TestMultDAE(ModelContract):
    model_cls = MultDAE
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"hidden_dims": (0,)},
        {"latent_dim": 0},
        {"dropout": 1.0},
        {"dropout": -0.1},
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


def test_architecture_mirrors_the_encoder():
    model = MultDAE(hidden_dims=(20, 10), latent_dim=5)
    net = model._build(30)
    shapes = [tuple(m.weight.shape) for m in net if isinstance(m, torch.nn.Linear)]
    assert shapes == [(20, 30), (10, 20), (5, 10), (10, 5), (20, 10), (30, 20)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in net) == 5  # none after the last layer


def test_multinomial_nll_matches_a_hand_computation():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    p0 = np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum()
    expected = (-(np.log(p0[0]) + np.log(p0[2])) - np.log(1 / 3)) / 2
    assert float(multinomial_nll(logits, x)) == pytest.approx(expected, rel=1e-6)


def test_input_is_normalised_and_dropout_only_in_training():
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    clean = normalised_dropout(x, 0.5, training=False)
    np.testing.assert_allclose(clean.numpy(), [[0.5] * 4, [0.0] * 4])
    torch.manual_seed(0)
    noisy = normalised_dropout(x, 0.5, training=True)[0].numpy()
    assert set(np.round(noisy, 6)) <= {0.0, 1.0}  # dropped, or kept and scaled by 1 / (1 - p)


def test_loss_decreases_and_reg_shrinks_the_weights(world):
    plain = MultDAE({**TINY, "max_epochs": 10, "reg": 0.0}).fit(world.split.train, options=OPTIONS)
    assert plain.loss_history_[-1] < plain.loss_history_[0]
    heavy = MultDAE({**TINY, "max_epochs": 10, "reg": 0.05}).fit(world.split.train, options=OPTIONS)

    def norm(model):
        return sum(
            float(m.weight.detach().square().sum())
            for m in model.net_
            if isinstance(m, torch.nn.Linear)
        )

    assert norm(heavy) < norm(plain)


def test_presets_and_defaults():
    paper = MultDAEConfig.from_preset("paper")
    assert (paper.hidden_dims, paper.latent_dim, paper.reg, paper.batch_size) == (
        (600,),
        200,
        0.01,
        500,
    )
    assert MultDAEConfig.from_dict({"hidden_dims": [64, 32]}).hidden_dims == (64, 32)  # JSON


def test_default_config_is_the_ml100k_validation_choice():
    cfg = MultDAE().config
    assert (cfg.hidden_dims, cfg.latent_dim, cfg.dropout, cfg.reg, cfg.lr, cfg.batch_size) == (
        (),
        200,
        0.5,
        2e-3,
        3e-3,
        256,
    )
