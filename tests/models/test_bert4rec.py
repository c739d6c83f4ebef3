"""BERT4Rec under the shared contract, plus cloze masking, the inference mask and generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.data import as_history_matrix
from genrec.data.synthetic import deterministic_sequences
from genrec.models import BERT4Rec
from genrec.models.sequence.bert4rec import cloze_mask

from .contract import OPTIONS, ModelContract

TINY = {
    "dim": 16,
    "n_heads": 2,
    "n_layers": 1,
    "lr": 0.01,
    "batch_size": 32,
    "max_epochs": 60,
    "patience": 5,
    "eval_every": 2,
    "max_len": 10,
    "dropout": 0.0,
    "mask_prob": 0.3,
}


def sequences_world():
    return deterministic_sequences(n_users=120, n_items=30, length=8, seed=0)


class TestBERT4Rec(ModelContract):
    model_cls = BERT4Rec
    config = TINY
    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [
        {"dim": 0},
        {"n_layers": 0},
        {"n_heads": 3},
        {"ff_mult": 0},
        {"dropout": 1.0},
        {"mask_prob": 0.0},
        {"mask_prob": 1.0},
        {"max_len": 1},
        {"lr": 0.0},
        {"weight_decay": -1.0},
        {"batch_size": 0},
        {"max_epochs": 0},
        {"patience": 0},
        {"eval_every": 0},
    ]

    def world(self):
        return sequences_world()


@pytest.fixture(scope="module")
def world():
    return sequences_world()


@pytest.fixture(scope="module")
def fitted(world):
    return BERT4Rec(TINY).fit(world.split.train, valid=world.split.valid, options=OPTIONS)


def test_masking_rate_and_padding():
    gen = torch.Generator().manual_seed(0)
    seqs = torch.randint(1, 50, (4000, 20), generator=gen)
    seqs[:, :5] = 0  # padding is never masked
    mask = cloze_mask(seqs, 0.2, generator=gen)
    assert not mask[:, :5].any()
    assert mask[:, 5:].float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert mask.any(dim=1).all()  # every row has a target
    short = torch.tensor([[0, 0, 0, 7]])  # one item, small rate: its (last) item is masked
    assert cloze_mask(short, 0.01, generator=gen).tolist() == [[False, False, False, True]]
    assert not cloze_mask(torch.zeros(1, 4, dtype=torch.long), 0.5).any()


def test_mask_token_is_appended_at_inference(fitted):
    n_items, max_len = fitted.n_items_, fitted.config.max_len
    assert fitted.mask_token == n_items + 1
    assert fitted.net_.items.num_embeddings == n_items + 2
    long = as_history_matrix([list(range(15))], n_items)  # items 0..14 in time order
    seqs = fitted.inference_sequences(np.array([[0, 0] + list(range(1, 16))]))
    assert seqs.shape == (1, max_len)
    assert seqs[0, -1] == n_items + 1  # the mask slot
    assert seqs[0, :-1].tolist() == list(range(7, 16))  # the last max_len - 1 items, shifted
    short = fitted.inference_sequences(np.array([[0, 0, 3, 4]]))
    assert short.tolist() == [[0] * (max_len - 3) + [3, 4, n_items + 1]]
    # scoring a history reads exactly that window
    expected = fitted.net_.logits(fitted.net_(torch.from_numpy(seqs))[:, -1]).detach().numpy()
    np.testing.assert_allclose(fitted.score(long), expected, rtol=1e-5, atol=1e-5)


def test_generate_follows_the_chains(fitted, world):
    histories = world.split.history("test").user_item_order[:20]
    greedy = fitted.generate(histories, n_steps=1, temperature=0.01, seed=0)
    np.testing.assert_array_equal(greedy[:, 0], fitted.recommend(histories, k=1)[0][:, 0])
    assert (greedy[:, 0] == world.answer[:20]).mean() >= 0.75
    a = fitted.generate(histories, n_steps=2, seed=1)
    assert a.shape == (20, 2) and ((a >= 0) & (a < world.data.n_items)).all()
    np.testing.assert_array_equal(a, fitted.generate(histories, n_steps=2, seed=1))
    for row, items in zip(histories, a):  # the window (9 items) still holds the history
        assert len(set(items)) == 2 and not set(items) & set(row.indices)
    top1 = fitted.generate(histories, n_steps=3, top_k=1, seed=3)
    np.testing.assert_array_equal(top1, fitted.generate(histories, n_steps=3, top_k=1, seed=4))


def test_long_training_reaches_the_answer(fitted):
    assert fitted.best_epoch_ >= 2 and max(h["ndcg@10"] for h in fitted.history_) > 0.8


def test_paper_preset():
    cfg = BERT4Rec.Config.from_preset("paper")
    assert (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.mask_prob, cfg.max_len) == (64, 2, 2, 0.2, 200)
