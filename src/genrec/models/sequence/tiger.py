"""TIGER: generative retrieval with semantic IDs (Rajput et al., "Recommender Systems with
Generative Retrieval", NeurIPS 2023).

Every item's text (rendered from the catalog, e.g. "Heat. Genres: Crime") is embedded by a text
encoder (all-MiniLM-L6-v2 by default, :mod:`genrec.text`), and an RQ-VAE quantises the embedding
into ``n_levels`` codes from residual codebooks; a last *collision digit* makes every item's
semantic ID unique (the RQ-VAE, the digit and the prefix trie live in
:mod:`genrec.models.sequence.semantic_ids`, reusable by any generative-retrieval model). A transformer encoder reads the history as semantic-ID tokens and a decoder
generates the next item's semantic ID token by token. Decoding is constrained to a prefix trie of
the IDs that exist, so the model only ever returns real items, and an item without interactions
(cold) is recommendable as soon as its text gives it an ID (:meth:`TIGER.add_items`).

Scores for full ranking are exact: the log-probability of each item's ID path under the
trie-constrained decoder (softmax renormalised over the children that exist at every step), so
the scores of all items form one distribution. Prefixes with a single child contribute 0 and are
never run through the decoder; the others are decoded incrementally down the trie (one new token
per prefix, its ancestors' keys and values reused), which keeps scoring every item cheap.
:meth:`TIGER.recommend_beam` is the paper's constrained beam search; with a beam as wide as the
catalog it returns exactly the top of the full ranking.

Deliberate deviations from the paper:

* Encoder: each history item is ONE input position whose vector is the sum of its semantic-ID
  token embeddings (the paper feeds the 4 tokens separately), and the encoder is causal, so one
  pass over a user's sequence trains every next-item target at once (the decoder for target t
  cross-attends to a learned start vector and the encoder outputs of items before t). At
  inference the whole history is visible, as in the paper. No hashed user-id token (scoring
  uses only the history, so unknown users work). Learned absolute positions, pre-LayerNorm
  blocks, a small model (2+2 layers, d=64) instead of T5 4+4 layers with relative positions.
* The cross-entropy of each code is over that level's codebook only (the paper: the shared
  1,024-token vocabulary); AdamW with a constant rate instead of inverse-square-root decay.
* Codebooks default to 3 x 32 codes (the paper: 3 x 256 for 10-20k items; ML-100K has 1,682);
  the RQ-VAE trains with Adam on minibatches (the paper: Adagrad, 20k epochs), on the items that
  have training interactions, its codebooks initialised by k-means over all of them
  (:func:`genrec.kmeans.kmeans`; the paper: k-means on the first batch); every item, cold ones too, is then coded by the trained quantiser.
* Cold items: a trie branch that holds no item with training interactions was never a training
  target, so its logits mean nothing; at every level such a child gets its item-count share
  ``n(child) / n(prefix)`` of its prefix's probability and the warm children share the rest by
  the decoder's softmax over them (the paper instead reserves a share epsilon of the top-K for
  cold items whose first codes match). Without cold items this is the plain trie-constrained
  probability.

Example:
    >>> from genrec.data.synthetic import deterministic_sequences
    >>> from genrec.options import RunOptions
    >>> world = deterministic_sequences(n_users=60, n_items=30, length=8, seed=0)
    >>> model = TIGER(text_encoder="hashing", text_cache="off", n_levels=2, codebook_size=8,
    ...               rqvae_epochs=50, max_epochs=2).fit(world.split.train, options=RunOptions(seed=0, threads=1))
    >>> model.codes_.shape  # every item: 2 codes + the collision digit
    (30, 3)
    >>> items, logp = model.recommend_beam(world.split.train.user_item_order[:2], k=3)
    >>> items.shape, bool((items >= 0).all())
    ((2, 3), True)
"""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from genrec.data.dataset import history_sequences
from genrec.errors import ConfigError, DataError
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
from genrec.models.sequence.semantic_ids import (
    RQVAEParams,
    Trie,
    build_rqvae,
    encode_codes,
    semantic_ids,
    train_rqvae,
)
from genrec.models.sequence.sequences import continue_sequences, training_sequences
from genrec.text.encoder import encode_cached, get_encoder
from genrec.text.items import check_text_fields, embedding_cache, item_embeddings


@dataclasses.dataclass(frozen=True)
class TIGERConfig(ModelConfig):
    """TIGER hyper-parameters. Defaults: chosen by hand on ML-100K leave-one-out VALIDATION
    NDCG@10 (training seed 42, 1 thread). Tried: batch 64 at lr 2e-3 (dropout 0.2) or 5e-3
    (dropout 0.1) learned far slower per epoch (valid 0.033 / 0.049 after 6-7 epochs) than
    batch 16 at lr 2e-3, dropout 0.1 (0.062 after 6, best 0.0825 at epoch 14); batch 16 at lr
    4e-3 was no better (0.0799 vs 0.0818 at epoch 12). Validation NDCG@10 was still rising at
    epoch 30 (0.0941), hence max_epochs 40. Codebooks, widths and text were not tuned (time).

    ``presets["paper"]``: Sec. 4 of Rajput et al.: 3 codebooks of 256, 32-d latent, RQ-VAE MLP
    512-256-128, 4+4 layers, d_model 128, MLP 1024, dropout 0.1, histories of up to 20 items.
    The paper's attention is 6 heads x 64 (width 384); ours has width d_model, so 4 heads x 32.
    """

    text_encoder: str = "minilm"  # item text encoder: "minilm", "hashing" or a model folder
    text_template: str = ""  # item text template over catalog columns; "" = text fields + year
    text_cache: str = "default"  # embedding cache: "default", "off" or a folder
    n_levels: int = 3  # RQ-VAE codebooks (codes per ID before the collision digit)
    codebook_size: int = 32  # codes per codebook
    latent_dim: int = 32  # RQ-VAE latent width
    rqvae_hidden: int = 256  # RQ-VAE MLP width (encoder in -> h -> h/2 -> latent, mirrored)
    rqvae_epochs: int = 300  # RQ-VAE epochs over the items
    rqvae_lr: float = 1e-3  # RQ-VAE Adam learning rate
    commitment: float = 0.25  # beta: commitment weight of the RQ-VAE loss
    d_model: int = 64  # transformer width
    n_heads: int = 2  # attention heads
    n_layers: int = 2  # encoder layers and decoder layers (each)
    ff_dim: int = 256  # feed-forward width
    dropout: float = 0.1  # dropout in the transformer
    max_len: int = 50  # history items read (the latest)
    lr: float = 2e-3  # Adam learning rate of the transformer
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    batch_size: int = 16  # training sequences (users) per step
    max_epochs: int = 40  # training epochs at most
    patience: int = 3  # validations without improvement before stopping
    eval_every: int = 2  # validate every this many epochs

    presets: ClassVar = {
        "paper": {
            "codebook_size": 256,
            "latent_dim": 32,
            "rqvae_hidden": 512,
            "d_model": 128,
            "n_heads": 4,
            "n_layers": 4,
            "ff_dim": 1024,
            "dropout": 0.1,
            "max_len": 20,
        }
    }

    def __post_init__(self):
        check_text_fields(self)
        self.check_positive_ints(
            "n_levels",
            "codebook_size",
            "latent_dim",
            "rqvae_hidden",
            "rqvae_epochs",
            "d_model",
            "n_heads",
            "n_layers",
            "ff_dim",
            "max_len",
            "batch_size",
            "max_epochs",
            "patience",
            "eval_every",
        )
        self.check(self.codebook_size >= 2, "codebook_size", "an integer >= 2")
        self.check(self.rqvae_hidden >= 2, "rqvae_hidden", "an integer >= 2")
        self.check(
            self.d_model % self.n_heads == 0, "d_model", f"a multiple of n_heads={self.n_heads}"
        )
        for name in ("rqvae_lr", "lr"):
            self.check(getattr(self, name) > 0, name, "a positive number")
        self.check(self.commitment >= 0, "commitment", "a non-negative number")
        self.check(self.weight_decay >= 0, "weight_decay", "a non-negative number")
        self.check(0 <= self.dropout < 1, "dropout", "in [0, 1)")

    def rqvae_params(self) -> RQVAEParams:
        """The RQ-VAE part of this config, as :func:`semantic_ids.train_rqvae` takes it."""
        return RQVAEParams(
            n_levels=self.n_levels,
            codebook_size=self.codebook_size,
            latent_dim=self.latent_dim,
            hidden=self.rqvae_hidden,
            epochs=self.rqvae_epochs,
            lr=self.rqvae_lr,
            commitment=self.commitment,
        )


# ---- the seq2seq transformer ----------------------------------------------------------------
def build_network(vocab: list[int], cfg: TIGERConfig):
    from torch import nn

    d = cfg.d_model

    def block(cross: bool):
        parts = {
            "ln1": nn.LayerNorm(d),
            "qkv": nn.Linear(d, 3 * d),
            "out": nn.Linear(d, d),
            "ln2": nn.LayerNorm(d),
            "ff1": nn.Linear(d, cfg.ff_dim),
            "ff2": nn.Linear(cfg.ff_dim, d),
        }
        if cross:
            parts.update(
                lnc=nn.LayerNorm(d),
                cq=nn.Linear(d, d),
                ckv=nn.Linear(d, 2 * d),
                cout=nn.Linear(d, d),
            )
        return nn.ModuleDict(parts)

    return nn.ModuleDict(
        {
            "emb": nn.Embedding(1 + sum(vocab), d),  # 0: BOS of the decoder / padding
            "enc_pos": nn.Embedding(cfg.max_len, d),
            "dec_pos": nn.Embedding(len(vocab), d),
            "start": nn.Embedding(1, d),  # memory slot every decoder query may attend to
            "encoder": nn.ModuleList(block(False) for _ in range(cfg.n_layers)),
            "decoder": nn.ModuleList(block(True) for _ in range(cfg.n_layers)),
            "enc_ln": nn.LayerNorm(d),
            "dec_ln": nn.LayerNorm(d),
            "head": nn.Linear(d, sum(vocab)),
        }
    )


def attend(q, k, v, mask, n_heads: int, dropout: float):
    """Multi-head attention: q (N, Tq, d), k/v (N, Tk, d), bool mask broadcastable to
    (N, H, Tq, Tk) (True = may attend) -> (N, Tq, d)."""
    import torch.nn.functional as F

    n, tq, d = q.shape
    split = lambda x: x.view(n, x.shape[1], n_heads, d // n_heads).transpose(1, 2)  # noqa: E731
    out = F.scaled_dot_product_attention(
        split(q), split(k), split(v), attn_mask=mask, dropout_p=dropout
    )
    return out.transpose(1, 2).reshape(n, tq, d)


class TIGER(Recommender):
    """TIGER; see the module docstring. Learned attributes: ``codes_`` (n_items, L + 1) the
    semantic IDs, ``warm_`` (n_items,) items with training interactions, ``collision_rate_``
    (share of items whose first ``n_levels`` codes repeat an earlier item's, i.e. that need a
    non-zero collision digit), ``rqvae_`` and ``net_`` (torch modules), plus ``fit_epochs``'s."""

    name = "tiger"
    Config = TIGERConfig
    sequential = True

    # ---- token helpers -----------------------------------------------------------------------
    def _setup(self, codes: np.ndarray, warm: np.ndarray, vocab: list[int]) -> None:
        import torch

        self.codes_, self.warm_, self.vocab_ = codes, warm, list(vocab)
        self.offsets_ = np.r_[1, 1 + np.cumsum(vocab)[:-1]].astype(np.int64)  # token of code 0
        self.trie_ = Trie(codes, warm, vocab)
        item_tokens = np.zeros((len(codes) + 1, len(vocab)), np.int64)  # row 0: padding
        # a collision digit beyond the trained vocabulary (a cold or re-coded item's) is read
        # as the last digit the network has an embedding for
        item_tokens[1:] = np.minimum(codes, np.asarray(vocab) - 1) + self.offsets_
        net = getattr(self, "net_", None)  # the token table lives where the network does
        device = module_device(net) if net is not None else "cpu"
        self._item_tokens = torch.from_numpy(item_tokens).to(device)

    def _level_logits(self, hidden, level: int):
        w, b = self.net_["head"].weight, self.net_["head"].bias
        lo = int(self.offsets_[level]) - 1
        return hidden @ w[lo : lo + self.vocab_[level]].T + b[lo : lo + self.vocab_[level]]

    # ---- the network -------------------------------------------------------------------------
    def _encode(self, seqs):
        """(B, T) padded item sequences -> memory (B, 1 + T, d) and its validity (B, 1 + T)."""
        import torch

        net, cfg = self.net_, self.config
        drop = cfg.dropout if net.training else 0.0
        b, t = seqs.shape
        valid = seqs > 0
        x = net["emb"](self._item_tokens[seqs]).sum(2) * valid[..., None]  # (B, T, d)
        x = torch.nn.functional.dropout(x + net["enc_pos"].weight[-t:], drop, net.training)
        causal = torch.ones(t, t, dtype=torch.bool, device=seqs.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=seqs.device)
        mask = (causal & (valid[:, None, :] | eye))[:, None]  # (B, 1, T, T)
        for blk in net["encoder"]:
            q, k, v = blk["qkv"](blk["ln1"](x)).chunk(3, -1)
            x = x + torch.nn.functional.dropout(
                blk["out"](attend(q, k, v, mask, cfg.n_heads, drop)), drop, net.training
            )
            x = x + self._ffn(blk, x, drop)
        memory = torch.cat([net["start"].weight.expand(b, 1, -1), net["enc_ln"](x)], 1)
        start = torch.ones(b, 1, dtype=torch.bool, device=seqs.device)
        return memory, torch.cat([start, valid], 1)

    def _ffn(self, blk, x, drop):
        import torch.nn.functional as F

        h = F.dropout(F.gelu(blk["ff1"](blk["ln2"](x))), drop, self.net_.training)
        return F.dropout(blk["ff2"](h), drop, self.net_.training)

    def _memory_kv(self, memory):
        return [blk["ckv"](memory).chunk(2, -1) for blk in self.net_["decoder"]]

    def _decode(self, tokens, memory_kv, cross_mask):
        """tokens (B, Q, t) decoder inputs; memory_kv per layer (B, S, d) pairs; cross_mask
        broadcastable to (B, 1, Q * t, S) -> hidden states (B, Q, t, d)."""
        import torch

        net, cfg = self.net_, self.config
        drop = cfg.dropout if net.training else 0.0
        b, nq, t = tokens.shape
        x = net["emb"](tokens) + net["dec_pos"].weight[:t]  # (B, Q, t, d)
        x = torch.nn.functional.dropout(x, drop, net.training).reshape(b * nq, t, -1)
        causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()
        for blk, (mk, mv) in zip(net["decoder"], memory_kv):
            q, k, v = blk["qkv"](blk["ln1"](x)).chunk(3, -1)  # (B*Q, t, d)
            x = x + torch.nn.functional.dropout(
                blk["out"](attend(q, k, v, causal, cfg.n_heads, drop)), drop, net.training
            )
            cq = blk["cq"](blk["lnc"](x)).reshape(b, nq * t, -1)  # (B, Q*t, d)
            cross = attend(cq, mk, mv, cross_mask, cfg.n_heads, drop).reshape(b * nq, t, -1)
            x = x + torch.nn.functional.dropout(blk["cout"](cross), drop, net.training)
            x = x + self._ffn(blk, x, drop)
        return net["dec_ln"](x).reshape(b, nq, t, -1)

    # ---- training ----------------------------------------------------------------------------
    def _loss(self, seqs):
        """Mean cross-entropy of every semantic-ID token of every next-item target in (U, T+1)."""
        import torch
        import torch.nn.functional as F

        seqs = seqs.to(self._item_tokens.device)
        inp, tgt = seqs[:, :-1], seqs[:, 1:]  # (U, T)
        u, t = inp.shape
        device = seqs.device
        memory, valid = self._encode(inp)
        tgt_tokens = self._item_tokens[tgt]  # (U, T, L+1)
        start = torch.zeros(u, t, 1, dtype=torch.long, device=device)
        dec_in = torch.cat([start, tgt_tokens[..., :-1]], 2)
        # target j may read the start slot and encoder outputs 0..j (memory slots 1..j+1)
        slots, targets = torch.arange(t + 1, device=device), torch.arange(t, device=device)
        allowed = slots[None, :] <= targets[:, None] + 1  # (T, 1+T)
        mask = (allowed[None] & valid[:, None, :]).repeat_interleave(dec_in.shape[2], 1)
        hidden = self._decode(dec_in, self._memory_kv(memory), mask[:, None])  # (U, T, L+1, d)
        has = tgt > 0
        loss = 0.0
        for level in range(len(self.vocab_)):
            logits = self._level_logits(hidden[..., level, :][has], level)
            loss = loss + F.cross_entropy(
                logits, tgt_tokens[..., level][has] - int(self.offsets_[level])
            )
        return loss / len(self.vocab_)

    def _fit(self, train, valid, options):
        import torch

        cfg = self.config
        self.embeddings_ = self._item_embeddings(train)
        warm = train.item_counts > 0
        if warm.sum() < 2:
            raise DataError("TIGER needs at least 2 items with training interactions")
        self.rqvae_ = train_rqvae(
            self.embeddings_[warm], cfg.rqvae_params(), seed=options.seed, threads=options.threads
        )
        ids, self.collision_rate_ = semantic_ids(self._quantise(self.embeddings_))
        vocab = [cfg.codebook_size] * cfg.n_levels + [
            max(cfg.codebook_size, int(ids[:, -1].max()) + 1)
        ]
        device = torch_device(options)
        amp = MixedPrecision(device, precision=options.precision)
        with seeded(options.seed):
            self.net_ = build_network(vocab, cfg).to(device)
            self._setup(ids, warm, vocab)  # after the network: its token table on the device
            opt = torch.optim.AdamW(
                self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
            )
            dp = DataParallel(self.net_, opt, seed=options.seed, amp=amp)
            table = training_sequences(train, cfg.max_len)  # (U, T+1) on the host
            seqs = torch.from_numpy(table)
            rng = np.random.default_rng(options.seed)

            def run_epoch(epoch: int) -> float:
                self.net_.train()
                total, n = torch.zeros((), dtype=torch.float64, device=device), 0
                for rows in dp.batches(len(seqs), cfg.batch_size, rng):
                    with amp.autocast():
                        loss = self._loss(seqs[rows])
                    dp.step(loss, int((table[rows, 1:] > 0).sum()))  # weight: its targets
                    total, n = total + loss.detach() * len(rows), n + len(rows)
                self.net_.eval()
                return dp.mean(total, n)  # read once per epoch

            fit_epochs(
                self,
                train,
                valid,
                options,
                run_epoch=run_epoch,
                module=self.net_,
            )
            self.net_.eval()

    def _texts_encoder(self):
        if getattr(self, "_encoder_obj", None) is None:
            self._encoder_obj = get_encoder(self.config.text_encoder)
        return self._encoder_obj

    def _item_embeddings(self, train) -> np.ndarray:
        """(n_items, D) text embeddings of the catalog (DataError when it has no text)."""
        cfg = self.config
        return item_embeddings(
            train,
            encoder=self._texts_encoder(),
            template=cfg.text_template,
            cache=cfg.text_cache,
            model=self.name,
        )

    def _quantise(self, embeddings: np.ndarray) -> np.ndarray:
        return encode_codes(self.rqvae_, embeddings, self.config.n_levels)

    # ---- cold items --------------------------------------------------------------------------
    def add_items(self, texts: list[str]) -> np.ndarray:
        """Give new items (no interactions) semantic IDs from their ``texts``; they become
        recommendable at once. Returns their indices (appended after the current items);
        histories passed afterwards need ``n_items_`` columns."""
        self._require_fitted()
        if not texts:
            return np.zeros(0, np.int64)
        emb = encode_cached(
            self._texts_encoder(), list(texts), embedding_cache(self.config.text_cache)
        )
        codes = self._quantise(emb)
        old = self.codes_
        both, _ = semantic_ids(np.r_[old[:, :-1], codes])  # old items keep their digits
        new = both[len(old) :]
        self._setup(np.r_[old, new], np.r_[self.warm_, np.zeros(len(new), bool)], self.vocab_)
        self.embeddings_ = np.r_[self.embeddings_, emb]
        first = self.n_items_
        self.n_items_ += len(new)
        return np.arange(first, self.n_items_)

    # ---- edited item text --------------------------------------------------------------------
    def text_codes(self, texts: list[str]) -> np.ndarray:
        """(len(texts), n_levels) codes the fitted quantiser gives each text (encoded now, not
        cached): the semantic ID an item would get, before its collision digit, if its text
        were each of ``texts``."""
        self._require_fitted()
        return self._quantise(self._texts_encoder().encode([str(t) for t in texts]))

    def with_item_codes(self, item: int, codes: np.ndarray) -> TIGER:
        """A copy sharing the network in which ``item``'s semantic ID is ``codes``
        (``n_levels`` ints, e.g. a row of :meth:`text_codes`) and the smallest collision digit
        no other item with those codes holds; every other item keeps its ID. This model is
        unchanged. A digit beyond the trained vocabulary is handled as a cold item's
        (:meth:`add_items`): its logit is 0 and a history reads it as the last trained digit.

        Raises:
            ConfigError: ``item`` out of range, or ``codes`` not ``n_levels`` codes in the
                codebooks.
        """
        self._require_fitted()
        codes = np.asarray(codes, np.int64).ravel()
        levels, size = self.config.n_levels, self.config.codebook_size
        if not 0 <= int(item) < len(self.codes_):
            raise ConfigError(f"item must be in 0..{len(self.codes_) - 1}, got {item!r}")
        if codes.shape != (levels,) or (codes < 0).any() or (codes >= size).any():
            raise ConfigError(
                f"codes must be {levels} integers in 0..{size - 1}, got {codes.tolist()}"
            )
        same = (self.codes_[:, :levels] == codes).all(axis=1)
        same[int(item)] = False
        taken = set(self.codes_[same, -1].tolist())
        digit = next(d for d in range(len(taken) + 1) if d not in taken)
        twin = copy.copy(self)
        new = self.codes_.copy()
        new[int(item)] = np.r_[codes, digit]
        twin._setup(new, self.warm_, self.vocab_)
        return twin

    # ---- scoring -----------------------------------------------------------------------------
    def _child_log_probs(self, logits, level: int, prefixes: np.ndarray):
        """logits (B, Q, V_level) after prefixes (Q,) or (B, Q) (indices into the trie level)
        -> (B, Q, W_level) log-probabilities of each child token (-inf: not a child): warm
        children by the decoder's softmax over them times their joint share, cold-only
        children by their item-count share (see :class:`Trie`)."""
        import torch
        import torch.nn.functional as F

        trie = self.trie_
        width = trie.children[level].shape[1]
        logits = F.pad(logits, (0, width - logits.shape[-1]))  # cold digits beyond V_L
        warm = torch.from_numpy(trie.warm_children[level][prefixes]).to(logits.device)
        lp = torch.log_softmax(logits.masked_fill(~warm, -torch.inf), -1)
        share = torch.from_numpy(trie.share[level][prefixes]).to(logits.device)
        return torch.where(warm, lp + share, share)

    def _prefix_logits(self, memory_kv, mem_mask) -> list:
        """Per level l: logits (B, len(needed[l]), V_l) of token l after every prefix scoring
        needs, decoded incrementally down the trie (each prefix's last token only; the self-
        attention keys and values of its ancestors are reused). Eval mode only."""
        import torch

        net, trie, heads = self.net_, self.trie_, self.config.n_heads
        b, out, past, prev_rows = mem_mask.shape[0], [], None, None
        for level in range(len(self.vocab_)):
            rows = trie.needed[level]
            if len(rows) == 0:
                break  # nothing below needs the decoder either
            tok = (
                np.zeros(len(rows), np.int64)
                if level == 0
                else trie.tokens[level][rows][:, -1] + self.offsets_[level - 1]
            )
            tok = torch.from_numpy(tok).to(mem_mask.device)
            x = net["emb"](tok).expand(b, -1, -1) + net["dec_pos"].weight[level]
            nq, d = x.shape[1], x.shape[2]
            up = np.searchsorted(prev_rows, trie.parent[level][rows]) if level else None
            new_past = []
            for i, (blk, (mk, mv)) in enumerate(zip(net["decoder"], memory_kv)):
                q, k, v = blk["qkv"](blk["ln1"](x)).chunk(3, -1)  # (B, Q, d)
                k, v = k[:, :, None], v[:, :, None]
                if level:
                    k, v = (
                        torch.cat([past[i][0][:, up], k], 2),
                        torch.cat([past[i][1][:, up], v], 2),
                    )
                new_past.append((k, v))  # (B, Q, level + 1, d)
                att = attend(
                    q.reshape(b * nq, 1, d),
                    k.reshape(b * nq, level + 1, d),
                    v.reshape(b * nq, level + 1, d),
                    None,
                    heads,
                    0.0,
                )
                x = x + blk["out"](att.reshape(b, nq, d))
                x = x + blk["cout"](attend(blk["cq"](blk["lnc"](x)), mk, mv, mem_mask, heads, 0.0))
                x = x + self._ffn(blk, x, 0.0)
            out.append(self._level_logits(net["dec_ln"](x), level))
            past, prev_rows = new_past, rows
        return out

    def _log_probs(self, seqs: np.ndarray, chunk: int = 128):
        """(B, n_items) torch log-probabilities of every item's semantic ID (trie-constrained),
        computed for ``chunk`` histories at a time (bounded memory)."""
        import torch

        with torch.no_grad():
            return torch.cat(
                [self._chunk_log_probs(seqs[lo : lo + chunk]) for lo in range(0, len(seqs), chunk)]
                or [torch.zeros(0, len(self.codes_), device=module_device(self.net_))]
            )

    def _chunk_log_probs(self, seqs: np.ndarray):
        import torch

        trie, last = self.trie_, len(self.vocab_) - 1
        device = module_device(self.net_)
        memory, valid = self._encode(torch.from_numpy(seqs).to(device))
        logits = self._prefix_logits(self._memory_kv(memory), valid[:, None, None, :])
        total = torch.zeros(len(seqs), len(self.codes_), device=device)
        for level in range(last + 1):
            rows = trie.branching[level]
            if len(rows) == 0:
                continue
            at = torch.from_numpy(np.searchsorted(trie.needed[level], rows)).to(device)
            lp = self._child_log_probs(logits[level][:, at], level, rows)  # (B, R, W)
            where = np.full(len(trie.tokens[level]), -1)
            where[rows] = np.arange(len(rows))
            items = np.flatnonzero(where[trie.prefix[level]] >= 0)
            slots = torch.from_numpy(where[trie.prefix[level][items]]).to(device)
            codes = torch.from_numpy(self.codes_[items, level]).to(device)
            total[:, torch.from_numpy(items).to(device)] += lp[:, slots, codes]
        return total

    def _score(self, histories, users):
        self.net_.eval()
        seqs = history_sequences(histories, self.config.max_len)
        return to_numpy(self._log_probs(seqs))

    # ---- beam search and generation ----------------------------------------------------------
    def recommend_beam(
        self,
        histories: sp.spmatrix,
        *,
        k: int = 10,
        beam_size: int | None = None,
        exclude_seen: bool = True,
        constrained: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per history by beam search over semantic-ID tokens.

        Args:
            histories: (B, n_items) time-valued history rows.
            k: items to return; beam_size: prefixes kept per step (default ``max(2k, 20)``).
            constrained: restrict every step to the prefix trie (TIGER's decoding). False lets
                the beam produce IDs that exist nowhere; those come back as item -1.

        Returns:
            ``(items, log_probs)``, both (B, k), best first; -1 / -inf fill unused slots.
        """
        import torch

        self._require_fitted()
        histories, _ = self._check_batch(histories, None)
        beam = beam_size or max(2 * k, 20)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or beam < 1:
            raise ConfigError(f"k and beam_size must be positive integers, got {k!r}, {beam!r}")
        seqs = history_sequences(histories, self.config.max_len)
        self.net_.eval()
        device = module_device(self.net_)
        with torch.no_grad():
            memory, valid = self._encode(torch.from_numpy(seqs).to(device))
            memory_kv, mem_mask = self._memory_kv(memory), valid[:, None, None, :]
            b, levels = len(seqs), len(self.vocab_)
            unseen = histories.toarray() <= 0  # (B, n_items)
            prefixes = np.zeros((b, 1, 0), np.int64)  # (B, W, l)
            scores = torch.zeros(b, 1, device=device)
            for level in range(levels):
                w = prefixes.shape[1]
                tokens = np.c_[
                    np.zeros((b * w, 1), np.int64),
                    prefixes.reshape(b * w, level) + self.offsets_[:level],
                ]
                tokens = torch.from_numpy(tokens.reshape(b, w, level + 1)).to(device)
                hidden = self._decode(tokens, memory_kv, mem_mask)[:, :, -1]
                logits = self._level_logits(hidden, level)  # (B, W, V)
                if constrained:  # dead beams (score -inf) may hold prefixes outside the trie
                    found = self.trie_.find(level, prefixes.reshape(b * w, level)).reshape(b, w)
                    lp = self._child_log_probs(logits, level, np.maximum(found, 0))
                    dead = torch.from_numpy(found < 0).to(device)
                    lp = lp.masked_fill(dead[..., None], -torch.inf)
                    if exclude_seen:  # never enter a branch whose items the user has all seen
                        open_ = self._unseen_children(unseen, level, np.maximum(found, 0))
                        lp = lp.masked_fill(~torch.from_numpy(open_).to(device), -torch.inf)
                else:
                    lp = torch.log_softmax(logits, -1)
                cand = (scores[..., None] + lp).reshape(b, -1)
                width = beam if level < levels - 1 else max(beam, k)
                top = torch.topk(cand, min(width, cand.shape[1]), dim=1)
                parent, token = np.divmod(to_numpy(top.indices), lp.shape[-1])
                prefixes = np.concatenate(
                    [np.take_along_axis(prefixes, parent[..., None], 1), token[..., None]], 2
                )
                scores = top.values
            items = self.trie_.items_of(prefixes.reshape(-1, levels)).reshape(b, -1)
        return self._top_items(histories, items, scores, k, exclude_seen)

    def _unseen_children(self, unseen: np.ndarray, level: int, found: np.ndarray) -> np.ndarray:
        """(B, W, W_level) bool: which children of the beams' prefixes ``found`` (B, W) still
        lead to an item the user has not seen (``unseen``: (B, n_items) bool)."""
        trie = self.trie_
        n_rows, width = trie.children[level].shape
        slot = trie.prefix[level] * width + self.codes_[:, level]  # (N,) (prefix, child) slot
        onehot = sp.csr_matrix(
            (np.ones(len(slot), np.float32), (np.arange(len(slot)), slot)),
            shape=(len(slot), n_rows * width),
        )
        counts = (sp.csr_matrix(unseen.astype(np.float32)) @ onehot).toarray()
        counts = counts.reshape(len(unseen), n_rows, width)
        return np.take_along_axis(counts, found[:, :, None], 1) > 0  # (B, W, W_level)

    def _top_items(self, histories, items, scores, k, exclude_seen):
        import torch

        scores = scores.detach().cpu().clone()  # (B, W): the last step works on the host
        scores[torch.from_numpy(items < 0)] = -torch.inf
        if exclude_seen:
            seen = np.take_along_axis(histories.toarray() > 0, np.maximum(items, 0), 1)
            scores[torch.from_numpy(seen & (items >= 0))] = -torch.inf
        kk = min(k, scores.shape[1])
        top = torch.topk(scores, kk, dim=1)
        out_items = np.take_along_axis(items, top.indices.numpy(), 1)
        out_scores = top.values.numpy().astype(np.float32)
        out_items = np.where(np.isfinite(out_scores), out_items, -1)
        pad = k - kk
        return (
            np.pad(out_items, ((0, 0), (0, pad)), constant_values=-1),
            np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf),
        )

    def generate(
        self,
        histories: sp.spmatrix,
        *,
        n_steps: int = 10,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
        beam_size: int | None = None,
    ) -> np.ndarray:
        """(B, n_steps) sampled continuations: each step draws the next item from the trie-
        constrained distribution over semantic IDs (only real items), or, with ``beam_size``,
        among the items a beam search of that width finds."""
        self._require_fitted()
        histories, _ = self._check_batch(histories, None)
        seqs = history_sequences(histories, self.config.max_len)

        def next_scores(window):
            import torch

            if beam_size is None:
                return self._log_probs(window)
            hist = _window_histories(window, self.n_items_)
            items, logp = self.recommend_beam(hist, k=beam_size, beam_size=beam_size)
            out = torch.full((len(window), self.n_items_), -1e9)
            rows = np.repeat(np.arange(len(window)), items.shape[1])
            ok = items.ravel() >= 0
            out[rows[ok], items.ravel()[ok]] = torch.from_numpy(logp.ravel()[ok])
            return out

        self.net_.eval()
        return continue_sequences(
            next_scores, seqs, n_steps=n_steps, temperature=temperature, top_k=top_k, seed=seed
        )

    # ---- persistence -------------------------------------------------------------------------
    def _state(self):
        return {
            **module_state(self.net_, "net."),
            **module_state(self.rqvae_, "rq."),
            "codes": self.codes_,
            "warm": self.warm_,
            "vocab": np.array(self.vocab_),
            "embeddings": self.embeddings_,
            "collision_rate": np.array(self.collision_rate_),
        }

    def _load_state(self, state):
        self.embeddings_ = np.asarray(state["embeddings"], np.float32)
        self.rqvae_ = build_rqvae(self.embeddings_.shape[1], self.config.rqvae_params())
        load_module_state(self.rqvae_, state, "rq.")
        self.rqvae_.eval()
        self.collision_rate_ = float(state["collision_rate"])
        self._setup(
            np.asarray(state["codes"], np.int64),
            np.asarray(state["warm"], bool),
            [int(v) for v in state["vocab"]],
        )
        self.net_ = build_network(self.vocab_, self.config)
        load_module_state(self.net_, state, "net.")
        self.net_.eval()


def _window_histories(window: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Padded sequences (B, L) back to time-valued history rows."""
    rows, cols = np.nonzero(window)
    return sp.csr_matrix(
        ((cols + 1).astype(np.float32), (rows, window[rows, cols] - 1)),
        shape=(len(window), n_items),
    )
