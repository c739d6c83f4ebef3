"""SASRec (bce / ce / gbce) and gSASRec under the shared contract, plus causality, gBCE and
generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genrec.build import build_model
from genrec.data import as_history_matrix
from genrec.data.synthetic import deterministic_sequences
from genrec.errors import ConfigError
from genrec.models import GSASRec, SASRec
from genrec.models.neural import seeded
from genrec.models.sequence.sasrec import gbce_beta, gbce_positive_logit
from genrec.options import RunOptions

from .contract import OPTIONS, ModelContract, same_seed_fits

TINY = {
    "dim": 16,
    "max_len": 8,
    "lr": 0.01,
    "batch_size": 64,
    "dropout": 0.1,
    "max_epochs": 20,
    "patience": 4,
}
BAD = [
    {"loss": "softmax"},
    {"n_negatives": 0},
    {"gbce_t": 1.5},
    {"gbce_t": -0.1},
    {"dim": 0},
    {"n_blocks": 0},
    {"n_heads": 3},
    {"dropout": 1.0},
    {"max_len": 0},
    {"lr": 0.0},
    {"batch_size": 0},
    {"max_epochs": 0},
    {"patience": 0},
    {"eval_every": 0},
]


class SequenceContract(ModelContract):
    fit_with_valid = True
    stochastic = True
    quality_floor = 0.9
    bad_configs = BAD

    def world(self):
        return deterministic_sequences(n_users=120, n_items=30, length=8, seed=0)


class TestSASRecBCE(SequenceContract):
    model_cls = SASRec
    config = {**TINY, "loss": "bce"}


class TestSASRecCE(SequenceContract):
    model_cls = SASRec
    config = {**TINY, "loss": "ce"}


class TestSASRecGBCE(SequenceContract):
    model_cls = SASRec
    config = {**TINY, "loss": "gbce", "n_negatives": 3, "gbce_t": 0.5, "max_epochs": 30}


class TestGSASRec(SequenceContract):
    model_cls = GSASRec
    config = {**TINY, "n_negatives": 3, "max_epochs": 30}  # gBCE learns slower here


@pytest.fixture(scope="module")
def world():
    return deterministic_sequences(n_users=120, n_items=30, length=8, seed=0)


def test_same_seed_at_two_threads_same_scores(world):
    """With 2 threads LayerNorm's gradients are summed per thread: still bit-identical refits."""

    def fit(w, options):
        return SASRec({**TINY, "max_epochs": 2}).fit(
            w.split.train, valid=w.split.valid, options=options
        )

    before = torch.get_num_threads()
    try:
        first, second = same_seed_fits(fit, world, RunOptions(seed=7, threads=2))
    finally:
        torch.set_num_threads(before)
    histories = world.split.history("test").user_item_order
    np.testing.assert_array_equal(first.score(histories), second.score(histories))


@pytest.fixture(scope="module")
def fitted(world):
    return SASRec({**TINY, "loss": "ce"}).fit(
        world.split.train, valid=world.split.valid, options=OPTIONS
    )


def test_output_at_t_ignores_later_items(fitted):
    """Causal mask: changing the items after position t leaves the outputs up to t unchanged
    (and changes the later ones)."""
    rng = np.random.default_rng(0)
    seqs = torch.from_numpy(rng.integers(1, 31, (4, 8)))  # (B, L) no padding
    seqs[1, :3] = 0  # and a padded row
    changed = seqs.clone()
    changed[:, 5:] = torch.from_numpy(rng.integers(1, 31, (4, 3)))
    fitted.net_.eval()
    with torch.no_grad():
        a, b = fitted._hidden(seqs), fitted._hidden(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5], rtol=0, atol=0)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_padding_does_not_leak(fitted):
    """The items a padded row holds are what it scores on: left padding is invisible."""
    seqs = torch.tensor([[0, 0, 0, 4, 7, 9, 2, 5]])
    other = seqs.clone()
    other[0, 3] = 11  # an item, not padding: must matter
    scores = fitted._next_logits(seqs)
    assert torch.isfinite(scores).all()
    assert not torch.allclose(scores, fitted._next_logits(other))
    empty = fitted._next_logits(torch.zeros(1, 8, dtype=torch.int64))
    assert torch.isfinite(empty).all()


def test_gbce_beta_matches_hand_computation():
    alpha = 256 / (1001 - 1)
    assert gbce_beta(256, 1001, 0.75) == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))
    assert gbce_beta(256, 1001, 0.75) == pytest.approx(0.442)  # 0.75 * 0.256 - 0.75 + 1
    assert gbce_beta(4, 101, 0.0) == pytest.approx(1.0)
    assert gbce_beta(4, 101, 1.0) == pytest.approx(0.04)
    assert gbce_beta(10, 11, 0.3) == pytest.approx(1.0)  # all other items sampled: alpha = 1


def test_transformed_positive_logit_is_the_powered_probability():
    s = torch.linspace(-8, 8, 33, dtype=torch.float64)
    beta = 0.3
    z = gbce_positive_logit(s, beta)
    torch.testing.assert_close(torch.sigmoid(z), torch.sigmoid(s) ** beta)
    bce = F.binary_cross_entropy_with_logits(z, torch.ones_like(z), reduction="none")
    torch.testing.assert_close(bce, -beta * F.logsigmoid(s))


def _loss(config, world, seed=3):
    model = SASRec({**TINY, **config})
    model.n_items_ = world.data.n_items
    with seeded(0):
        model.net_ = model._build(world.data.n_items)
    from genrec.models.sequence.sequences import training_sequences

    seqs = torch.from_numpy(training_sequences(world.split.train, 8))[:16]
    model.net_.eval()  # no dropout: the negatives are the only random draws
    with seeded(seed):
        return model, seqs, model.sequence_loss(seqs)


def test_gbce_with_t_zero_is_bce(world):
    _, _, (bce, n) = _loss({"loss": "bce", "n_negatives": 3}, world)
    _, _, (gbce, m) = _loss({"loss": "gbce", "n_negatives": 3, "gbce_t": 0.0}, world)
    assert n == m > 0
    torch.testing.assert_close(bce, gbce, rtol=0, atol=0)
    _, _, (calibrated, _) = _loss({"loss": "gbce", "n_negatives": 3, "gbce_t": 1.0}, world)
    assert not torch.isclose(bce, calibrated)


def test_bce_and_gbce_losses_match_a_hand_computation(world):
    for config in ({"loss": "bce", "n_negatives": 1}, {"loss": "gbce", "n_negatives": 4}):
        model, seqs, (loss, n) = _loss(config, world)
        inputs, targets = seqs[:, :-1], seqs[:, 1:]
        mask = (inputs > 0) & (targets > 0)
        with seeded(3):  # the same negatives again
            negatives = model._negatives(seqs, mask)
        with torch.no_grad():
            hidden = model._hidden(inputs)[mask]
        emb = model.net_["item_emb"].weight[1:]
        pos = (hidden * emb[targets[mask] - 1]).sum(1)
        neg = torch.einsum("nd,nkd->nk", hidden, emb[negatives])
        k = config["n_negatives"]
        beta = 1.0 if config["loss"] == "bce" else gbce_beta(k, 30, 0.75)
        z = gbce_positive_logit(pos.double(), beta)
        terms = torch.cat([F.softplus(-z)[:, None], F.softplus(neg.double())], dim=1)
        assert n == int(mask.sum())
        expected = float(terms.sum(1).mean().detach())  # sum over 1 + k terms, mean over N
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_negatives_avoid_the_rows_items(world):
    model, seqs, _ = _loss({"loss": "bce", "n_negatives": 5}, world)
    mask = (seqs[:, :-1] > 0) & (seqs[:, 1:] > 0)
    negatives = model._negatives(seqs, mask)
    rows = torch.arange(len(seqs))[:, None].expand_as(mask)[mask]
    assert negatives.shape == (int(mask.sum()), 5)
    for r, items in zip(rows.tolist(), negatives.tolist()):
        assert not {i + 1 for i in items} & set(seqs[r].tolist())


def test_too_many_negatives_is_a_config_error(world):
    with pytest.raises(ConfigError, match="n_negatives"):
        SASRec({**TINY, "loss": "gbce", "n_negatives": 30}).fit(world.split.train, options=OPTIONS)


def test_generate_properties(fitted, world):
    histories = world.split.history("test").user_item_order[:20]
    out = fitted.generate(histories, n_steps=3, seed=1)
    assert out.shape == (20, 3) and out.dtype == np.int64
    assert ((out >= 0) & (out < world.data.n_items)).all()
    for row in range(20):  # the window (max_len 8) holds the 7 history items + 1 generated
        assert len(set(out[row])) == 3
        assert not set(out[row, :2]) & set(histories[row].indices)
    np.testing.assert_array_equal(out, fitted.generate(histories, n_steps=3, seed=1))
    assert not np.array_equal(out, fitted.generate(histories, n_steps=3, seed=2))
    greedy = fitted.generate(histories, n_steps=1, temperature=1e-3)
    top, _ = fitted.recommend(histories, k=1)
    np.testing.assert_array_equal(greedy, top)
    assert (
        fitted.generate(histories, n_steps=2, top_k=1)
        == fitted.generate(histories, n_steps=2, top_k=1, seed=5)
    ).all()
    empty = fitted.generate(as_history_matrix([[]], world.data.n_items), n_steps=2)
    assert empty.shape == (1, 2)


def test_generation_follows_the_chains(fitted, world):
    """Greedy continuation of a walk on a cycle keeps walking it (two steps ahead)."""
    users = np.flatnonzero(world.answer >= 0)[:30]
    histories = world.split.history("test").user_item_order[users]
    out = fitted.generate(histories, n_steps=1, temperature=1e-3)
    assert (out[:, 0] == world.answer[users]).mean() >= 0.9


def test_separate_output_embeddings(world, tmp_path):
    model = SASRec({**TINY, "loss": "gbce", "n_negatives": 3, "share_embeddings": False})
    model.fit(world.split.train, options=OPTIONS)
    assert model._output_items().shape == (30, 16)
    assert model._output_items() is not model.net_["item_emb"].weight
    histories = world.split.history("test").user_item_order[:5]
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(
        SASRec.load(tmp_path / "m").score(histories), model.score(histories)
    )


def test_registry_and_presets():
    assert build_model("sasrec").config.loss == "bce"
    g = build_model("gsasrec").config
    assert (g.loss, g.n_negatives, g.gbce_t) == ("gbce", 4, 0.75)
    assert build_model("gsasrec:paper").config.n_negatives == 256
    assert build_model("sasrec", {"loss": "ce"}).config.loss == "ce"
    paper = build_model("sasrec:paper").config
    assert (paper.dim, paper.max_len, paper.dropout, paper.n_negatives) == (50, 200, 0.2, 1)
    assert build_model("gsasrec:paper").config.max_len == 200
    assert SASRec.sequential and GSASRec.sequential
