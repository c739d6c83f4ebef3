"""IRGAN under the shared contract, plus the generator as a negative sampler and the game."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.errors import DataError
from genrec.models import IRGAN
from genrec.models.irgan import IRGANConfig

from .contract import OPTIONS, ModelContract

TINY = {"dim": 16, "pretrain_epochs": 30, "pretrain_lr": 0.05, "lr_g": 0.01, "lr_d": 0.01,
        "batch_size": 32, "max_epochs": 5, "patience": 3}


class TestIRGAN(ModelContract):
    model_cls = IRGAN
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [{"dim": 0}, {"pretrain_epochs": -1}, {"pretrain_loss": "mse"},
                   {"pretrain_lr": 0.0}, {"lr_g": 0.0}, {"lr_d": -1.0}, {"reg": -1.0},
                   {"d_steps": 0}, {"g_steps": 0}, {"d_temperature": 0.0},
                   {"sample_lambda": 1.5}, {"reward": "hinge"}, {"batch_size": 0},
                   {"max_epochs": 0}, {"patience": 0}, {"eval_every": 0}, {"fold_in_reg": 0.0}]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


@pytest.fixture(scope="module")
def fitted(world):
    return IRGAN(TINY).fit(world.split.train, valid=world.split.valid, options=OPTIONS)


def test_scores_are_the_generators_logits(fitted, world):
    g = fitted.generator_
    history = world.split.train.user_items[[4]]
    with torch.no_grad():
        expected = (g.user[4] @ g.item.T + g.bias).numpy()
    np.testing.assert_allclose(fitted.score(history, users=[4])[0], expected, rtol=1e-5, atol=1e-5)


def test_sampled_negatives_are_unseen_and_seeded(fitted, world):
    users = np.arange(30)
    drawn = fitted.sample_negatives(users, 20, seed=1)
    assert drawn.shape == (30, 20) and drawn.dtype == np.int64
    seen = world.split.train.user_items
    assert not np.asarray(seen[np.repeat(users, 20), drawn.ravel()]).any()
    np.testing.assert_array_equal(drawn, fitted.sample_negatives(users, 20, seed=1))
    assert not np.array_equal(drawn, fitted.sample_negatives(users, 20, seed=2))


def test_generator_negatives_are_harder_than_uniform(fitted, world):
    """G's negatives score higher under an independent true-ish model (EASE) than uniform unseen
    items: they are the hard negatives IRGAN feeds D. (Items are equally popular in this world;
    the slow ML-100K test also checks popularity.)"""
    from genrec.models import EASE

    train = world.split.train
    ease = EASE(reg=10.0).fit(train)
    users = np.flatnonzero(train.user_counts > 0)
    drawn = fitted.sample_negatives(users, 10, seed=0)  # (U, 10)
    seen = train.user_items[users].toarray() > 0
    rng = np.random.default_rng(0)
    weights = (~seen) / (~seen).sum(1, keepdims=True)
    uniform = np.stack([rng.choice(train.n_items, 10, p=w) for w in weights])  # (U, 10)
    truth = ease.score(train.user_items[users])
    rows = np.arange(len(users))[:, None]
    assert truth[rows, drawn].mean() > truth[rows, uniform].mean() + 0.05


def test_discriminator_training_draws_from_the_generator(world, monkeypatch):
    calls = []
    original = IRGAN.sample_negatives

    def spy(self, users, n, **kwargs):
        out = original(self, users, n, **kwargs)
        calls.append((len(users), n, out))
        return out

    monkeypatch.setattr(IRGAN, "sample_negatives", spy)
    IRGAN({**TINY, "max_epochs": 2, "d_steps": 2}).fit(world.split.train, options=OPTIONS)
    n_active = int((world.split.train.user_counts > 0).sum())
    assert sum(b for b, _, _ in calls) == 2 * 2 * n_active  # every user, each D pass
    assert all(out.shape == (b, n) for b, n, out in calls)


def test_sampler_rejects_bad_users(fitted):
    with pytest.raises(DataError, match="training user"):
        fitted.sample_negatives(np.array([10_000]), 3, seed=0)


def test_game_changes_both_players_and_logs_losses(world):
    base = {**TINY, "max_epochs": 1}
    before = IRGAN({**base, "max_epochs": 1, "lr_g": 1e-12, "lr_d": 1e-12}).fit(
        world.split.train, options=OPTIONS)
    after = IRGAN({**base, "max_epochs": 3}).fit(world.split.train, options=OPTIONS)
    assert len(after.loss_history_) == len(after.d_loss_history_) == 3
    assert np.isfinite(after.loss_history_).all() and np.isfinite(after.d_loss_history_).all()
    for name in ("generator_", "discriminator_"):
        a, b = getattr(before, name).item.detach(), getattr(after, name).item.detach()
        assert not torch.allclose(a, b)


def test_pretraining_is_early_stopped_on_validation(fitted):
    assert 1 <= fitted.pretrain_epochs_ <= TINY["pretrain_epochs"]
    curve = [h["ndcg@10"] for h in fitted.pretrain_history_]
    assert fitted.pretrain_ndcg_ == max(curve) == curve[fitted.pretrain_epochs_ - 1]
    assert fitted.pretrain_ndcg_ > 0.5


@pytest.mark.parametrize("loss", ["softmax", "bpr"])
def test_both_pretraining_losses_learn(world, loss):
    model = IRGAN({**TINY, "pretrain_loss": loss, "max_epochs": 1}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS)
    assert model.pretrain_ndcg_ > 0.5


def test_without_pretraining_the_game_alone_runs(world):
    model = IRGAN({**TINY, "pretrain_epochs": 0, "max_epochs": 2}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS)
    assert model.pretrain_ndcg_ is None and model.pretrain_history_ == []
    assert len(model.history_) == 2


def test_log1p_exp_reward_runs(world):
    model = IRGAN({**TINY, "reward": "log1p_exp", "max_epochs": 2}).fit(world.split.train,
                                                                        options=OPTIONS)
    assert np.isfinite(model.loss_history_).all()


def test_fold_in_matches_a_ridge_fit(fitted, world):
    history = world.split.train.user_items[[7]]
    q = fitted.generator_.item.detach().double().numpy()
    gram = q.T @ q
    gram += np.eye(len(gram)) * fitted.config.fold_in_reg * np.trace(gram) / len(gram)
    p = np.linalg.solve(gram, q.T @ history.toarray()[0])
    expected = q @ p + fitted.generator_.bias.detach().double().numpy()
    np.testing.assert_allclose(fitted.score(history)[0], expected, rtol=1e-4, atol=1e-4)
    group = np.arange(world.data.n_items) % 4
    hits = []
    for g in range(4):  # a new user with half of a cluster gets that cluster's other items
        members = np.flatnonzero(group == g)
        history = np.zeros((1, world.data.n_items), np.float32)
        history[0, members[: len(members) // 2]] = 1.0
        hits.append(np.mean(group[fitted.recommend(history, k=5)[0][0]] == g))
    assert np.mean(hits) >= 0.7


def test_paper_preset_builds():
    cfg = IRGANConfig.from_preset("paper")
    assert (cfg.dim, cfg.d_temperature, cfg.sample_lambda) == (5, 0.2, 0.2)
