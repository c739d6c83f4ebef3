"""CDAE under the shared contract, plus its user node, corruption and the two objectives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.models import CDAE
from genrec.models.cdae import CDAEConfig

from .contract import OPTIONS, ModelContract

TINY = {"hidden": 16, "lr": 0.02, "batch_size": 32, "max_epochs": 40, "patience": 5}


class TestCDAE(ModelContract):
    model_cls = CDAE
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [{"hidden": 0}, {"corruption": 1.0}, {"corruption": -0.1},
                   {"hidden_act": "softmax"}, {"output_act": "gelu"}, {"loss": "hinge"},
                   {"objective": "pairwise"}, {"negative_ratio": 0.0}, {"lr": 0.0},
                   {"reg": -1.0}, {"batch_size": 0}, {"max_epochs": 0}, {"patience": 0},
                   {"eval_every": 0}]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


@pytest.fixture(scope="module")
def fitted(world):
    return CDAE(TINY).fit(world.split.train, valid=world.split.valid, options=OPTIONS)


def test_score_is_the_papers_forward_pass(fitted, world):
    """Scores = W' sigmoid(W^T y + V_u + b) + b' for a trained user, V_u = 0 for users=None."""
    net = fitted.module_
    history = world.split.train.user_items[[3]]
    y = torch.from_numpy(history.toarray())
    with torch.no_grad():
        pre = y @ net.encoder.weight.T + net.encoder.bias  # (1, H)
        with_user = torch.sigmoid(pre + net.user_vectors.weight[3]) @ net.decoder.weight.T
        without = torch.sigmoid(pre) @ net.decoder.weight.T
    np.testing.assert_allclose(fitted.score(history, users=[3])[0],
                               (with_user + net.decoder.bias)[0].detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fitted.score(history)[0], (without + net.decoder.bias)[0].detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_user_vector_changes_scores(fitted, world):
    history = world.split.train.user_items[[0]]
    assert not np.allclose(fitted.score(history, users=[0]), fitted.score(history))


def test_untrained_user_gets_a_zero_user_vector(world):
    train = world.split.train
    train = train.subset(train.user_idx != 0)
    model = CDAE({**TINY, "max_epochs": 3}).fit(train, options=OPTIONS)
    assert not model.trained_users_[0]
    history = world.split.train.user_items[[0]]
    np.testing.assert_array_equal(model.score(history, users=[0]), model.score(history))


def test_full_logistic_loss_matches_a_hand_computation(fitted):
    """No corruption: the loss is the per-user sum of BCE over all items, averaged over users."""
    model = CDAE({**TINY, "corruption": 0.0})
    model.module_ = fitted.module_
    rows = torch.tensor([[1.0, 0, 1] + [0] * 57, [0, 1.0, 0] + [0] * 57])
    users = torch.tensor([0, 5])
    logits = fitted.module_(rows, fitted.module_.user_vectors(users))
    p = torch.sigmoid(logits)
    expected = -(rows * p.log() + (1 - rows) * (1 - p).log()).sum(1).mean()
    torch.testing.assert_close(model._batch_loss(rows, users), expected, rtol=1e-5, atol=1e-5)


def test_square_loss_uses_the_output_activation(fitted):
    model = CDAE({**TINY, "corruption": 0.0, "loss": "square", "output_act": "sigmoid"})
    model.module_ = fitted.module_
    rows = torch.zeros(2, 60)
    rows[0, :4] = 1
    users = torch.tensor([1, 2])
    out = torch.sigmoid(fitted.module_(rows, fitted.module_.user_vectors(users)))
    torch.testing.assert_close(model._batch_loss(rows, users), (out - rows).square().sum(1).mean())


def test_sampled_objective_counts_positives_and_about_ratio_negatives(fitted):
    """With a zero-width net the per-entry loss is log 2, so the loss counts the entries used."""
    model = CDAE({**TINY, "corruption": 0.0, "objective": "sampled", "negative_ratio": 3.0})
    model.module_ = fitted.module_
    saved = {k: v.clone() for k, v in fitted.module_.state_dict().items()}
    with torch.no_grad():
        for p in fitted.module_.parameters():
            p.zero_()
    try:
        rows = torch.zeros(200, 60)
        rows[:, :5] = 1  # 5 positives each: 15 negatives expected among 55
        with torch.random.fork_rng():
            torch.manual_seed(0)
            entries = model._batch_loss(rows, torch.zeros(200, dtype=torch.long)).item() / np.log(2)
        assert entries == pytest.approx(5 + 15, rel=0.05)
    finally:
        fitted.module_.load_state_dict(saved)


def test_sampled_objective_trains(world):
    model = CDAE({**TINY, "objective": "sampled"}).fit(world.split.train, valid=world.split.valid,
                                                       options=OPTIONS)
    assert max(h["ndcg@10"] for h in model.history_) > 0.5


def test_corruption_drops_inputs_only_while_training(fitted, world):
    """Scoring is deterministic (no dropout); the training loss is stochastic with q > 0."""
    history = world.split.train.user_items[:4]
    np.testing.assert_array_equal(fitted.score(history), fitted.score(history))
    rows = torch.from_numpy(history.toarray())
    users = torch.arange(4)
    assert fitted._batch_loss(rows, users).item() != fitted._batch_loss(rows, users).item()


def test_loss_decreases_and_early_stopping_restores(world):
    model = CDAE(TINY).fit(world.split.train, valid=world.split.valid, options=OPTIONS)
    assert model.loss_history_[-1] < model.loss_history_[0]
    best = max(h["ndcg@10"] for h in model.history_)
    assert [h["ndcg@10"] for h in model.history_][model.best_epoch_ - 1] == best


def test_paper_preset_builds():
    cfg = CDAEConfig.from_preset("paper")
    assert (cfg.hidden, cfg.objective, cfg.hidden_act, cfg.output_act) == (
        50, "sampled", "sigmoid", "identity")
