"""BPR-MF under the shared contract, plus training, early stopping, sampling and fold-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genrec.evaluation.protocol as protocol
from genrec.data.synthetic import planted_clusters
from genrec.models import BPR
from genrec.models.classic.bpr import sample_negatives
from genrec.models.neural import shuffled_batches
from genrec.options import RunOptions

from .contract import OPTIONS, ModelContract

TINY = {"dim": 16, "lr": 0.05, "batch_size": 256, "max_epochs": 30, "patience": 5}
SHORT = {**TINY, "max_epochs": 8}  # without early stopping, long training overfits the tiny world


class TestBPR(ModelContract):
    model_cls = BPR
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"dim": 0},
        {"lr": 0.0},
        {"batch_size": 0},
        {"reg": -1.0},
        {"max_epochs": 0},
        {"patience": 0},
        {"eval_every": 0},
        {"fold_in_reg": 0.0},
        {"n_negatives": 0},
    ]


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


def test_loss_decreases(world):
    model = BPR({**TINY, "max_epochs": 10}).fit(world.split.train, options=OPTIONS)
    losses = model.loss_history_
    assert len(losses) == 10 and model.best_epoch_ == 10
    assert losses[-1] < 0.5 * losses[0]
    assert all(np.isfinite(losses))


def test_early_stopping_restores_the_best_epoch(world, monkeypatch):
    """A scripted validation curve peaks at epoch 3: training stops after ``patience`` more
    evaluations and the weights are those seen when epoch 3 was evaluated."""
    curve = iter([0.1, 0.2, 0.5, 0.4, 0.3, 0.45, 0.2, 0.1, 0.1])
    snapshots = []

    def scripted(model, history, target, k=10):
        assert history is world.split.train and target is world.split.valid and k == 10
        snapshots.append(model.item_factors_.copy())
        return next(curve)

    monkeypatch.setattr(protocol, "validation_ndcg", scripted)
    model = BPR({**TINY, "patience": 3}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS
    )
    assert model.best_epoch_ == 3
    assert len(model.loss_history_) == 6  # epochs 4, 5, 6 brought no improvement
    assert [h["epoch"] for h in model.history_] == [1, 2, 3, 4, 5, 6]
    assert [h["ndcg@10"] for h in model.history_] == [0.1, 0.2, 0.5, 0.4, 0.3, 0.45]
    np.testing.assert_array_equal(model.item_factors_, snapshots[2])
    assert not np.array_equal(model.item_factors_, snapshots[-1])


def test_eval_every_spaces_the_evaluations(world, monkeypatch):
    calls = []
    monkeypatch.setattr(protocol, "validation_ndcg", lambda *a, **kw: calls.append(1) or 0.5)
    model = BPR({**TINY, "max_epochs": 9, "eval_every": 3, "patience": 10}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS
    )
    assert [h["epoch"] for h in model.history_] == [3, 6, 9] and len(calls) == 3
    assert model.best_epoch_ == 3  # ties do not count as improvements


def test_real_validation_reaches_the_known_answer(world):
    model = BPR(TINY).fit(world.split.train, valid=world.split.valid, options=OPTIONS)
    best = max(h["ndcg@10"] for h in model.history_)
    assert best > 0.5
    assert protocol.validation_ndcg(model, world.split.train, world.split.valid) == best


def test_negatives_are_unseen(world):
    train = world.split.train
    x = train.user_items
    users = np.repeat(np.arange(train.n_users), np.diff(x.indptr))
    keys = np.sort(users * train.n_items + x.indices)
    items, keep = sample_negatives(np.random.default_rng(0), users, train.n_items, keys)
    assert keep.all()
    assert not np.asarray(x[users, items]).any()


def test_user_who_saw_everything_gets_no_negative():
    users = np.array([0, 0, 0, 1])
    keys = np.array([0, 1, 2, 3])  # user 0 saw items 0, 1, 2 (n_items = 3); user 1 saw item 0
    items, keep = sample_negatives(np.random.default_rng(0), users, 3, keys, max_rounds=20)
    assert keep.tolist() == [False, False, False, True]
    assert items[3] in (1, 2)


def test_fold_in_scores_a_new_users_history(world):
    """A user the model never saw, with part of a cluster as history, gets that cluster's items."""
    model = BPR(SHORT).fit(world.split.train, options=OPTIONS)
    group = np.arange(world.data.n_items) % 4
    hits = []
    for g in range(4):
        members = np.flatnonzero(group == g)
        history = np.zeros((1, world.data.n_items), np.float32)
        history[0, members[: len(members) // 2]] = 1.0
        items, _ = model.recommend(history, k=5)  # users=None: fold-in
        hits.append(np.mean(group[items[0]] == g))
    assert np.mean(hits) >= 0.9


def test_fold_in_ranks_like_the_learned_vectors(world):
    model = BPR(SHORT).fit(world.split.train, options=OPTIONS)
    users = np.flatnonzero(world.answer >= 0)
    histories = world.split.history("test").user_items[users]
    folded, _ = model.recommend(histories, k=5)
    learned, _ = model.recommend(histories, users=users, k=5)
    for items in (folded, learned):
        assert (items == world.answer[users, None]).any(axis=1).mean() >= 0.9


def test_untrained_user_in_vocabulary_is_folded_in(world):
    train = world.split.train
    train = train.subset(train.user_idx != 0)  # user 0 is in the vocabulary but never trained
    model = BPR({**TINY, "max_epochs": 5}).fit(train, options=OPTIONS)
    assert not model.trained_users_[0] and model.trained_users_[1:].all()
    history = world.split.train.user_items[[0]]
    np.testing.assert_array_equal(model.score(history, users=[0]), model.score(history))


def test_default_config_is_the_ml100k_validation_choice():
    cfg = BPR().config
    assert (cfg.dim, cfg.lr, cfg.batch_size, cfg.reg, cfg.n_negatives, cfg.patience) == (
        64,
        5e-3,
        2048,
        7.5e-3,
        4,
        10,
    )


@pytest.mark.parametrize("k, reg", [(1, 0.0), (1, 0.01), (3, 0.0), (3, 0.01)])
def test_closed_form_gradients_equal_autograd(k, reg):
    """The hand-written step hands Adam exactly the gradients autograd gives for the loss."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    model = BPR(batch_size=64, n_negatives=k, reg=reg)
    user_emb = torch.randn(10, 8, dtype=torch.float64, generator=gen).requires_grad_(True)
    item_emb = torch.randn(20, 8, dtype=torch.float64, generator=gen).requires_grad_(True)
    triples = torch.cat(
        [
            torch.randint(0, 10, (1, 50), generator=gen),
            torch.randint(0, 20, (1 + k, 50), generator=gen),
        ]
    )
    p_u, q_i, q_j = user_emb[triples[0]], item_emb[triples[1]], item_emb[triples[2:].T]
    loss = -F.logsigmoid(((q_i[:, None] - q_j) * p_u[:, None]).sum(2)).mean()
    loss = loss + reg * (p_u.square().sum() + q_i.square().sum() + q_j.square().sum() / k) / 50
    expected = torch.autograd.grad(loss, [user_emb, item_emb])

    class Capture:  # DataParallel's interface in one process, keeping the gradients
        def batches(self, n_rows, batch_size, rng):
            return shuffled_batches(n_rows, batch_size, rng)

        def apply_gradients(self, count):
            self.grads = (user_emb.grad.clone(), item_emb.grad.clone())

        def mean(self, total, count):
            return float(total) / count

    capture = Capture()
    mean_loss = model._train_epoch(user_emb, item_emb, capture, triples)
    assert mean_loss == pytest.approx(float(loss.detach()), rel=1e-12)
    for got, want in zip(capture.grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_several_negatives_per_positive(world):
    model = BPR({**TINY, "n_negatives": 3})
    train = world.split.train
    x = train.user_items
    users = np.repeat(np.arange(train.n_users), np.diff(x.indptr))
    keys = np.sort(users * train.n_items + x.indices)
    triples = model._epoch_triples(
        np.random.default_rng(0), users, x.indices.astype(np.int64), train.n_items, keys
    ).numpy()
    assert triples.shape == (5, x.nnz)
    assert sorted(zip(triples[0], triples[1])) == sorted(zip(users, x.indices))
    for row in triples[2:]:
        assert not np.asarray(x[triples[0], row]).any()
    fitted = model.fit(train, valid=world.split.valid, options=OPTIONS)
    assert max(h["ndcg@10"] for h in fitted.history_) > 0.5


def test_dense_seen_mask_draws_like_sorted_keys(world):
    train = world.split.train
    x = train.user_items
    users = np.repeat(np.arange(train.n_users), np.diff(x.indptr))
    keys = np.sort(users * train.n_items + x.indices)
    mask = np.zeros(train.n_users * train.n_items, bool)
    mask[keys] = True
    a = sample_negatives(np.random.default_rng(5), users, train.n_items, keys)
    b = sample_negatives(np.random.default_rng(5), users, train.n_items, mask)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_threads_and_seed_come_from_options(world):
    torch.set_num_threads(2)
    a = BPR({**TINY, "max_epochs": 3}).fit(world.split.train, options=RunOptions(seed=3, threads=1))
    assert torch.get_num_threads() == 2  # fit ran on 1 thread and restored the caller's count
    b = BPR({**TINY, "max_epochs": 3}).fit(world.split.train, options=RunOptions(seed=3, threads=1))
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    c = BPR({**TINY, "max_epochs": 3}).fit(world.split.train, options=RunOptions(seed=4, threads=1))
    assert not np.array_equal(a.user_factors_, c.user_factors_)


def test_progress_bar_shows_loss_and_validation(world, capsys):
    options = RunOptions(seed=0, threads=1, progress=True)
    BPR({**TINY, "max_epochs": 3}).fit(world.split.train, valid=world.split.valid, options=options)
    err = capsys.readouterr().err
    assert "bpr" in err and "ndcg@10" in err
