"""The auto-encoders' sampled multinomial likelihood for large catalogues.

Above ``sampled_above`` items Mult-VAE, Mult-DAE and RecVAE train from sparse batches: the first layer
reads only a row's non-zeros and the softmax runs over the batch's items plus ``n_sampled``
shared items drawn from the popularity proposal, with logQ correction. Checked here: the
sampled loss is the full loss when the sample is the whole catalogue under a uniform proposal;
the sparse first layer is the dense one (RecVAE's whole encoder too); at or below the threshold a fit is exactly the dense
one; the sampled fit never builds a (batch, items) tensor; and a sampled fit still finds the
planted answer (the shared contract, on its world).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from genrec.data.synthetic import planted_clusters
from genrec.models import MultDAE, MultVAE, RecVAE, neural
from genrec.models.interactions import multdae, recvae
from genrec.models.interactions.multdae import (
    multinomial_nll,
    sampled_multinomial_nll,
    sparse_input_layer,
)
from genrec.models.neural import dense_rows, log_proposal, sparse_rows
from genrec.options import RunOptions

from .contract import OPTIONS, ModelContract
from .test_multdae import TINY as DAE_TINY
from .test_multvae import TINY as VAE_TINY
from .test_recvae import TINY as REC_TINY

SAMPLED = {"sampled_above": 0, "n_sampled": 20}  # always sampled; 20 of the world's 60 items


class SampledContract(ModelContract):
    """The model contract with the softmax always sampled."""

    quality_floor = 0.9
    stochastic = True
    fit_with_valid = True
    bad_configs = [{"n_sampled": 0}, {"n_sampled": -5}, {"sampled_above": -1}]


class TestSampledMultVAE(SampledContract):
    model_cls = MultVAE
    config = {**VAE_TINY, **SAMPLED}


class TestSampledMultDAE(SampledContract):
    model_cls = MultDAE
    config = {**DAE_TINY, **SAMPLED}


class TestSampledRecVAE(SampledContract):
    model_cls = RecVAE
    config = {**REC_TINY, **SAMPLED}


AUTOENCODERS = [(MultVAE, VAE_TINY), (MultDAE, DAE_TINY), (RecVAE, REC_TINY)]
ITEM_LAYERS = {  # the item-sized layers: (the encoder's first, the decoder's last)
    MultVAE: lambda net: (net["encoder"][0], net["decoder"][-1]),
    MultDAE: lambda net: (net[0], net[-1]),
    RecVAE: lambda net: (net["encoder"]["blocks"][0], net["decoder"]),
}


@pytest.fixture(scope="module")
def world():
    return planted_clusters(noise=2)


def random_rows(n_rows=7, n_items=13, seed=0):
    """(n_rows, n_items) CSR with 1-5 entries a row, values in 1..3 (not only binary)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n_rows, n_items), np.float32)
    for r in range(n_rows):
        items = rng.choice(n_items, rng.integers(1, 6), replace=False)
        rows[r, items] = rng.integers(1, 4, len(items))
    return sp.csr_matrix(rows)


def test_sampled_nll_is_the_full_nll_when_the_sample_is_the_catalogue():
    """Uniform proposal (equal counts), every item drawn once: every logit shifts by log I alike
    and the masked accidental hit is the target itself, so loss and gradients are the full ones."""
    x = random_rows()
    n_rows, n_items = x.shape
    torch.manual_seed(0)
    out, hidden = torch.nn.Linear(5, n_items), torch.randn(n_rows, 5, requires_grad=True)
    full = multinomial_nll(out(hidden), dense_rows(x))
    full_grads = torch.autograd.grad(full, [hidden, out.weight, out.bias])
    log_q = log_proposal(np.full(n_items, 7))
    drawn = torch.arange(n_items)
    sampled = sampled_multinomial_nll(hidden, out, sparse_rows(x, np.arange(n_rows)), log_q, drawn)
    sampled_grads = torch.autograd.grad(sampled, [hidden, out.weight, out.bias])
    torch.testing.assert_close(sampled, full)
    for a, b in zip(sampled_grads, full_grads):
        torch.testing.assert_close(a, b)


def test_sampled_nll_matches_a_hand_computation_with_popularity_and_repeats():
    x = random_rows(n_rows=3, n_items=6, seed=1)
    torch.manual_seed(1)
    out, hidden = torch.nn.Linear(4, 6), torch.randn(3, 4)
    log_q = log_proposal(np.array([5, 0, 1, 9, 2, 3]))
    drawn = torch.tensor([3, 3, 0, 5, 2, 3])  # repeats and accidental hits
    loss = sampled_multinomial_nll(hidden, out, sparse_rows(x, np.arange(3)), log_q, drawn)
    logits = out(hidden).detach()  # (3, 6)
    expected = 0.0
    for u, i in zip(*x.nonzero()):
        keep = drawn[drawn != i]
        items = torch.cat([torch.tensor([i]), keep])
        row = logits[u, items] - log_q[items]
        expected += x[u, i] * -F.log_softmax(row, dim=0)[0]
    torch.testing.assert_close(loss, torch.as_tensor(expected / 3, dtype=torch.float32))


def test_sparse_input_layer_is_the_dense_one():
    x = random_rows(seed=2)
    torch.manual_seed(2)
    linear = torch.nn.Linear(x.shape[1], 4)
    dense = linear(multdae.normalised_dropout(dense_rows(x), 0.5, training=False))
    sparse = sparse_input_layer(linear, sparse_rows(x, np.arange(x.shape[0])), 0.5, training=False)
    torch.testing.assert_close(sparse, dense)
    empty = sparse_rows(sp.csr_matrix((2, x.shape[1]), dtype=np.float32), np.arange(2))
    torch.testing.assert_close(
        sparse_input_layer(linear, empty, 0.5, training=True), linear.bias.expand(2, 4)
    )


def test_recvae_sparse_encoder_beta_and_old_posterior_are_the_dense_ones():
    """The whole dense-block encoder, the row counts (beta_u = gamma |x_u|) and the old
    encoder's posterior read from sparse rows equal those from dense rows."""
    x = random_rows(n_rows=9, n_items=13, seed=3)
    binary = (x > 0).astype(np.float32)
    model = RecVAE(hidden_dim=8, latent_dim=3, n_layers=3)
    torch.manual_seed(3)
    model.net_ = model._build(x.shape[1])
    rows = np.arange(x.shape[0])
    with torch.no_grad():
        dense = recvae.encode(model.net_["encoder"], dense_rows(x), 0.5, training=False)
        sparse = recvae.encode(model.net_["encoder"], sparse_rows(x, rows), 0.5, training=False)
    for a, b in zip(sparse, dense):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(recvae.row_sums(sparse_rows(x, rows)), dense_rows(x).sum(1))
    counts = recvae.row_sums(sparse_rows(binary, rows))
    np.testing.assert_array_equal(counts.numpy(), binary.getnnz(axis=1))
    for a, b in zip(model._old_posterior(x, sparse=True), model._old_posterior(x)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("model_cls, tiny", AUTOENCODERS)
def test_at_or_below_the_threshold_the_fit_is_the_dense_one(world, model_cls, tiny):
    train = world.split.train
    history = train.user_items[:20]
    config = {**tiny, "max_epochs": 3}
    dense = model_cls(config).fit(train, options=OPTIONS).score(history)
    at = model_cls({**config, "sampled_above": train.n_items}).fit(train, options=OPTIONS)
    below = model_cls({**config, "sampled_above": train.n_items - 1}).fit(train, options=OPTIONS)
    np.testing.assert_array_equal(at.score(history), dense)  # n_items is not above: exact
    assert not np.allclose(below.score(history), dense)  # one item fewer: sampled


@pytest.mark.parametrize("model_cls, tiny", AUTOENCODERS)
def test_a_sampled_fit_builds_no_batch_by_items_tensor(world, model_cls, tiny, monkeypatch):
    """Training never densifies a batch and never runs an item-sized layer on all items (the
    sparse first layer reads the weight's columns; the sampled softmax its rows)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a dense (batch, items) batch was built in a sampled fit")

    monkeypatch.setattr(neural, "dense_rows", refuse)  # what batch_rows builds dense batches with
    monkeypatch.setattr(multdae, "multinomial_nll", refuse)  # the full softmax of likelihood
    calls = []
    build = model_cls._build

    def build_with_hook(self, n_items):
        net = build(self, n_items)
        for layer in ITEM_LAYERS[model_cls](net):
            layer.register_forward_hook(lambda *a: calls.append(1))
        return net

    monkeypatch.setattr(model_cls, "_build", build_with_hook)
    model = model_cls({**tiny, **SAMPLED, "max_epochs": 2}).fit(world.split.train, options=OPTIONS)
    assert calls == [] and len(model.loss_history_) == 2
    assert np.isfinite(model.loss_history_).all()


@pytest.mark.parametrize("model_cls, tiny", AUTOENCODERS)
def test_a_sampled_fit_runs_under_bfloat16_autocast(world, model_cls, tiny):
    """The sparse first layer stays float32 inside autocast; the rest follows it."""
    options = RunOptions(seed=0, threads=1, precision="bfloat16")
    model = model_cls({**tiny, **SAMPLED, "max_epochs": 2}).fit(world.split.train, options=options)
    assert np.isfinite(model.loss_history_).all()
    assert np.isfinite(model.score(world.split.train.user_items[:4])).all()
