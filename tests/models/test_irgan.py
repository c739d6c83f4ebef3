"""IRGAN under the shared contract, plus the generator as a negative sampler and the game."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from genrec.data.dataset import Dataset
from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError, DataError
from genrec.evaluation.protocol import validation_ndcg
from genrec.models import IRGAN
from genrec.models.interactions.irgan import IRGANConfig, _mf_module
from genrec.models.neural import DataParallel

from .contract import OPTIONS, ModelContract

TINY = {
    "dim": 16,
    "pretrain_epochs": 30,
    "pretrain_lr": 0.05,
    "lr_g": 0.01,
    "lr_d": 0.01,
    "batch_size": 32,
    "max_epochs": 5,
    "patience": 3,
}


class TestIRGAN(ModelContract):
    model_cls = IRGAN
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"dim": 0},
        {"pretrain_epochs": -1},
        {"pretrain_loss": "mse"},
        {"pretrain_lr": 0.0},
        {"lr_g": 0.0},
        {"lr_d": -1.0},
        {"reg": -1.0},
        {"d_steps": 0},
        {"g_steps": 0},
        {"d_temperature": 0.0},
        {"sample_lambda": 1.5},
        {"reward": "hinge"},
        {"batch_size": 0},
        {"max_epochs": 0},
        {"patience": 0},
        {"eval_every": 0},
        {"fold_in_reg": 0.0},
        {"reg_d": -1.0},
        {"optimizer": "rmsprop"},
    ]


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
    original = IRGAN._draw_negatives  # sample_negatives without its checks, on G's device

    def spy(self, users, n, **kwargs):
        out = original(self, users, n, **kwargs)
        calls.append((len(users), n, out))
        return out

    monkeypatch.setattr(IRGAN, "_draw_negatives", spy)
    IRGAN({**TINY, "max_epochs": 2, "d_steps": 2}).fit(world.split.train, options=OPTIONS)
    n_active = int((world.split.train.user_counts > 0).sum())
    assert sum(b for b, _, _ in calls) == 2 * 2 * n_active  # every user, each D pass
    assert all(tuple(out.shape) == (b, n) for b, n, out in calls)


def test_sampler_rejects_bad_users(fitted):
    with pytest.raises(DataError, match="training user"):
        fitted.sample_negatives(np.array([10_000]), 3, seed=0)
    with pytest.raises(DataError, match="training user"):
        fitted.sample_negatives(np.array([-1]), 3, seed=0)
    with pytest.raises(DataError, match="integer"):
        fitted.sample_negatives(np.array([0.5, 1.0]), 3, seed=0)
    with pytest.raises(DataError, match="integer"):
        fitted.sample_negatives(np.array(["a"]), 3, seed=0)


@pytest.mark.parametrize("n", [0, -2, 2.0, True, "3"])
def test_sampler_rejects_bad_counts(fitted, n):
    with pytest.raises(ConfigError, match="n = "):
        fitted.sample_negatives(np.array([0, 1]), n, seed=0)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan"), "hot"])
def test_sampler_rejects_bad_temperatures(fitted, temperature):
    with pytest.raises(ConfigError, match="temperature"):
        fitted.sample_negatives(np.array([0, 1]), 3, seed=0, temperature=temperature)


def test_a_user_who_saw_every_item_is_left_out_of_ds_fake_term():
    """User "all" saw all 6 items: D trains on their real items only, the fit does not fail."""
    pairs = [("all", i) for i in range(6)] + [
        (f"u{u}", (u + d) % 6) for u in range(8) for d in range(2)
    ]
    data = Dataset.from_interactions([u for u, _ in pairs], [f"i{i}" for _, i in pairs])
    model = IRGAN(dim=4, pretrain_epochs=2, max_epochs=2, batch_size=4).fit(data, options=OPTIONS)
    assert np.isfinite(model.d_loss_history_).all() and len(model.d_loss_history_) == 2
    with pytest.raises(DataError, match="every item"):
        model.sample_negatives(np.array([0]), 2)


def test_game_changes_both_players_and_logs_losses(world):
    base = {**TINY, "max_epochs": 1}
    before = IRGAN({**base, "max_epochs": 1, "lr_g": 1e-12, "lr_d": 1e-12}).fit(
        world.split.train, options=OPTIONS
    )
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
        world.split.train, valid=world.split.valid, options=OPTIONS
    )
    assert model.pretrain_ndcg_ > 0.5


def test_without_pretraining_the_game_alone_runs(world):
    model = IRGAN({**TINY, "pretrain_epochs": 0, "max_epochs": 2}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS
    )
    assert model.pretrain_ndcg_ is None and model.pretrain_history_ == []
    assert len(model.history_) == 2


def test_log1p_exp_reward_runs(world):
    model = IRGAN({**TINY, "reward": "log1p_exp", "max_epochs": 2}).fit(
        world.split.train, options=OPTIONS
    )
    assert np.isfinite(model.loss_history_).all()


def _with_players(fitted, **config):
    """A fresh IRGAN (``TINY`` + ``config``) holding copies of ``fitted``'s players and data."""
    model = IRGAN({**TINY, **config})
    model.generator_, model.discriminator_ = (
        copy.deepcopy(m) for m in (fitted.generator_, fitted.discriminator_)
    )
    model.train_items_, model.trained_users_ = fitted.train_items_, fitted.trained_users_
    model.n_users_, model.n_items_ = fitted.n_users_, fitted.n_items_
    return model


@pytest.mark.parametrize(
    ("sample_lambda", "reward"),
    [(0.0, "sigmoid"), (0.5, "sigmoid"), (0.0, "log1p_exp"), (0.5, "log1p_exp")],
)
def test_policy_gradient_moves_g_towards_what_d_rewards(fitted, sample_lambda, reward):
    """D rewards one item j (bias +10, -10 elsewhere, zero vectors): one G pass must raise
    p_G(j | u) for every user, with or without importance sampling, under either reward.

    G starts fresh (near-uniform): from a peaked G, a negative reward on a rarely drawn item
    moves probability to G's mode, so p_G(j | u) rises only in expectation for a user who
    drew no j."""
    model = _with_players(fitted, sample_lambda=sample_lambda, reward=reward)
    j = 7
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model.generator_ = _mf_module(model.n_users_, model.n_items_, TINY["dim"])
    with torch.no_grad():
        model.discriminator_.user.zero_()
        model.discriminator_.item.zero_()
        model.discriminator_.bias.fill_(-10.0)
        model.discriminator_.bias[j] = 10.0
    users = np.flatnonzero(model.trained_users_)

    def p_j():
        with torch.no_grad():
            g = model.generator_
            return torch.softmax(g.logits(g.user[torch.from_numpy(users)]), dim=1)[:, j].numpy()

    before = p_j()
    opt = torch.optim.SGD(model.generator_.parameters(), lr=0.05)
    model._g_pass(DataParallel(model.generator_, opt, seed=0), users, np.random.default_rng(0))
    after = p_j()
    assert (after > before).all(), f"{(after <= before).sum()} users lost p_G(j | u)"


def test_discriminator_passes_separate_real_items_from_g_samples(fitted):
    """From scratch, a few D passes make sigmoid(s_D) higher on real items than on the items
    ``sample_negatives`` draws from G."""
    model = _with_players(fitted)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model.discriminator_ = _mf_module(model.n_users_, model.n_items_, TINY["dim"])
    users = np.flatnonzero(model.trained_users_)
    opt = torch.optim.Adam(model.discriminator_.parameters(), lr=0.01)
    dp = DataParallel(model.discriminator_, opt, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        model._d_pass(dp, users, rng)
    d = model.discriminator_
    with torch.no_grad():
        prob = torch.sigmoid(d.logits(d.user[torch.from_numpy(users)])).numpy()  # (U, I)
    real = model.train_items_[users].toarray() > 0
    fake = model.sample_negatives(users, 10, seed=3)  # (U, 10)
    on_fake = np.take_along_axis(prob, fake, axis=1).mean()
    assert prob[real].mean() > on_fake + 0.05


def test_the_game_never_ends_below_the_pretrained_generator(world):
    """A wild game learning rate wrecks G; the pre-trained G must then be kept (best epoch 0)."""
    model = IRGAN({**TINY, "lr_g": 3.0, "lr_d": 3.0, "max_epochs": 3}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS
    )
    assert max(h["ndcg@10"] for h in model.history_) < model.pretrain_ndcg_  # the game hurt
    final = validation_ndcg(model, world.split.train, world.split.valid, k=10)
    assert final >= model.pretrain_ndcg_
    assert final == pytest.approx(model.pretrain_ndcg_) and model.best_epoch_ == 0


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


def test_paper_preset_is_the_released_code():
    cfg = IRGANConfig.from_preset("paper")
    assert IRGANConfig.presets["paper"] == {
        "dim": 5,
        "optimizer": "sgd",
        "lr_g": 1e-3,
        "lr_d": 1e-3,
        "reg": 0.0,
        "reg_d": 0.1 / 16,
        "d_temperature": 0.2,
        "sample_lambda": 0.2,
        "reward": "sigmoid",
        "d_steps": 2,
        "g_steps": 1,
        "max_epochs": 750,
        "patience": 750,
        "pretrain_loss": "bpr",
        "pretrain_d": False,
        "batch_size": 16,
    }
    assert (cfg.dim, cfg.pretrain_d, cfg.reg_d, cfg.optimizer) == (5, False, 0.00625, "sgd")


def test_paper_preset_mechanics_run(world):
    """SGD, D from scratch and a separate D penalty: D stays at its initial weights until the
    game, and the game moves it."""
    cfg = {**IRGANConfig.presets["paper"], "max_epochs": 2, "pretrain_epochs": 3}
    model = IRGAN(cfg).fit(world.split.train, options=OPTIONS)
    assert len(model.d_loss_history_) == 2 and np.isfinite(model.loss_history_).all()
