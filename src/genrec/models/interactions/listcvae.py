"""List-CVAE: a conditional VAE that generates whole slates of k items at once.

Method: Jiang, Gowal, Qian, Mann & Rezende, "Beyond Greedy Ranking: Slate Optimization via
List-CVAE", ICLR 2019. A slate s = (s_1..s_k) is shown to a user who responds with
r = (r_1..r_k) (1 = clicked). The model learns P(s | r, c) through a latent z:

* encoder Q(z | s, r, c) = N(mu, sigma^2): an MLP over the concatenated k item embeddings
  (Phi[s_1] .. Phi[s_k]), the responses r and the user condition c;
* learned conditional prior P(z | r, c) = N(mu_0, sigma_0^2): an MLP over (r, c);
* decoder P(s | z, r, c): an MLP maps (z, r, c) to k vectors x_1..x_k (one per slot); slot j's
  distribution over items is ``softmax(x_j . Phi^T + b)`` (a k-head softmax tied to the item
  embedding table Phi);
* loss: the negative ELBO, ``sum_j CE(slot j, s_j) + beta * KL(Q || P)``, with beta ramped
  linearly from 0 over the first ``anneal_epochs`` epochs (KL annealing).

At generation time the condition asks for the ideal response r* = 1^k ("every slot clicked"),
z is drawn from the prior P(z | r*, c), and each slot takes its most likely item, slot by slot,
among the items that are neither in the user's history nor already in the slate
(:meth:`ListCVAE.generate_slates`).

The user condition c here is an encoding of the user's history: the binary history row,
L2-normalised, with input dropout ``cond_dropout`` while training, through a linear layer and
tanh (a learned encoding of the row, as in Mult-DAE's first layer).

Training slates (no simulator). The paper trains on slates logged from a simulator (or real
slates with clicks); ML-style data has no slates, so each epoch builds ``slates_per_user`` random
slates per training user from the interactions, all in tensors:

* every slot is "clicked" with probability ``click_rate``; a clicked slot holds a distinct random
  train item of the user (r_j = 1), the other slots hold distinct random items the user never
  interacted with, drawn uniformly (r_j = 0); a user with too few train items gets unclicked
  items in the remaining slots, so slates always have k distinct items;
* the condition is the user's train row *without the slate's clicked items*, so the model learns
  to put held-out liked items on a slate given the rest of the history (as a denoising
  auto-encoder does), which is what it is asked at inference, where history items are excluded;
* each slot's softmax runs over the items outside the condition's history: the same items that
  generation may choose from.

Per-item scores (the Recommender contract). ``score`` gives, for every item, the largest
probability any slot assigns it, ``max_j softmax_j(item)``, under r = 1^k and z = the prior mean
(deterministic; no sampling at scoring). History items get 0. This is the "greedy ranking of
List-CVAE's own per-item scores" that the slate benchmark compares the generated slates with.

Deviations from the paper:
    * the training slates are built from interactions as above instead of logged from a
      simulator, and the condition adds the user's history to the responses (the paper
      conditions on r only; its user-free simulator needs none);
    * the item embeddings Phi are learned jointly (the paper uses pre-trained embeddings, kept
      fixed) and the k-head softmax is over all items, not negatively down-sampled (the catalogs
      here are small enough); an item bias is added to the slot logits;
    * generation forbids repeats and history items (the paper's argmax per slot may repeat);
    * early stopping on validation NDCG@10 of the per-item scores, restoring the best epoch;
    * users with no train item, or with fewer than k items they never interacted with (no
      room for unclicked slots), get no training slates; every history can still be scored.

Example:
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> model = ListCVAE(slate_size=3, embed_dim=8, hidden_dim=32, max_epochs=3)
    >>> model = model.fit(world.split.train)
    >>> model.generate_slates(world.split.train.user_items[:2]).shape
    (2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError
from genrec.models.base import ModelConfig, Recommender
from genrec.models.neural import (
    DataParallel,
    MixedPrecision,
    dense_rows,
    fit_epochs,
    load_module_state,
    module_device,
    module_state,
    seeded,
    to_numpy,
    torch_device,
)


@dataclass(frozen=True)
class ListCVAEConfig(ModelConfig):
    """Hyper-parameters of :class:`ListCVAE`.

    Defaults: tuned on ML-100K validation NDCG@10 of the per-item scores (holdout 0.8/0.1/0.1,
    split seed 2020, training seed 42, one run per setting): beta 1.0 (0.2: 0.188, overfits;
    2.0: 0.250), lr 1e-2 (3e-3: 0.249 but still rising at 30 epochs), click_rate 0.8 (0.5:
    0.236; 1.0, i.e. only all-clicked slates: 0.240), embed_dim 64 (32: 0.249), cond_dim 128
    and hidden_dim 256 (256/512: 0.246), cond_dropout 0.5 (0.3: 0.246), 4 slates per user and
    epoch; the chosen setting reaches 0.251. Patience 5 keeps the fit near a minute.
    Preset ``"paper"``: the network sizes and learning rate of the paper's experiments as
    recalled from Jiang et al. 2019, section 4 (latent size 16, hidden layers of 512, item
    embeddings of 16, Adam with lr 1e-3); they could not be checked against the text here, so
    treat them as approximate. The slate construction has no paper counterpart.
    """

    slate_size: int = 10  # k, items per slate (generate_slates may ask for fewer)
    embed_dim: int = 64  # size of the item embeddings Phi (slot vectors live in the same space)
    cond_dim: int = 128  # size of the history encoding c
    hidden_dim: int = 256  # width of the hidden layer of the encoder, prior and decoder MLPs
    latent_dim: int = 16  # size of z
    cond_dropout: float = 0.5  # dropout on the normalised history row while training
    slates_per_user: int = 4  # random training slates per training user per epoch
    click_rate: float = 0.8  # probability that a training slot holds a clicked (train) item
    beta: float = 1.0  # weight of the KL term once annealed
    anneal_epochs: int = 10  # epochs over which beta ramps up linearly from 0 (0: no annealing)
    lr: float = 1e-2  # Adam learning rate
    weight_decay: float = 0.0  # Adam's L2 weight decay
    batch_size: int = 256  # slates per Adam step
    max_epochs: int = 100  # epochs at most (one epoch = slates_per_user slates per user)
    patience: int = 5  # evaluations without a better valid NDCG@10 before stopping
    eval_every: int = 1  # epochs between validation evaluations (only when valid is given)

    presets = {"paper": {"embed_dim": 16, "latent_dim": 16, "hidden_dim": 512, "lr": 1e-3}}

    def __post_init__(self):
        self.check_positive_ints(
            "slate_size",
            "embed_dim",
            "cond_dim",
            "hidden_dim",
            "latent_dim",
            "slates_per_user",
            "batch_size",
            "max_epochs",
            "patience",
            "eval_every",
        )
        self.check(
            isinstance(self.anneal_epochs, int) and self.anneal_epochs >= 0,
            "anneal_epochs",
            "a non-negative integer",
        )
        self.check(0 <= self.cond_dropout < 1, "cond_dropout", "a probability in [0, 1)")
        self.check(0 < self.click_rate <= 1, "click_rate", "a probability in (0, 1]")
        self.check(self.beta >= 0, "beta", "a non-negative number")
        self.check(self.lr > 0, "lr", "a positive number")
        self.check(self.weight_decay >= 0, "weight_decay", "a non-negative number")


def _build_net(cfg: ListCVAEConfig, n_items: int):
    """The List-CVAE networks as one ``torch.nn.Module`` (see the module docstring)."""
    import torch
    from torch import nn

    k, d, h = cfg.slate_size, cfg.embed_dim, cfg.hidden_dim

    def mlp(n_in: int, n_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(n_in, h), nn.Tanh(), nn.Linear(h, n_out))

    net = nn.Module()
    net.item_emb = nn.Embedding(n_items, d)  # Phi (I, d)
    nn.init.normal_(net.item_emb.weight, std=d**-0.5)
    net.item_bias = nn.Parameter(torch.zeros(n_items))  # (I,)
    net.cond = nn.Linear(n_items, cfg.cond_dim)  # history row -> c
    net.encoder = mlp(k * d + k + cfg.cond_dim, 2 * cfg.latent_dim)  # (s, r, c) -> mu, logvar
    net.prior = mlp(k + cfg.cond_dim, 2 * cfg.latent_dim)  # (r, c) -> mu_0, logvar_0
    net.decoder = mlp(cfg.latent_dim + k + cfg.cond_dim, k * d)  # (z, r, c) -> x_1..x_k
    return net


def _condition(net, history, dropout: float, training: bool):
    """(B, cond_dim) c = tanh(W dropout(normalise(history)) + b) from (B, I) binary rows."""
    import torch
    import torch.nn.functional as F

    x = F.normalize(history, dim=1)
    if training and dropout > 0:  # inverted dropout; rand() is much faster than bernoulli_ on CPU
        x = x * (torch.rand_like(x) >= dropout) / (1.0 - dropout)
    return torch.tanh(net.cond(x))


def _slot_logits(net, z, responses, cond, blocked):
    """(B, k, I) slot logits ``x_j . Phi^T + b``; items in ``blocked`` (B, I) bool get -inf."""
    k = responses.shape[1]
    slots = net.decoder(_cat(z, responses, cond)).view(len(z), k, -1)  # (B, k, d)
    logits = slots @ net.item_emb.weight.T + net.item_bias  # (B, k, I)
    return logits.masked_fill(blocked[:, None, :], float("-inf"))


def _cat(*parts):
    import torch

    return torch.cat(parts, dim=1)


def _gaussian(params):
    """Split (B, 2m) network output into mean and log-variance (clamped for stability)."""
    mu, logvar = params.chunk(2, dim=1)
    return mu, logvar.clamp(-10.0, 10.0)


def build_training_slates(history, slate_size: int, click_rate: float, *, gen=None):
    """Random slates for a batch of users' train rows (see "Training slates" above).

    Args:
        history: (B, I) float 0/1 tensor of the users' train items.
        slate_size: k; at most the number of items each user has not interacted with (the
            unclicked slots need that many).
        click_rate: probability that a slot holds a clicked item.
        gen: optional ``torch.Generator`` on ``history``'s device (default: torch's global
            RNG); the draws are made on that device.

    Returns:
        ``(slates (B, k) long, responses (B, k) float 0/1, condition (B, I) float)``: the
        condition is ``history`` without the slate's clicked items. Items within a slate are
        distinct; clicked slots hold train items, unclicked slots never do.
    """
    import torch

    n_rows, k = history.shape[0], slate_size
    seen = history > 0
    # Distinct random items per row: top-k of uniform keys restricted to the allowed items.
    device = history.device
    keys = torch.rand(history.shape, generator=gen, device=device)  # (B, I)
    pos_keys, pos = keys.masked_fill(~seen, -1.0).topk(k, dim=1)  # (B, k) train items
    neg = keys.masked_fill(seen, -1.0).topk(k, dim=1).indices  # (B, k) never-seen items
    clicked = (torch.rand((n_rows, k), generator=gen, device=device) < click_rate) & (pos_keys >= 0)
    slates = torch.where(clicked, pos, neg)  # (B, k); pos and neg never overlap
    condition = history.clone()
    rows = torch.arange(n_rows, device=device)[:, None].expand(-1, k)  # (B, k)
    condition[rows[clicked], slates[clicked]] = 0.0
    return slates, clicked.float(), condition


class ListCVAE(Recommender):
    """List-CVAE in PyTorch.

    Learned attributes: ``net_`` (the encoder, prior, decoder, condition encoder and item
    embeddings), ``loss_history_``, ``history_``, ``best_epoch_``, ``epochs_run_``.
    """

    name = "listcvae"
    Config = ListCVAEConfig

    # ---- training ----------------------------------------------------------------------------
    def _fit(self, train, valid, options):
        import torch

        cfg = self.config
        if cfg.slate_size > train.n_items - 1:
            raise ConfigError(
                f"ListCVAEConfig.slate_size = {cfg.slate_size} needs more items; "
                f"the data has {train.n_items}: use slate_size < n_items"
            )
        user_items = train.user_items
        counts = np.diff(user_items.indptr)
        # users with a train item and at least k items they never saw (for unclicked slots)
        users = np.flatnonzero((counts > 0) & (train.n_items - counts >= cfg.slate_size))
        if len(users) == 0:
            raise ConfigError(
                f"ListCVAEConfig.slate_size = {cfg.slate_size} leaves no user with "
                f"that many unseen items to build training slates; lower it"
            )
        rows = np.repeat(users, cfg.slates_per_user)  # (N,) one entry per training slate
        rng = np.random.default_rng(options.seed)
        steps_per_epoch = -(-len(rows) // cfg.batch_size)
        device = torch_device(options)
        amp = MixedPrecision(device, precision=options.precision)
        with seeded(options.seed):
            self.net_ = net = _build_net(cfg, train.n_items).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            dp = DataParallel(net, opt, seed=options.seed, amp=amp)

            def run_epoch(epoch: int) -> float:
                net.train()
                total, count = torch.zeros((), dtype=torch.float64, device=device), 0
                # the step count restarts from the epoch on every process (a process whose share
                # of an epoch's last batch is empty skips that step's ramp)
                step = (epoch - 1) * steps_per_epoch
                for batch in dp.batches(len(rows), cfg.batch_size, rng):
                    ramp = (
                        min(1.0, step / (cfg.anneal_epochs * steps_per_epoch))
                        if cfg.anneal_epochs
                        else 1.0
                    )
                    history = dense_rows(user_items, rows[batch], device=device)  # (B, I)
                    with amp.autocast():
                        loss = self._loss(history, cfg.beta * ramp)
                    dp.step(loss, len(batch))
                    step += 1
                    total, count = total + loss.detach() * len(batch), count + len(batch)
                return dp.mean(total, count)  # read once per epoch

            fit_epochs(
                self,
                train,
                valid,
                options,
                run_epoch=run_epoch,
                module=net,
            )
        net.eval()

    def _loss(self, history, beta: float):
        """Mean negative ELBO of random slates built from ``history`` (B, I); see the docstring."""
        import torch
        import torch.nn.functional as F

        cfg, net = self.config, self.net_
        slates, responses, condition = build_training_slates(
            history, cfg.slate_size, cfg.click_rate
        )
        cond = _condition(net, condition, cfg.cond_dropout, training=True)  # (B, C)
        embedded = net.item_emb(slates).flatten(1)  # (B, k * d)
        mu, logvar = _gaussian(net.encoder(_cat(embedded, responses, cond)))  # (B, m) each
        mu0, logvar0 = _gaussian(net.prior(_cat(responses, cond)))
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # (B, m) reparameterised
        logits = _slot_logits(net, z, responses, cond, condition > 0)  # (B, k, I)
        nll = F.cross_entropy(logits.flatten(0, 1), slates.flatten(), reduction="sum")
        kl = 0.5 * (logvar0 - logvar + ((logvar.exp() + (mu - mu0) ** 2) / logvar0.exp()) - 1)
        return (nll + beta * kl.sum()) / len(history)

    # ---- scoring and generation --------------------------------------------------------------
    def _ideal_logits(self, histories, *, sample_seed: int | None):
        """(B, k, I) slot logits for r = 1^k, z = prior mean (or a seeded prior sample);
        history items are -inf."""
        import torch

        net, k, device = self.net_, self.config.slate_size, module_device(self.net_)
        net.eval()
        x = dense_rows(histories, device=device)  # (B, I)
        responses = torch.ones((x.shape[0], k), device=device)
        cond = _condition(net, x, 0.0, training=False)
        mu0, logvar0 = _gaussian(net.prior(_cat(responses, cond)))
        z = mu0
        if sample_seed is not None:  # drawn on the CPU: the same slates on every device
            gen = torch.Generator().manual_seed(int(sample_seed))
            eps = torch.randn(mu0.shape, generator=gen).to(device)
            z = mu0 + eps * (0.5 * logvar0).exp()
        return _slot_logits(net, z, responses, cond, x > 0)

    def _score(self, histories, users):
        import torch

        with torch.no_grad():
            probs = self._ideal_logits(histories, sample_seed=None).softmax(dim=2)  # (B, k, I)
            return to_numpy(probs.amax(dim=1).nan_to_num(0.0))  # (B, I)

    def generate_slates(
        self,
        histories: sp.spmatrix,
        *,
        k: int | None = None,
        users: np.ndarray | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Slates for a batch of histories: r = 1^k, z ~ the prior, argmax slot by slot.

        Args:
            histories: (B, n_items) binary CSR (or dense) rows of the users' histories.
            k: slate length, 1..slate_size (default slate_size); the first k slots are used.
            users: accepted for symmetry with ``recommend``; the model conditions on histories.
            seed: seed of the prior samples z; the same seed and batch give the same slates
                (row b uses the b-th draw, so a row's slate depends on its place in the batch).

        Returns:
            (B, k) int64 item indices: distinct within a row, never a history item. Where a row
            has fewer than k items outside its history the tail holds -1.

        Raises:
            NotFittedError: before ``fit``; ConfigError: a bad ``k``; DataError: bad histories.
        """
        import torch

        histories, _ = self._check_batch(histories, users)
        size = self.config.slate_size
        k = size if k is None else k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= size:
            raise ConfigError(
                f"k must be an integer in 1..{size} (the model's slate_size), got {k!r}"
            )
        with torch.no_grad():
            logits = self._ideal_logits(histories, sample_seed=seed)[:, :k]  # (B, k, I)
            blocked = torch.isneginf(logits[:, 0])  # (B, I) history items
            slates = torch.full((logits.shape[0], k), -1, dtype=torch.long, device=logits.device)
            rows = torch.arange(logits.shape[0], device=logits.device)
            for slot in range(k):  # k is small; every row at once
                best = logits[:, slot].masked_fill(blocked, float("-inf")).max(dim=1)
                ok = torch.isfinite(best.values)
                slates[ok, slot] = best.indices[ok]
                blocked[rows[ok], best.indices[ok]] = True
        return to_numpy(slates)

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        return module_state(self.net_)

    def _load_state(self, state):
        self.net_ = _build_net(self.config, self.n_items_)
        load_module_state(self.net_, state)
        self.net_.eval()
