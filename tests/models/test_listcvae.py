"""List-CVAE under the shared contract, plus training slates, generation and KL annealing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError, NotFittedError
from genrec.evaluation import slates as S
from genrec.models import ListCVAE
from genrec.models.interactions.listcvae import build_training_slates

from .contract import OPTIONS, ModelContract

TINY = {
    "slate_size": 5,
    "embed_dim": 16,
    "cond_dim": 32,
    "hidden_dim": 64,
    "latent_dim": 8,
    "slates_per_user": 8,
    "lr": 1e-2,
    "batch_size": 128,
    "max_epochs": 15,
    "patience": 5,
    "anneal_epochs": 3,
}


class TestListCVAE(ModelContract):
    model_cls = ListCVAE
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"slate_size": 0},
        {"embed_dim": 0},
        {"cond_dim": 0},
        {"hidden_dim": 0},
        {"latent_dim": 0},
        {"slates_per_user": 0},
        {"batch_size": 0},
        {"max_epochs": 0},
        {"patience": 0},
        {"eval_every": 0},
        {"anneal_epochs": -1},
        {"cond_dropout": 1.0},
        {"click_rate": 0.0},
        {"click_rate": 1.5},
        {"beta": -0.1},
        {"lr": 0.0},
        {"weight_decay": -1.0},
    ]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


@pytest.fixture(scope="module")
def model(world):
    return ListCVAE(TINY).fit(world.split.train, valid=world.split.valid, options=OPTIONS)


def test_training_slates_follow_the_construction():
    gen = torch.Generator().manual_seed(0)
    history = (torch.rand((64, 30), generator=gen) < 0.3).float()
    history[0] = 0.0
    history[0, :2] = 1.0  # a user with fewer train items than slots
    slates, responses, condition = build_training_slates(history, 6, 0.7, gen=gen)
    assert slates.shape == responses.shape == (64, 6)
    seen = history.gather(1, slates)  # (B, k) was the slate item a train item
    torch.testing.assert_close(seen, responses)  # clicked <=> train item
    for row in range(64):
        assert len(set(slates[row].tolist())) == 6
    assert responses[0].sum() <= 2
    expected = history.clone()
    for row, slot in zip(*np.nonzero(responses.numpy())):
        expected[row, slates[row, slot]] = 0.0
    torch.testing.assert_close(condition, expected)  # the history without the clicked items
    assert 0.5 < float(responses[1:].mean()) < 0.9  # about click_rate where items suffice


def test_click_rate_one_fills_every_slot_with_train_items():
    history = torch.zeros((3, 20))
    history[:, :10] = 1.0
    _, responses, condition = build_training_slates(history, 4, 1.0)
    assert responses.sum() == 12 and condition.sum() == 3 * 6


def test_generated_slates_are_valid_and_deterministic(model, world):
    histories = world.split.history("test").user_items[:20]
    slates = model.generate_slates(histories, seed=3)
    assert slates.shape == (20, 5) and slates.dtype == np.int64
    assert (slates >= 0).all()
    for row in range(20):
        assert len(set(slates[row])) == 5
        assert not set(slates[row]) & set(histories[row].indices)
    np.testing.assert_array_equal(slates, model.generate_slates(histories, seed=3))
    assert model.generate_slates(histories, k=2, seed=3).shape == (20, 2)
    S.slate_hits(slates, world.split.test.user_items[:20])  # passes the slate checks


def test_generated_slates_contain_the_planted_answer(model, world):
    users = np.flatnonzero(world.answer >= 0)
    histories = world.split.history("test").user_items[users]
    for seed in (0, 1):
        slates = model.generate_slates(histories, seed=seed)
        assert (slates == world.answer[users, None]).any(axis=1).mean() >= 0.8


def test_generation_with_few_free_items_pads_with_minus_one(model, world):
    history = np.ones((1, world.data.n_items), np.float32)
    history[0, [7, 11]] = 0.0  # only two items outside the history
    slates = model.generate_slates(history)
    assert sorted(slates[0, :2]) == [7, 11] and (slates[0, 2:] == -1).all()


def test_generate_slates_checks(model, world):
    histories = world.split.train.user_items[:2]
    for bad in (0, 6, 2.0, True):
        with pytest.raises(ConfigError, match="k must be"):
            model.generate_slates(histories, k=bad)
    with pytest.raises(NotFittedError, match="fit"):
        ListCVAE(TINY).generate_slates(histories)


def test_scores_are_the_best_slot_probability(model, world):
    histories = world.split.history("test").user_items[:4]
    with torch.no_grad():
        logits = model._ideal_logits(histories, sample_seed=None)  # (B, k, I)
    expected = torch.softmax(logits, dim=2).max(dim=1).values.numpy()
    np.testing.assert_allclose(model.score(histories), expected, rtol=1e-6)
    assert (model.score(histories)[histories.toarray() > 0] == 0).all()


def test_kl_weight_ramps_up_over_anneal_epochs(world, monkeypatch):
    betas = []
    original = ListCVAE._loss

    def spy(self, history, beta):
        betas.append(beta)
        return original(self, history, beta)

    monkeypatch.setattr(ListCVAE, "_loss", spy)
    cfg = {**TINY, "beta": 0.5, "anneal_epochs": 2, "max_epochs": 3, "batch_size": 480}
    ListCVAE(cfg).fit(world.split.train, options=OPTIONS)  # 120 users x 8 slates = 2 steps/epoch
    assert betas == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5, 0.5])


def test_loss_decreases(world):
    for beta in (0.0, 1.0):  # the slot cross-entropy alone, and with the annealed KL term
        model = ListCVAE({**TINY, "max_epochs": 8, "beta": beta}).fit(
            world.split.train, options=OPTIONS
        )
        assert model.loss_history_[-1] < 0.8 * model.loss_history_[0]


def test_slate_size_must_leave_items_to_choose(world):
    with pytest.raises(ConfigError, match="slate_size"):
        ListCVAE({**TINY, "slate_size": 60}).fit(world.split.train, options=OPTIONS)


def test_unknown_and_empty_histories_generate(model, world):
    empty = sp.csr_matrix((2, world.data.n_items), dtype=np.float32)
    slates = model.generate_slates(empty)
    assert slates.shape == (2, 5) and (slates >= 0).all()
