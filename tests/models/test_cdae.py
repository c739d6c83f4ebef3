"""CDAE under the shared contract, plus its user node, corruption and the two objectives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data.synthetic import planted_clusters
from genrec.evaluation.protocol import validation_ndcg
from genrec.models import CDAE
from genrec.models.interactions.cdae import CDAEConfig

from .contract import OPTIONS, ModelContract

TINY = {"hidden": 16, "lr": 0.02, "batch_size": 32, "max_epochs": 40, "patience": 5}


class TestCDAE(ModelContract):
    model_cls = CDAE
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"hidden": 0},
        {"corruption": 1.0},
        {"corruption": -0.1},
        {"hidden_act": "softmax"},
        {"output_act": "gelu"},
        {"loss": "hinge"},
        {"objective": "pairwise"},
        {"negative_ratio": 0.0},
        {"lr": 0.0},
        {"reg": -1.0},
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
    return CDAE(TINY).fit(world.split.train, valid=world.split.valid, options=OPTIONS)


def test_score_is_the_papers_forward_pass(fitted, world):
    """Scores = W' sigmoid(W^T y + V_u + b) + b' for a trained user, V_u = 0 for users=None."""
    net = fitted.module_
    history = world.split.train.user_items[[3]]
    y = torch.from_numpy(history.toarray())
    with torch.no_grad():
        pre = y @ net.encoder.weight.T + net.encoder.bias  # (1, H)
        with_user = torch.sigmoid(pre + net.user_vectors.weight[3]) @ net.decoder.weight.T
        with_user = (with_user + net.decoder.bias)[0].numpy()
        without = (torch.sigmoid(pre) @ net.decoder.weight.T + net.decoder.bias)[0].numpy()
    np.testing.assert_allclose(fitted.score(history, users=[3])[0], with_user, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fitted.score(history)[0], without, rtol=1e-5, atol=1e-5)


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
    model = CDAE({**TINY, "objective": "sampled"}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS
    )
    assert max(h["ndcg@10"] for h in model.history_) > 0.5


def test_corruption_drops_inputs_only_while_training(fitted, world):
    """Scoring is deterministic (no dropout); the training loss is stochastic with q > 0."""
    history = world.split.train.user_items[:4]
    np.testing.assert_array_equal(fitted.score(history), fitted.score(history))
    rows = torch.from_numpy(history.toarray())
    users = torch.arange(4)
    assert fitted._batch_loss(rows, users).item() != fitted._batch_loss(rows, users).item()


def test_loss_decreases_and_early_stopping_restores(fitted, world):
    """The restored weights are the best epoch's: they give the best validation NDCG@10."""
    assert fitted.loss_history_[-1] < fitted.loss_history_[0]
    best = max(h["ndcg@10"] for h in fitted.history_)
    assert [h["ndcg@10"] for h in fitted.history_][fitted.best_epoch_ - 1] == best
    assert fitted.best_epoch_ < fitted.epochs_run_  # it did stop after a worse epoch
    restored = validation_ndcg(fitted, world.split.train, world.split.valid, k=10)
    assert restored == pytest.approx(best)


def test_penalty_is_the_papers_on_the_batch(fitted):
    """reg/2 (mean |V_u|^2 over the batch + |W|^2 + |W'|^2 + |b|^2 + |b'|^2 over n users)."""
    model = CDAE({**TINY, "reg": 0.3})
    model.module_ = net = fitted.module_
    users = torch.tensor([2, 9, 4])
    shared = sum(
        float(p.detach().square().sum())
        for p in (net.encoder.weight, net.encoder.bias, net.decoder.weight, net.decoder.bias)
    )
    v = net.user_vectors.weight.detach()[users].square().sum(1).mean().item()
    assert model._penalty(users, 100).item() == pytest.approx(0.15 * (v + shared / 100), rel=1e-5)


def test_reg_leaves_absent_users_alone_without_momentum(world):
    """One SGD-like first step: a penalised fit touches only the batch's user vectors. (Adam's
    first step moves exactly the rows with a non-zero gradient.)"""
    train = world.split.train
    model = CDAE({**TINY, "reg": 1.0, "batch_size": 8, "max_epochs": 1})
    calls = []
    original = torch.optim.Adam.step

    def one_step(self, *args, **kwargs):  # record the user vectors around the first step only
        if not calls:
            before = model.module_.user_vectors.weight.detach().clone()
            out = original(self, *args, **kwargs)
            calls.append(before != model.module_.user_vectors.weight.detach())
            return out
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", one_step)
        model.fit(train, options=OPTIONS)
    moved = calls[0].any(1).numpy()
    assert moved.sum() == 8  # the batch's users only, not every row by weight decay


def test_paper_preset_builds():
    assert CDAEConfig.presets["paper"] == {
        "hidden": 50,
        "corruption": 0.2,
        "hidden_act": "sigmoid",
        "output_act": "identity",
        "loss": "logistic",
        "objective": "sampled",
        "negative_ratio": 5.0,
    }
    cfg = CDAEConfig.from_preset("paper")
    assert (cfg.hidden, cfg.objective, cfg.negative_ratio) == (50, "sampled", 5.0)
