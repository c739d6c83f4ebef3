"""IRGAN: a minimax game between a generative and a discriminative recommender.

Method: Jun Wang, Lantao Yu, Weinan Zhang, Yu Gong, Yinghui Xu, Benyou Wang, Peng Zhang & Dell
Zhang, "IRGAN: A Minimax Game for Unifying Generative and Discriminative Information Retrieval
Models", SIGIR 2017, item recommendation setting. Both players are matrix factorisations with an
item bias, ``s(u, i) = p_u . q_i + b_i`` (separate parameters each):

* the generator G defines ``p_theta(i | u) = softmax_i(s_G(u, i))`` over all items and is the
  recommender (scores = G's logits);
* the discriminator D says how likely (u, i) is a real interaction, ``sigmoid(s_D(u, i))``. It is
  trained with the logistic loss on the users' real items (label 1) against as many items drawn
  from G (label 0), drawn by :meth:`IRGAN.sample_negatives`: G's softmax (at temperature
  ``d_temperature``) with the user's training items excluded;
* G is trained by policy gradient (REINFORCE): for each user, ``2 |O_u|`` items are drawn from the
  importance-sampling mixture ``p_n = (1 - lambda) p_theta + lambda * uniform(O_u)`` (the
  paper's code, lambda = ``sample_lambda``), each rewarded by D and re-weighted by
  ``p_theta(i) / p_n(i)``; the loss is ``-mean(weight * reward * log p_theta(i | u))``.

Both players are pre-trained (``pretrain_loss``; the paper's code starts G from a pre-trained
model and D from scratch, ``pretrain_d=False``). One adversarial epoch is ``d_steps`` passes of D
over every training user (fresh G samples each pass) and then ``g_steps`` passes of G. Everything
runs on batches of users as (B, n_items) tensors: no per-user Python loops.

When pre-training ran with validation, the game must beat the pre-trained players: the
adversarial epochs are early-stopped on validation NDCG@10 starting from the pre-trained G's
score, so ``best_epoch_ == 0`` means "the game did not help" and the pre-trained G and D are
kept.

Deviations from the paper (the authors' released code, geek-ai/irgan ``item_recommendation``):
    * minibatch Adam for every phase by default (``optimizer="sgd"`` for the game's plain SGD)
      instead of per-user SGD steps;
    * the L2 penalty (``reg`` for G and pre-training, ``reg_d`` for D in the game) of a batch
      of B users is ``reg`` times the mean squared norm of the batch's user vectors plus the
      squared norm of ALL item vectors scaled by B / n_users (and divided, like the user term,
      by B), so one pass over the users penalises every item vector once; the item biases are
      NOT penalised. (BPR pre-training penalises the batch's rows only.) The authors' code
      penalises, per (user, item) example, ``lambda (|p_u|^2 + |q_i|^2 + b_i^2) / 2``: only the
      example's item vector, and its item bias too;
    * pre-training: by default G's own objective, the multinomial log-likelihood of each user's
      items under the softmax (``pretrain_loss="softmax"``), or BPR with one uniform unseen
      negative per positive (``"bpr"``; the authors load a DNS-trained G). G is pre-trained for
      at most ``pretrain_epochs`` epochs, early-stopped on validation NDCG@10 (its best epoch
      restored), then (``pretrain_d``) D for as many epochs with the same loss. On ML-100K the
      softmax pre-training plus the game beat BPR pre-training, after which the game did not
      help (see the config);
    * D's negatives exclude the user's training items (the paper's code may draw them); they are
      drawn with replacement, one per real item, by the public :meth:`IRGAN.sample_negatives`
      (so the same hard-negative sampler serves other learners), afresh for every D pass (the
      authors' code every 5 D epochs). A user who has seen every item has no negative: D trains
      on that user's real items only;
    * G's ``2 |O_u|`` draws per user are made for a whole batch at once: the batch draws
      ``2 max |O_u|`` per user and masks the surplus;
    * ``reward="sigmoid"`` is the paper's code's ``2 (sigmoid(s_D) - 0.5)``; ``"log1p_exp"``
      is the paper's Eq. (5) reward ``log(1 + exp(s_D))``;
    * early stopping on validation NDCG@10 (with ``valid``) over the adversarial epochs, from
      the pre-trained point (above), restores the best epoch's generator and discriminator
      (the authors keep the best G by test P@5 without stopping); ``pretrain_ndcg_`` keeps the
      validation NDCG@10 the pre-trained G had, so the adversarial gain can be read off
      (ML-100K: 0.2459 pre-trained, 0.2529 after the game);
    * users unknown to the model (``users=None``, or no training interaction) are folded in: the
      generator's user vector is the ridge fit of the binary history x onto G's item
      embeddings Q, ``(Q^T Q + lambda I) p = Q^T x`` with ``lambda = fold_in_reg *
      trace(Q^T Q) / dim`` (BPR's fold-in with a weaker default ridge; the item biases stay
      as learned). The training items are kept (``train_items_``, saved with the weights) so
      that :meth:`IRGAN.sample_negatives` can exclude them after loading. An empty history
      gets p = 0: G's item biases alone.

Example:
    >>> import numpy as np
    >>> from genrec.data.synthetic import planted_clusters
    >>> world = planted_clusters()
    >>> model = IRGAN(dim=8, pretrain_epochs=5, max_epochs=2).fit(world.split.train)
    >>> model.sample_negatives(np.array([0, 1]), 3, seed=0).shape
    (2, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, DataError
from genrec.models.base import ModelConfig, Recommender
from genrec.models.classic.bpr import ridge_fold_in
from genrec.models.classic.bpr import sample_negatives as uniform_negatives
from genrec.models.neural import (
    DataParallel,
    copy_state,
    dense_rows,
    fit_epochs,
    load_module_state,
    module_device,
    module_state,
    seeded,
    shuffled_batches,
    to_numpy,
    torch_device,
)


@dataclass(frozen=True)
class IRGANConfig(ModelConfig):
    """Hyper-parameters of :class:`IRGAN`.

    Defaults: chosen on ML-100K (holdout 0.8/0.1/0.1, split seed 2020, training seed 42) by
    validation NDCG@10 of the generator: softmax pre-training (lr 3e-3, early-stopped at epoch
    63, valid 0.2459) then the game with Adam 3e-3 for both players (best at game epoch 6,
    valid 0.2529; game lr 1e-3: 0.2532 after 10 epochs and rising, slower; D temperature 0.2:
    0.2526; reg 3e-3: 0.2526). BPR pre-training (lr 5e-3, reg 7.5e-3) pre-trains G to 0.2553,
    but the game then only loses (best at game epoch 1, 0.2555) at 3x the fit time.
    ``fold_in_reg`` 0.3 (valid NDCG@10 with every user folded in: 50 -> 0.127, 5 -> 0.186,
    1 -> 0.218, 0.3 -> 0.217, 0.1 -> 0.207): the softmax's item biases are not scale-free, so
    the fold-in needs a weak ridge, unlike BPR's.

    ``presets["paper"]``: the authors' released code for item recommendation (geek-ai/irgan,
    ``item_recommendation/cf_gan.py``, ``gen_model.py``, ``dis_model.py``): embedding 5; 15
    rounds of 100 D epochs then 50 G epochs, i.e. 2 D passes per G pass (``d_steps=2,
    g_steps=1``) for 15 * 50 = 750 epochs without early stopping (``patience=750``); plain SGD
    with learning rate 1e-3 for both; G's penalty 0 and D's 0.1 / 16 (``reg=0``, ``reg_d``);
    temperature 0.2 for D's samples; lambda 0.2 for G's importance sampling; reward
    ``2 (sigmoid - 0.5)``; G pre-trained by a pairwise (BPR/DNS) model, D from scratch
    (``pretrain_loss="bpr", pretrain_d=False``); batches of 16 (the authors' BATCH_SIZE).
    What the preset cannot reproduce: the order within a round (100 D epochs, then 50 G
    epochs, instead of interleaved 2:1 epochs); D's negatives regenerated every 5 D epochs
    (here every pass) and allowed to be training items; the authors' G steps once per user and
    D per 16 (user, item) pairs, summing the per-pair losses (here batches of 16 users and
    per-user means, so the same learning rate makes different step sizes); their penalty form
    (see the deviations: ours skips item biases and scales all item vectors to the batch);
    their DNS pre-training (dynamic negative sampling; here BPR with uniform negatives, with
    penalty ``reg`` and early stopping on validation); uniform(-0.05, 0.05) initialisation of D
    (here Xavier-normal); model selection by test P@5 (here validation NDCG@10).
    """

    dim: int = 64  # embedding size of both players
    pretrain_epochs: int = 200  # max pre-training epochs of G (0 = no pre-training of either)
    pretrain_loss: str = "softmax"  # pre-training of both: "softmax" (G's likelihood) or "bpr"
    pretrain_lr: float = 3e-3  # Adam learning rate of the pre-training
    pretrain_d: bool = True  # also pre-train D (for G's best epoch count); False: D from scratch
    optimizer: str = "adam"  # optimiser of both players in the game: "adam" or "sgd"
    lr_g: float = 3e-3  # learning rate of G in the game
    lr_d: float = 3e-3  # learning rate of D in the game
    reg: float = 1e-2  # L2 penalty of G and of pre-training (see the deviations for its form)
    reg_d: float | None = None  # L2 penalty of D in the game (None: the same as ``reg``)
    d_steps: int = 1  # D passes over all users per adversarial epoch
    g_steps: int = 1  # G passes over all users per adversarial epoch
    d_temperature: float = 1.0  # temperature of G's softmax when drawing D's negatives
    sample_lambda: float = 0.2  # weight of the user's real items in G's importance sampling
    reward: str = "sigmoid"  # "sigmoid": 2 (sigmoid(s_D) - 0.5); "log1p_exp": log(1 + e^s_D)
    batch_size: int = 256  # users per step in the game (positives per step in BPR
    # pre-training are ``batch_size * 16``)
    max_epochs: int = 60  # adversarial epochs at most
    patience: int = 5  # evaluations without a better valid NDCG@10 before stopping
    eval_every: int = 1  # adversarial epochs between validation evaluations
    fold_in_reg: float = 0.3  # fold-in ridge lambda, in units of the mean eigenvalue of Q^T Q

    presets: ClassVar = {
        # geek-ai/irgan item_recommendation/cf_gan.py, gen_model.py, dis_model.py (see above)
        "paper": {
            "dim": 5,
            "optimizer": "sgd",
            "lr_g": 1e-3,
            "lr_d": 1e-3,
            "reg": 0.0,
            "reg_d": 0.1 / 16,
            "d_temperature": 0.2,
            "sample_lambda": 0.2,
            "reward": "sigmoid",
            "d_steps": 2,
            "g_steps": 1,
            "max_epochs": 750,
            "patience": 750,
            "pretrain_loss": "bpr",
            "pretrain_d": False,
            "batch_size": 16,
        },
    }

    def __post_init__(self):
        self.check_positive_ints(
            "dim", "batch_size", "max_epochs", "patience", "eval_every", "d_steps", "g_steps"
        )
        self.check(
            isinstance(self.pretrain_epochs, int) and self.pretrain_epochs >= 0,
            "pretrain_epochs",
            "a non-negative integer",
        )
        for name in ("pretrain_lr", "lr_g", "lr_d", "d_temperature", "fold_in_reg"):
            self.check(getattr(self, name) > 0, name, "a positive number")
        self.check(self.reg >= 0, "reg", "a non-negative number")
        self.check(self.reg_d is None or self.reg_d >= 0, "reg_d", "None or a non-negative number")
        self.check(isinstance(self.pretrain_d, bool), "pretrain_d", "True or False")
        self.check(self.optimizer in ("adam", "sgd"), "optimizer", "'adam' or 'sgd'")
        self.check(0 <= self.sample_lambda <= 1, "sample_lambda", "a number in [0, 1]")
        self.check(self.pretrain_loss in ("softmax", "bpr"), "pretrain_loss", "'softmax' or 'bpr'")
        self.check(self.reward in ("sigmoid", "log1p_exp"), "reward", "'sigmoid' or 'log1p_exp'")


def _mf_module(n_users: int, n_items: int, dim: int):
    """Matrix factorisation with item bias: ``user (U, D)``, ``item (I, D)``, ``bias (I,)``."""
    import torch

    class MF(torch.nn.Module):
        def __init__(self):
            super().__init__()
            std = math.sqrt(2.0 / (n_users + dim))  # Xavier-normal, as BPR
            self.user = torch.nn.Parameter(torch.randn(n_users, dim) * std)
            self.item = torch.nn.Parameter(
                torch.randn(n_items, dim) * math.sqrt(2.0 / (n_items + dim))
            )
            self.bias = torch.nn.Parameter(torch.zeros(n_items))

        def logits(self, user_vecs):  # (B, D) -> (B, I)
            return user_vecs @ self.item.T + self.bias

    return MF()


class IRGAN(Recommender):
    """IRGAN in PyTorch; the generator is the recommender.

    Learned attributes: ``generator_`` and ``discriminator_`` (MF modules), ``train_items_``
    (the training CSR, for excluding seen items when sampling), ``trained_users_`` (n_users,)
    bool, ``pretrain_ndcg_`` (valid NDCG@10 after pre-training, or None), ``loss_history_``
    (mean G loss per adversarial epoch), ``d_loss_history_``, ``history_``, ``best_epoch_``
    (0 when pre-training ran with validation and no adversarial epoch beat it: the
    pre-trained players are kept), ``epochs_run_``.
    """

    name = "irgan"
    Config = IRGANConfig

    # ---- training ----------------------------------------------------------------------------
    def _fit(self, train, valid, options):
        import torch

        cfg = self.config
        self.train_items_ = train.user_items.astype(np.float32)
        self.trained_users_ = np.diff(self.train_items_.indptr) > 0
        active = np.flatnonzero(self.trained_users_)
        rng = np.random.default_rng(options.seed)
        device = torch_device(options)
        with seeded(options.seed):
            self.generator_ = _mf_module(train.n_users, train.n_items, cfg.dim).to(device)
            self.discriminator_ = _mf_module(train.n_users, train.n_items, cfg.dim).to(device)
            self._pretrain(train, valid, options, rng)
            optim = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
            opt_g = optim(self.generator_.parameters(), lr=cfg.lr_g)
            opt_d = optim(self.discriminator_.parameters(), lr=cfg.lr_d)
            # the game is data-parallel; pre-training (above) runs whole, alike on every rank
            dp_g = DataParallel(self.generator_, opt_g, seed=options.seed)
            dp_d = DataParallel(self.discriminator_, opt_d, seed=options.seed)
            self.d_loss_history_ = []

            def run_epoch(epoch: int) -> float:
                d_loss = [self._d_pass(dp_d, active, rng) for _ in range(cfg.d_steps)]
                self.d_loss_history_.append(float(np.mean(d_loss)))
                g_loss = [self._g_pass(dp_g, active, rng) for _ in range(cfg.g_steps)]
                return float(np.mean(g_loss))

            def snapshot():
                return [copy_state(self.generator_), copy_state(self.discriminator_)]

            def restore(weights) -> None:
                self.generator_.load_state_dict(weights[0])
                self.discriminator_.load_state_dict(weights[1])

            # the game must beat the pre-trained players (best_epoch_ 0: it did not)
            initial = None if self.pretrain_ndcg_ is None else (self.pretrain_ndcg_, snapshot())
            fit_epochs(
                self,
                train,
                valid,
                options,
                run_epoch=run_epoch,
                snapshot=snapshot,
                restore=restore,
                initial=initial,
            )

    def _pretrain(self, train, valid, options, rng) -> None:
        """Pre-train G for at most ``pretrain_epochs`` epochs, early-stopped on validation
        NDCG@10 like the game; then (``pretrain_d``) D for as many epochs as G's best. Sets
        ``pretrain_history_`` (G's validation curve), ``pretrain_epochs_`` and
        ``pretrain_ndcg_`` (None without validation)."""
        import torch

        cfg = self.config
        self.pretrain_history_, self.pretrain_epochs_, self.pretrain_ndcg_ = [], 0, None
        if cfg.pretrain_epochs == 0:
            return
        g, d = self.generator_, self.discriminator_
        opt = torch.optim.Adam(g.parameters(), lr=cfg.pretrain_lr)
        fit_epochs(
            self,
            train,
            valid,
            options,
            run_epoch=lambda e: self._pretrain_epoch(g, opt, rng),
            module=g,
            max_epochs=cfg.pretrain_epochs,
            eval_every=1,  # pretraining validates every epoch, whatever eval_every says
        )
        self.pretrain_history_, self.pretrain_epochs_ = self.history_, self.best_epoch_
        self.pretrain_ndcg_ = max((h["ndcg@10"] for h in self.history_), default=None)
        if not cfg.pretrain_d:
            return
        opt = torch.optim.Adam(d.parameters(), lr=cfg.pretrain_lr)
        for _ in range(self.pretrain_epochs_):
            self._pretrain_epoch(d, opt, rng)

    def _pretrain_epoch(self, player, opt, rng) -> float:
        """One pre-training epoch of ``player``: the multinomial log-likelihood of each user's
        items under the softmax (batches of users), or BPR (one uniform unseen negative per
        positive, batches of ``16 * batch_size`` positives). Returns the mean loss."""
        import torch
        import torch.nn.functional as F

        cfg, x, device = self.config, self.train_items_, module_device(player)
        losses = []
        if cfg.pretrain_loss == "softmax":
            active = np.flatnonzero(self.trained_users_)
            for batch in shuffled_batches(len(active), cfg.batch_size, rng):
                real = dense_rows(x, active[batch], device=device)  # (B, I)
                p_u = player.user[torch.from_numpy(active[batch]).to(device)]  # (B, D)
                log_prob = torch.log_softmax(player.logits(p_u), dim=1)  # (B, I)
                losses.append(
                    -(real * log_prob).sum(1).mean() + self._penalty(p_u, player, cfg.reg)
                )
                _step(opt, losses[-1])
            return float(torch.stack(losses).detach().mean())  # read once per epoch
        pos_users = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))  # (P,)
        pos_items = x.indices.astype(np.int64)  # (P,)
        seen = np.sort(pos_users * x.shape[1] + pos_items)
        neg_items, keep = uniform_negatives(rng, pos_users, x.shape[1], seen)
        order = rng.permutation(np.flatnonzero(keep))
        for lo in range(0, len(order), cfg.batch_size * 16):
            idx = order[lo : lo + cfg.batch_size * 16]
            u, i, j = (
                torch.from_numpy(a[idx]).to(device) for a in (pos_users, pos_items, neg_items)
            )
            p_u, q_i, q_j = (
                F.embedding(a, w) for a, w in ((u, player.user), (i, player.item), (j, player.item))
            )  # (n, D)
            diff = (p_u * (q_i - q_j)).sum(1) + player.bias[i] - player.bias[j]  # (n,)
            losses.append(
                -F.logsigmoid(diff).mean()
                + cfg.reg
                * (p_u.square().sum() + q_i.square().sum() + q_j.square().sum())
                / len(idx)
            )
            _step(opt, losses[-1])
        return float(torch.stack(losses).detach().mean())  # read once per epoch

    def _d_pass(self, dp, active, rng) -> float:
        """One pass of D over ``active`` users: real items vs as many items drawn from G (none
        for a user who has seen every item: that user's real items only). ``dp``: D's
        :class:`DataParallel` (this process's users of each batch; its gradient weighted by its
        real + drawn terms, which the loss is the mean of)."""
        import torch
        import torch.nn.functional as F

        cfg, device = self.config, module_device(self.discriminator_)
        reg_d = cfg.reg if cfg.reg_d is None else cfg.reg_d
        lengths = np.diff(self.train_items_.indptr)  # (U,) real items per user, on the host
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0
        draw = lambda: rng.integers(2**31)  # noqa: E731  (one per batch, on every process)
        for batch in dp.batches(len(active), cfg.batch_size, rng, skipped=draw):
            users = active[batch]
            real = dense_rows(self.train_items_, users, device=device)  # (B, I) binary
            n_real = real.sum(1)  # (B,)
            width = int(lengths[users].max())
            has_negative = lengths[users] < self.n_items_  # (B,)
            fake = torch.zeros((len(users), width), dtype=torch.long, device=device)  # (B, W)
            seed = int(rng.integers(2**31))
            if has_negative.any():
                fake[torch.from_numpy(has_negative).to(device)] = self._draw_negatives(
                    users[has_negative], width, seed=seed, temperature=cfg.d_temperature
                )
            keep = (
                (torch.arange(width, device=device)[None, :] < n_real[:, None])
                & torch.from_numpy(has_negative).to(device)[:, None]
            ).float()  # (B, width): one per real
            p_u = self.discriminator_.user[torch.from_numpy(users).to(device)]  # (B, D)
            scores = self.discriminator_.logits(p_u)  # (B, I)
            real_loss = F.binary_cross_entropy_with_logits(scores, real, reduction="none")
            fake_loss = F.softplus(scores.gather(1, fake))  # -log(1 - sigmoid)
            n_terms = n_real.sum() + keep.sum()
            loss = ((real_loss * real).sum() + (fake_loss * keep).sum()) / n_terms
            loss = loss + self._penalty(p_u, self.discriminator_, reg_d)
            reals = lengths[users]  # n_terms on the host: keep counts the reals of users
            dp.step(loss, int(reals.sum() + reals[has_negative].sum()))  # with a negative
            total, count = total + loss.detach() * len(users), count + len(users)
        return dp.mean(total, count)  # read once per pass

    def _g_pass(self, dp, active, rng) -> float:
        """One REINFORCE pass of G over ``active`` users with D's rewards (importance-sampled).
        ``dp``: G's :class:`DataParallel` (this process's users of each batch)."""
        import torch

        cfg, device = self.config, module_device(self.generator_)
        lengths = np.diff(self.train_items_.indptr)  # (U,) real items per user, on the host
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0
        draw = lambda: rng.integers(2**31)  # noqa: E731  (one per batch, on every process)
        for batch in dp.batches(len(active), cfg.batch_size, rng, skipped=draw):
            users = torch.from_numpy(active[batch]).to(device)
            real = dense_rows(self.train_items_, active[batch], device=device)  # (B, I)
            n_real = real.sum(1, keepdim=True)  # (B, 1)
            p_u = self.generator_.user[users]  # (B, D)
            log_prob = torch.log_softmax(self.generator_.logits(p_u), dim=1)  # (B, I)
            with torch.no_grad():
                prob = log_prob.exp()
                mixture = (1 - cfg.sample_lambda) * prob + cfg.sample_lambda * real / n_real
                width = int(2 * lengths[active[batch]].max())
                gen = torch.Generator(device).manual_seed(int(rng.integers(2**31)))
                drawn = torch.multinomial(mixture, width, replacement=True, generator=gen)  # (B, W)
                keep = (torch.arange(width, device=device)[None, :] < 2 * n_real).float()
                d_user = self.discriminator_.user[users]  # (B, D)
                d_scores = self.discriminator_.logits(d_user).gather(1, drawn)  # (B, W)
                reward = (
                    2 * (torch.sigmoid(d_scores) - 0.5)
                    if cfg.reward == "sigmoid"
                    else torch.nn.functional.softplus(d_scores)
                )
                weight = reward * prob.gather(1, drawn) / mixture.gather(1, drawn) * keep
            per_user = -(weight * log_prob.gather(1, drawn)).sum(1) / keep.sum(1)  # (B,)
            loss = per_user.mean() + self._penalty(p_u, self.generator_, cfg.reg)
            dp.step(loss, len(users))
            total, count = total + loss.detach() * len(users), count + len(users)
        return dp.mean(total, count)  # read once per pass

    @staticmethod
    def _penalty(p_u, player, reg: float):
        """``reg`` times the mean squared norm of the batch's B user vectors plus the squared
        norm of ALL item vectors scaled by B / n_users (divided by B like the user term); the
        item biases are not penalised."""
        share = len(p_u) / player.user.shape[0]
        return reg * (p_u.square().sum(1).mean() + share * player.item.square().sum() / len(p_u))

    # ---- the generator as a sampler ----------------------------------------------------------
    def sample_negatives(
        self, users: np.ndarray, n: int, *, seed: int = 0, temperature: float = 1.0
    ) -> np.ndarray:
        """(len(users), n) items drawn with replacement from G's softmax at ``temperature``,
        never one of the user's training items: "hard" negatives for any pairwise learner.

        Raises:
            ConfigError: ``n`` is not an integer >= 1 or ``temperature`` is not a positive number.
            DataError: ``users`` are not integer indices of training users (0..n_users - 1), or a
                user has seen every item.
        """
        self._require_fitted()
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(
                f"n = {n!r} is invalid; it must be an integer >= 1 (negatives per user)"
            )
        if (
            isinstance(temperature, (bool, np.bool_))
            or not isinstance(temperature, (int, float, np.integer, np.floating))
            or not 0 < temperature < math.inf
        ):
            raise ConfigError(
                f"temperature = {temperature!r} is invalid; it must be a positive finite number"
            )
        users = np.asarray(users)
        if users.size and users.dtype.kind not in "iu":
            raise DataError(f"users must be integer user indices, got dtype {users.dtype}")
        users = users.astype(np.int64).reshape(-1)
        if users.size and (users.min() < 0 or users.max() >= self.n_users_):
            raise DataError(
                f"users must be training user indices in 0..{self.n_users_ - 1}; "
                f"got {users.min()}..{users.max()}"
            )
        if (np.diff(self.train_items_[users].indptr) >= self.n_items_).any():
            raise DataError("a user has seen every item: there is no negative to draw")
        return to_numpy(self._draw_negatives(users, n, seed=seed, temperature=temperature))

    def _draw_negatives(self, users: np.ndarray, n: int, *, seed: int, temperature: float):
        """:meth:`sample_negatives` without the checks, as a (B, n) tensor on G's device (the
        draws come from a generator on that device)."""
        import torch

        seen, device = self.train_items_[users], module_device(self.generator_)
        with torch.no_grad():
            logits = self.generator_.logits(self._user_vectors(seen, users)) / temperature
            logits = logits.masked_fill(dense_rows(seen, device=device) > 0, -math.inf)  # (B, I)
            prob = torch.softmax(logits, dim=1)
            gen = torch.Generator(device).manual_seed(int(seed))
            return torch.multinomial(prob, int(n), replacement=True, generator=gen)

    # ---- scoring -----------------------------------------------------------------------------
    def _score(self, histories, users):
        import torch

        with torch.no_grad():
            return to_numpy(self.generator_.logits(self._user_vectors(histories, users)))

    def _user_vectors(self, histories: sp.csr_matrix, users: np.ndarray | None):
        """(B, dim) torch G user vectors: learned for trained users, ridge fold-in otherwise."""
        import torch

        known = np.zeros(histories.shape[0], bool) if users is None else self.trained_users_[users]
        device = module_device(self.generator_)
        out = torch.empty(histories.shape[0], self.config.dim, device=device)
        with torch.no_grad():
            if known.any():
                rows = torch.from_numpy(users[known]).to(device)
                out[torch.from_numpy(known).to(device)] = self.generator_.user[rows]
            if not known.all():  # a least-squares solve on the host, once per batch
                solved = ridge_fold_in(
                    histories[~known], to_numpy(self.generator_.item), self.config.fold_in_reg
                )  # (B', D)
                out[torch.from_numpy(~known).to(device)] = torch.from_numpy(
                    solved.astype(np.float32)
                ).to(device)
        return out

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        x = self.train_items_
        return {
            **module_state(self.generator_, "g."),
            **module_state(self.discriminator_, "d."),
            "train_indptr": x.indptr,
            "train_indices": x.indices,
            "trained_users": self.trained_users_,
        }

    def _load_state(self, state):
        self.generator_ = _mf_module(self.n_users_, self.n_items_, self.config.dim)
        self.discriminator_ = _mf_module(self.n_users_, self.n_items_, self.config.dim)
        load_module_state(self.generator_, state, "g.")
        load_module_state(self.discriminator_, state, "d.")
        indices = np.asarray(state["train_indices"], np.int32)
        self.train_items_ = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, np.asarray(state["train_indptr"])),
            shape=(self.n_users_, self.n_items_),
        )
        self.trained_users_ = np.asarray(state["trained_users"], bool)


def _step(opt, loss) -> None:
    opt.zero_grad()
    loss.backward()
    opt.step()
