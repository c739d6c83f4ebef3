"""The shared neural plumbing: early stopping, row batches, module state, profile sampling."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import genrec.evaluation.protocol as protocol
from genrec.data.synthetic import planted_clusters
from genrec.errors import ArtifactError, ConfigError, DataError
from genrec.models import EASE
from genrec.models.neural import (
    copy_state,
    dense_rows,
    draw_profiles,
    fit_epochs,
    load_module_state,
    module_state,
    seeded,
    shuffled_batches,
    with_synthetic_users,
)
from genrec.options import RunOptions


class _Counter:
    name = "counter"


def _fit(curve, losses=None, *, patience=3, max_epochs=20, eval_every=1, valid=True, initial=None):
    """Run fit_epochs with a scripted validation curve; weights are the epoch number."""
    world = planted_clusters()
    model, state = _Counter(), {"w": 0}
    scores = iter(curve)
    losses = losses or [1.0] * max_epochs

    def run_epoch(epoch):
        state["w"] = epoch
        return losses[epoch - 1]

    def restore(w):
        state["w"] = w

    original = protocol.validation_ndcg
    protocol.validation_ndcg = lambda *a, **k: next(scores)
    try:
        fit_epochs(
            model,
            world.split.train,
            world.split.valid if valid else None,
            RunOptions(threads=1),
            run_epoch=run_epoch,
            snapshot=lambda: state["w"],
            restore=restore,
            max_epochs=max_epochs,
            patience=patience,
            eval_every=eval_every,
            initial=initial,
        )
    finally:
        protocol.validation_ndcg = original
    return model, state["w"]


def test_early_stopping_restores_best_epoch():
    model, weights = _fit([0.1, 0.3, 0.2, 0.25, 0.29, 0.1])
    assert model.best_epoch_ == 2 and weights == 2
    assert model.epochs_run_ == 5 and len(model.loss_history_) == 5
    assert [h["epoch"] for h in model.history_] == [1, 2, 3, 4, 5]


def test_eval_every_and_no_validation():
    model, weights = _fit([0.1, 0.5, 0.4, 0.3], eval_every=2, patience=2, max_epochs=20)
    assert [h["epoch"] for h in model.history_] == [2, 4, 6, 8]
    assert model.best_epoch_ == 4 and weights == 4 and model.epochs_run_ == 8
    model, weights = _fit([], valid=False, max_epochs=6)
    assert model.best_epoch_ == 6 == model.epochs_run_ and weights == 6 and model.history_ == []


def test_initial_point_kept_when_no_epoch_beats_it():
    model, weights = _fit([0.1, 0.3, 0.2, 0.25], initial=(0.5, -1))
    assert model.best_epoch_ == 0 and weights == -1 and model.epochs_run_ == 3
    model, weights = _fit([0.1, 0.6, 0.2, 0.25, 0.3], initial=(0.5, -1))
    assert model.best_epoch_ == 2 and weights == 2


def test_non_finite_loss_is_a_clear_error():
    with pytest.raises(ConfigError, match="learning rate"):
        _fit([0.1] * 5, losses=[1.0, float("nan")] + [1.0] * 18)


def test_batches_cover_all_rows_once():
    rng = np.random.default_rng(0)
    parts = list(shuffled_batches(10, 4, rng))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(np.concatenate(parts)) == list(range(10))
    assert [list(p) for p in shuffled_batches(5, 2, None)] == [[0, 1], [2, 3], [4]]
    matrix = sp.csr_matrix(np.array([[0, 1], [2, 0], [0, 0]], np.float32))
    np.testing.assert_array_equal(dense_rows(matrix, np.array([2, 0])).numpy(), [[0, 0], [0, 1]])


def test_seeded_is_deterministic_and_restores_global_state():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    with seeded(5):
        a = torch.rand(3)
    after = torch.rand(1)
    with seeded(5):
        b = torch.rand(3)
    assert torch.equal(a, b) and torch.equal(before, after)


def test_module_state_round_trip_and_errors():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    state = module_state(net, "enc.")
    other = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    load_module_state(other, state, "enc.")
    x = torch.randn(4, 3)
    assert torch.equal(net(x), other(x))
    snap = copy_state(net)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert not torch.equal(snap["0.weight"], net[0].weight)
    with pytest.raises(ArtifactError, match="lack"):
        load_module_state(other, {}, "enc.")
    bad = {**state, "enc.0.weight": np.zeros((5, 5), np.float32)}
    with pytest.raises(ArtifactError, match="shape"):
        load_module_state(other, bad, "enc.")


def test_draw_profiles_lengths_distinct_and_proportional():
    rng = np.random.default_rng(0)
    probs = np.tile([0.6, 0.3, 0.1, 0.0, 0.0], (4000, 1))
    profiles = draw_profiles(probs, np.ones(4000, int), rng)
    freq = np.asarray(profiles.sum(axis=0)).ravel() / 4000
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1, 0, 0], atol=0.03)
    lengths = rng.integers(0, 6, 50)
    many = draw_profiles(rng.random((50, 5)), lengths, rng)
    np.testing.assert_array_equal(np.diff(many.indptr), lengths)  # distinct items, exact lengths
    assert many.max() == 1
    same = draw_profiles(probs[:3], np.array([2, 2, 2]), np.random.default_rng(1))
    again = draw_profiles(probs[:3], np.array([2, 2, 2]), np.random.default_rng(1))
    assert (same != again).nnz == 0
    with pytest.raises(ConfigError, match="lengths"):
        draw_profiles(probs[:2], np.array([1, 6]), rng)
    with pytest.raises(DataError, match="NaN"):
        draw_profiles(np.array([[0.5, np.nan]]), np.array([1]), rng)


def test_zero_weight_fill_is_random():
    probs = np.zeros((2000, 30))
    probs[:, 0] = 1.0
    profiles = draw_profiles(probs, np.full(2000, 3), np.random.default_rng(0))
    counts = np.asarray(profiles.sum(axis=0)).ravel()
    assert counts[0] == 2000 and (counts[1:] > 50).all()  # the other 29 items share the fill


def test_synthetic_users_are_appended():
    world = planted_clusters()
    train = world.split.train
    profiles = draw_profiles(
        np.ones((3, train.n_items)), np.array([2, 3, 4]), np.random.default_rng(0)
    )
    augmented = with_synthetic_users(train, profiles)
    assert augmented.n_users == train.n_users + 3 and augmented.items is train.items
    np.testing.assert_array_equal(augmented.users.ids[: train.n_users], train.users.ids)
    assert len(augmented) == len(train) + 9
    assert (augmented.user_items[: train.n_users] != train.user_items).nnz == 0
    EASE(reg=10.0).fit(augmented)  # a model trains on it
    with pytest.raises(ConfigError, match="item columns"):
        with_synthetic_users(train, sp.csr_matrix((1, train.n_items + 1)))
