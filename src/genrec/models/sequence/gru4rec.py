"""GRU4Rec: a recurrent network that reads a user's items in time order and scores the next one.

Method: Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with Recurrent
Neural Networks", ICLR 2016, with the losses of Hidasi & Karatzoglou, "Recurrent Neural Networks
with Top-k Gains for Session-based Recommendations", CIKM 2018. Items are embedded, a GRU reads
the sequence, and at every step the hidden state ``h_t`` scores every item ``i`` as
``h_t . w_i + b_i`` (separate output weights ``W``, ``b``). Two losses (``loss``):

* ``"ce"`` (default): cross-entropy of the softmax over *all* items at every step;
* ``"bpr-max"`` (2018): for a target with score ``r_i`` and negatives with scores ``r_j``,
  ``-log sum_j s_j sigmoid(r_i - r_j) + bpr_reg * sum_j s_j r_j^2`` where
  ``s_j = softmax_j(r_j)`` over the negatives. The negatives of a step are the targets of the
  other sequences of the minibatch at the same step (the paper's mini-batch sampling) plus
  ``n_negatives`` extra items shared by the minibatch, drawn with probability proportional to
  ``popularity ** sample_alpha``.

Deviations from the papers:
    * padded per-user sequences instead of session-parallel mini-batches: each training row is a
      user's last ``max_len + 1`` items (right-aligned, 0 = padding), the GRU reads the first
      ``max_len`` and every position predicts the next item, so a minibatch is a (B, max_len)
      tensor and the GRU runs once over it. Padding positions feed a zero vector (the GRU starts
      from the same state for every user, whatever the history length), and scoring reads the
      same right-aligned layout, so training and inference see identical inputs;
    * only the last ``max_len`` items of a user's history are read (at training and scoring);
    * Adam instead of Adagrad with momentum; early stopping on validation NDCG@10;
    * linear output scores (no final ELU / tanh activation as in the 2018 code for BPR-max);
    * a negative equal to the step's target (an in-batch duplicate or a sampled hit) is ignored;
    * input embeddings of size ``dim`` instead of one-hot inputs (the 2018 code's
      ``constrained_embedding`` is ``tie_embeddings``).

Example:
    >>> from genrec.data.synthetic import deterministic_sequences
    >>> world = deterministic_sequences(n_users=60, n_items=30, length=8, seed=0)
    >>> model = GRU4Rec(dim=16, hidden=16, max_epochs=3).fit(world.split.train)
    >>> model.score(world.split.train.user_item_order[:2]).shape
    (2, 30)
    >>> model.generate(world.split.train.user_item_order[:2], n_steps=3).shape
    (2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from genrec.data.dataset import history_sequences
from genrec.models.base import ModelConfig, Recommender
from genrec.models.neural import (
    DataParallel,
    MixedPrecision,
    fit_epochs,
    load_module_state,
    module_device,
    module_state,
    seeded,
    to_numpy,
    torch_device,
)
from genrec.models.sequence.sequences import continue_sequences, training_sequences

LOSSES = ("ce", "bpr-max")


@dataclass(frozen=True)
class GRU4RecConfig(ModelConfig):
    """Hyper-parameters of :class:`GRU4Rec`.

    Defaults: chosen on ML-100K leave-one-out validation NDCG@10 (``leave_one_out_split``,
    training seed 42, one thread), one change at a time from dim = hidden = 64, lr 3e-3, batch
    64, dropout 0.2/0.2 (valid 0.1047): dropout 0.4/0.4 0.1172 (kept), 0.5/0.5 0.1193 (within
    noise), tied embeddings 0.1081 (0.1128 with dropout 0.4), dim = hidden = 128 0.1027, lr 1e-3
    0.1088, BPR-max with 256 extra negatives 0.0568 (2048, lr 1e-3, dropout 0.4: 0.0767). Test
    NDCG@10 of the defaults 0.0877, Recall@10 0.1691 (best epoch 34, ~1.2 s of CPU per epoch).
    The ``"paper"`` preset is the 2018 paper's BPR-max setting as published with its code (100
    GRU units, minibatch 32, 2048 extra negatives, bpreg 1, no dropout); Adam's learning rate
    stays ours (the paper's 0.2 is an Adagrad rate).
    """

    dim: int = 64  # item input embedding size
    hidden: int = 64  # GRU hidden units (also the output weight size)
    n_layers: int = 1  # stacked GRU layers
    embed_dropout: float = 0.4  # dropout on the input embeddings
    hidden_dropout: float = 0.4  # dropout on the GRU output before scoring
    tie_embeddings: bool = False  # use the output weights as input embeddings (needs dim == hidden)
    loss: str = "ce"  # "ce" (softmax over all items) or "bpr-max" (sampled, 2018 paper)
    n_negatives: int = 256  # bpr-max: extra popularity-sampled negatives shared by a minibatch
    sample_alpha: float = 0.75  # bpr-max: negatives drawn with probability ~ popularity ** alpha
    bpr_reg: float = 1.0  # bpr-max: weight of the score regularisation sum_j s_j r_j^2
    max_len: int = 50  # items of a history read (the latest ones)
    lr: float = 3e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam L2 weight decay
    batch_size: int = 64  # sequences per Adam step
    max_epochs: int = 200  # epochs at most (one epoch = every training user's sequence once)
    patience: int = 10  # evaluations without a better valid NDCG@10 before stopping
    eval_every: int = 1  # epochs between validation evaluations (only when valid is given)

    presets: ClassVar = {
        # Hidasi & Karatzoglou 2018 and the README example of their code (hidasib/GRU4Rec):
        # layers [100], batch 32, bpr-max, n_sample 2048, sample_alpha 0, bpreg 1, no dropout.
        "paper": {
            "dim": 100,
            "hidden": 100,
            "loss": "bpr-max",
            "batch_size": 32,
            "n_negatives": 2048,
            "sample_alpha": 0.0,
            "bpr_reg": 1.0,
            "embed_dropout": 0.0,
            "hidden_dropout": 0.0,
        },
    }

    def __post_init__(self):
        self.check_positive_ints(
            "dim",
            "hidden",
            "n_layers",
            "max_len",
            "batch_size",
            "max_epochs",
            "patience",
            "eval_every",
        )
        for name in ("embed_dropout", "hidden_dropout"):
            self.check(0 <= getattr(self, name) < 1, name, "in [0, 1)")
        self.check(
            not self.tie_embeddings or self.dim == self.hidden,
            "tie_embeddings",
            "False unless dim == hidden (tied weights share one size)",
        )
        self.check(self.loss in LOSSES, "loss", f"one of {LOSSES}")
        self.check(
            isinstance(self.n_negatives, int) and self.n_negatives >= 0,
            "n_negatives",
            "a non-negative integer",
        )
        self.check(self.sample_alpha >= 0, "sample_alpha", "a non-negative number")
        self.check(self.bpr_reg >= 0, "bpr_reg", "a non-negative number")
        self.check(self.lr > 0, "lr", "a positive number")
        self.check(self.weight_decay >= 0, "weight_decay", "a non-negative number")


def _network(n_items: int, cfg: GRU4RecConfig):
    """The torch module: embeddings -> GRU -> per-item output weights and biases."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # row i + 1 = item i
            nn.init.normal_(self.out.weight, std=cfg.hidden**-0.5)
            self.out_bias = nn.Parameter(torch.zeros(n_items + 1))
            self.embed = (
                None if cfg.tie_embeddings else nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
            )
            self.gru = nn.GRU(cfg.dim, cfg.hidden, num_layers=cfg.n_layers, batch_first=True)
            self.embed_drop = nn.Dropout(cfg.embed_dropout)
            self.hidden_drop = nn.Dropout(cfg.hidden_dropout)

        def forward(self, seqs):  # (B, L) int64 -> (B, L, H) hidden states
            table = self.out if self.embed is None else self.embed
            x = self.embed_drop(table(seqs) * (seqs > 0).unsqueeze(-1))  # (B, L, D), pads = 0
            h, _ = self.gru(x)
            return self.hidden_drop(h)

        def logits(self, h):  # (..., H) -> (..., n_items) scores of every item
            return h @ self.out.weight[1:].T + self.out_bias[1:]

    return Net()


def bpr_max_loss(pos, neg, valid, reg: float):
    """Mean BPR-max loss (Hidasi & Karatzoglou 2018) over N targets.

    Args:
        pos: (N,) target scores ``r_i``.
        neg: (N, K) negative scores ``r_j``.
        valid: (N, K) bool, False where a negative is to be ignored (padding, the target itself).
        reg: weight of the score regularisation ``sum_j s_j r_j^2``.

    Returns:
        scalar ``mean_n [-log sum_j s_j sigmoid(r_i - r_j) + reg * sum_j s_j r_j^2]`` with
        ``s_j = softmax_j(r_j)`` over the valid negatives of the row.
    """
    import torch

    weights = torch.softmax(neg.masked_fill(~valid, -torch.inf), dim=1)  # (N, K)
    weights = torch.nan_to_num(weights, nan=0.0)  # a row without negatives weighs nothing
    ranked = (weights * torch.sigmoid(pos.unsqueeze(1) - neg)).sum(dim=1)  # (N,)
    penalty = (weights * neg.square()).sum(dim=1)  # (N,)
    return (-torch.log(ranked + 1e-24) + reg * penalty).mean()


class GRU4Rec(Recommender):
    """GRU4Rec in PyTorch (see the module docstring).

    Learned attributes: ``net_`` (the torch module), ``loss_history_``, ``history_``,
    ``best_epoch_``, ``epochs_run_``.
    """

    name = "gru4rec"
    Config = GRU4RecConfig
    sequential = True

    # ---- training ----------------------------------------------------------------------------
    def _fit(self, train, valid, options):
        import torch

        cfg = self.config
        rng = np.random.default_rng(options.seed)
        seqs = torch.from_numpy(training_sequences(train, cfg.max_len))  # (U', L + 1)
        popularity = np.bincount(train.item_idx, minlength=train.n_items) ** cfg.sample_alpha
        sample_probs = torch.from_numpy(popularity / popularity.sum())  # (I,) on the CPU
        device = torch_device(options)
        amp = MixedPrecision(device, precision=options.precision)
        with seeded(options.seed):
            self.net_ = _network(train.n_items, cfg).to(device)
            opt = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            dp = DataParallel(self.net_, opt, seed=options.seed, amp=amp)

            def run_epoch(epoch: int) -> float:
                self.net_.train()
                total, count = torch.zeros((), dtype=torch.float64, device=device), 0
                for rows in dp.batches(len(seqs), cfg.batch_size, rng):
                    batch = seqs[torch.from_numpy(rows)]  # (B, L + 1) on the CPU
                    n = int((batch[:, 1:] > 0).sum())  # targets, counted on the host
                    batch = batch.to(device)
                    with amp.autocast():
                        loss = self._batch_loss(batch[:, :-1], batch[:, 1:], sample_probs)
                    dp.step(loss, n)
                    total, count = total + loss.detach() * n, count + n
                self.net_.eval()
                return dp.mean(total, count)  # read once per epoch

            fit_epochs(
                self,
                train,
                valid,
                options,
                run_epoch=run_epoch,
                module=self.net_,
            )
        self.net_.eval()

    def _batch_loss(self, inputs, targets, sample_probs):
        """The mean loss of a (B, L) input / target batch (0 = no target). Shared negatives are
        drawn on the CPU from ``sample_probs`` (I,) (the same draws on every device)."""
        import torch
        import torch.nn.functional as F

        h = self.net_(inputs)  # (B, L, H)
        has_target = targets > 0  # (B, L)
        if self.config.loss == "ce":
            logits = self.net_.logits(h[has_target])  # (N, I)
            return F.cross_entropy(logits, targets[has_target] - 1)
        # bpr-max: negatives = the other rows' targets at the same step + shared samples
        w, b = self.net_.out.weight, self.net_.out_bias  # (I + 1, H), (I + 1,)
        pos = (h * w[targets]).sum(-1) + b[targets]  # (B, L)
        in_batch = torch.einsum("blh,clh->blc", h, w[targets]) + b[targets].T.unsqueeze(0)
        ok_batch = (targets.T.unsqueeze(0) > 0) & (targets.unsqueeze(-1) != targets.T.unsqueeze(0))
        negs, ok = [in_batch], [ok_batch]  # (B, L, B) each
        if self.config.n_negatives:
            drawn = torch.multinomial(sample_probs, self.config.n_negatives, replacement=True) + 1
            drawn = drawn.to(h.device)  # (K,)
            negs.append(h @ w[drawn].T + b[drawn])  # (B, L, K)
            ok.append(targets.unsqueeze(-1) != drawn)
        neg, valid = torch.cat(negs, dim=-1), torch.cat(ok, dim=-1)
        return bpr_max_loss(
            pos[has_target], neg[has_target], valid[has_target], self.config.bpr_reg
        )

    # ---- scoring and generation --------------------------------------------------------------
    def next_item_scores(self, seqs):
        """(B, n_items) torch scores of the next item after (B, max_len) padded sequences."""
        import torch

        with torch.no_grad():
            inputs = torch.as_tensor(seqs).to(module_device(self.net_))  # (B, L)
            return self.net_.logits(self.net_(inputs)[:, -1])

    def _score(self, histories, users):
        seqs = history_sequences(histories, self.config.max_len)  # (B, L)
        return to_numpy(self.next_item_scores(seqs))

    def generate(
        self,
        histories: sp.spmatrix,
        *,
        n_steps: int = 10,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """(B, n_steps) item indices sampled one after another as continuations of each history
        (time-valued CSR rows); items of the history window are never repeated."""
        histories, _ = self._check_batch(histories, None)
        seqs = history_sequences(histories, self.config.max_len)
        return continue_sequences(
            self.next_item_scores,
            seqs,
            n_steps=n_steps,
            temperature=temperature,
            top_k=top_k,
            seed=seed,
        )

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        return module_state(self.net_)

    def _load_state(self, state):
        self.net_ = _network(self.n_items_, self.config)
        load_module_state(self.net_, state)
        self.net_.eval()
