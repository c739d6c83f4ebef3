"""GRU4Rec under the shared contract, plus its BPR-max loss, negatives and generation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genrec.data.synthetic import deterministic_sequences
from genrec.models import GRU4Rec
from genrec.models.sequence.gru4rec import bpr_max_loss
from genrec.options import RunOptions

from .contract import OPTIONS, ModelContract

TINY = {
    "dim": 16,
    "hidden": 16,
    "lr": 0.01,
    "batch_size": 32,
    "max_epochs": 25,
    "patience": 5,
    "max_len": 10,
    "embed_dropout": 0.0,
    "hidden_dropout": 0.0,
}


def sequences_world():
    return deterministic_sequences(n_users=120, n_items=30, length=8, seed=0)


class TestGRU4Rec(ModelContract):
    model_cls = GRU4Rec
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"dim": 0},
        {"hidden": 0},
        {"n_layers": 0},
        {"embed_dropout": 1.0},
        {"hidden_dropout": -0.1},
        {"loss": "bpr"},
        {"n_negatives": -1},
        {"sample_alpha": -1.0},
        {"bpr_reg": -1.0},
        {"max_len": 0},
        {"lr": 0.0},
        {"weight_decay": -1.0},
        {"batch_size": 0},
        {"max_epochs": 0},
        {"patience": 0},
        {"eval_every": 0},
        {"tie_embeddings": True, "dim": 8},
    ]

    def world(self):
        return sequences_world()


class TestGRU4RecBPRMax(TestGRU4Rec):
    config = {**TINY, "loss": "bpr-max", "n_negatives": 8}


@pytest.fixture(scope="module")
def world():
    return sequences_world()


def test_bpr_max_matches_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(5, dtype=torch.float64, generator=gen)
    neg = torch.randn(5, 4, dtype=torch.float64, generator=gen)
    valid = torch.tensor(
        [[1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool
    )
    reg = 0.7
    expected = []
    for n in range(5):
        js = [j for j in range(4) if valid[n, j]]
        z = sum(math.exp(float(neg[n, j])) for j in js)
        s = {j: math.exp(float(neg[n, j])) / z for j in js}
        ranked = sum(s[j] / (1 + math.exp(-(float(pos[n]) - float(neg[n, j])))) for j in js)
        expected.append(-math.log(ranked) + reg * sum(s[j] * float(neg[n, j]) ** 2 for j in js))
    got = bpr_max_loss(pos, neg, valid, reg)
    assert float(got) == pytest.approx(np.mean(expected), rel=1e-10)


def test_bpr_max_ignores_invalid_negatives_and_rewards_ranking():
    pos = torch.tensor([5.0])
    good = bpr_max_loss(pos, torch.tensor([[-5.0, 100.0]]), torch.tensor([[True, False]]), 0.0)
    bad = bpr_max_loss(pos, torch.tensor([[10.0, 100.0]]), torch.tensor([[True, False]]), 0.0)
    assert float(good) < 1e-3 < float(bad)


def test_bpr_max_learns_the_chains(world):
    model = GRU4Rec({**TINY, "loss": "bpr-max", "n_negatives": 0}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS
    )
    assert max(h["ndcg@10"] for h in model.history_) > 0.8


def test_loss_decreases(world):
    model = GRU4Rec({**TINY, "max_epochs": 10}).fit(world.split.train, options=OPTIONS)
    assert len(model.loss_history_) == 10 and model.loss_history_[-1] < 0.5 * model.loss_history_[0]


def test_tied_embeddings_train(world):
    model = GRU4Rec({**TINY, "tie_embeddings": True}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS
    )
    assert model.net_.embed is None and max(h["ndcg@10"] for h in model.history_) > 0.8


def test_generate_follows_the_chains(world):
    model = GRU4Rec(TINY).fit(world.split.train, valid=world.split.valid, options=OPTIONS)
    histories = world.split.history("test").user_item_order[:20]
    greedy = model.generate(histories, n_steps=1, temperature=0.01, seed=0)
    np.testing.assert_array_equal(greedy[:, 0], model.recommend(histories, k=1)[0][:, 0])
    assert (greedy[:, 0] == world.answer[:20]).mean() >= 0.9
    a = model.generate(histories, n_steps=5, seed=1)
    assert a.shape == (20, 5) and ((a >= 0) & (a < world.data.n_items)).all()
    np.testing.assert_array_equal(a, model.generate(histories, n_steps=5, seed=1))
    top1 = model.generate(histories, n_steps=3, top_k=1, seed=3)
    np.testing.assert_array_equal(top1, model.generate(histories, n_steps=3, top_k=1, seed=4))
    for row, items in zip(histories, a[:, :3]):  # the window (10) still holds the history
        assert len(set(items)) == 3 and not set(items) & set(row.indices)


def test_scores_depend_on_the_order(world):
    model = GRU4Rec(TINY).fit(world.split.train, options=RunOptions(seed=1, threads=1))
    history = world.split.train.user_item_order[:1].copy()
    reversed_ = history.copy()
    reversed_.data = reversed_.data.max() + 1 - reversed_.data
    assert not np.allclose(model.score(history), model.score(reversed_))


def test_paper_preset_is_bpr_max():
    cfg = GRU4Rec.Config.from_preset("paper")
    assert (cfg.loss, cfg.hidden, cfg.n_negatives, cfg.bpr_reg) == ("bpr-max", 100, 2048, 1.0)
