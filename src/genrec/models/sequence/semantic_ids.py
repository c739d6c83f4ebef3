"""Semantic IDs for generative retrieval: an RQ-VAE quantiser, collision digits and the prefix
trie that constrains decoding to IDs that exist (Rajput et al., "Recommender Systems with
Generative Retrieval", NeurIPS 2023, Sec. 3.1; Lee et al., "Autoregressive Image Generation
using Residual Quantization", CVPR 2022, for residual quantisation).

The contract, for any model that names items by short code sequences instead of item ids:

1. :func:`train_rqvae` ``(embeddings (N, D) float32, RQVAEParams, seed=)`` -> an RQ-VAE (torch
   ``ModuleDict``: ``enc`` (D -> latent_dim), ``dec`` (latent_dim -> D), ``codebooks``
   (n_levels * codebook_size, latent_dim)), its codebooks initialised by residual k-means
   (:func:`genrec.kmeans.kmeans`), then trained with Adam on reconstruction + the codebook and
   commitment losses (straight-through estimator). :func:`build_rqvae` builds the same untrained
   module, e.g. to load saved weights into.
2. :func:`encode_codes` ``(rq, embeddings (N, D), n_levels)`` -> codes (N, n_levels) int64:
   at each level the nearest code of the residual left by the levels before it.
3. :func:`collision_digits` ``(codes (N, L))`` -> (N,) int64: each row's rank (by index)
   among the rows with the same codes, so ``np.c_[codes, digits]`` is unique per item;
   :func:`semantic_ids` appends it and reports the collision rate. Rows that come first keep
   their digits when rows are appended (new items never renumber old ones).
4. :class:`Trie` ``(ids (N, L + 1), warm (N,) bool, vocab)``: the prefix trie of the IDs, laid
   out level by level as arrays, for batched constrained decoding: which tokens may follow each
   prefix, the prefixes with more than one child (only those need a decoder), each child's
   share of its prefix's probability when its subtree holds only cold items (no training
   interactions), and batched lookups of prefixes and full IDs.

The RQ-VAE uses torch (imported when called); the digits and the trie are numpy only.

Example:
    >>> import numpy as np
    >>> emb = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    >>> params = RQVAEParams(n_levels=2, codebook_size=4, latent_dim=8, hidden=16, epochs=5)
    >>> rq = train_rqvae(emb, params, seed=0)
    >>> ids, rate = semantic_ids(encode_codes(rq, emb, params.n_levels))
    >>> ids.shape, len(np.unique(ids, axis=0))  # 2 codes + the collision digit; all distinct
    ((40, 3), 40)
    >>> trie = Trie(ids, np.ones(40, bool), [4, 4, int(ids[:, -1].max()) + 1])
    >>> bool((trie.items_of(ids) == np.arange(40)).all())
    True
"""

from __future__ import annotations

import dataclasses

import numpy as np

from genrec.errors import ConfigError
from genrec.kmeans import kmeans
from genrec.models.neural import seeded, shuffled_batches


@dataclasses.dataclass(frozen=True)
class RQVAEParams:
    """The RQ-VAE's shape and training (a model's config fills it; see TIGER's)."""

    n_levels: int = 3  # codebooks: codes per ID before the collision digit
    codebook_size: int = 32  # codes per codebook
    latent_dim: int = 32  # latent width
    hidden: int = 256  # MLP width (encoder in -> h -> h/2 -> latent, decoder mirrored)
    epochs: int = 300  # Adam epochs over the embeddings
    lr: float = 1e-3  # Adam learning rate
    commitment: float = 0.25  # beta: weight of the commitment loss
    batch_size: int = 1024  # embeddings per Adam step
    kmeans_iters: int = 20  # Lloyd steps of each level's k-means initialisation


# ---- the RQ-VAE -----------------------------------------------------------------------------
def build_rqvae(in_dim: int, params: RQVAEParams):
    """The untrained RQ-VAE for ``in_dim``-wide embeddings (float32 torch ModuleDict)."""
    import torch
    from torch import nn

    h, d = params.hidden, params.latent_dim
    return nn.ModuleDict(
        {
            "enc": nn.Sequential(
                nn.Linear(in_dim, h),
                nn.ReLU(),
                nn.Linear(h, h // 2),
                nn.ReLU(),
                nn.Linear(h // 2, d),
            ),
            "dec": nn.Sequential(
                nn.Linear(d, h // 2),
                nn.ReLU(),
                nn.Linear(h // 2, h),
                nn.ReLU(),
                nn.Linear(h, in_dim),
            ),
            "codebooks": nn.Embedding(params.n_levels * params.codebook_size, d),
        }
    ).to(torch.float32)


def quantise(rq, z, n_levels: int, beta: float):
    """Residual quantisation of latents z (N, d) -> codes (N, L), quantised (N, d) and the
    codebook + ``beta`` * commitment loss (a scalar tensor)."""
    import torch

    books = rq["codebooks"].weight.view(n_levels, -1, z.shape[1])  # (L, K, d)
    residual, quantised, loss, codes = z, torch.zeros_like(z), z.new_zeros(()), []
    for level in range(n_levels):
        code = torch.cdist(residual.detach(), books[level]).argmin(1)  # (N,)
        e = books[level][code]  # (N, d)
        loss = (
            loss
            + (residual.detach() - e).square().sum(1).mean()
            + beta * (residual - e.detach()).square().sum(1).mean()
        )
        quantised, residual = quantised + e, residual - e.detach()
        codes.append(code)
    return torch.stack(codes, 1), quantised, loss


def train_rqvae(
    embeddings: np.ndarray, params: RQVAEParams, *, seed: int, threads: int | None = None
):
    """An RQ-VAE fitted to the (N, D) ``embeddings``: residual k-means initialisation of the
    codebooks, then Adam on minibatches; deterministic for ``seed`` (the torch global RNG is
    restored afterwards). ``threads``: for faiss's k-means. Returns the module in eval mode."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(embeddings, np.float32))
    with seeded(seed):
        rq = build_rqvae(x.shape[1], params)
        with torch.no_grad():  # level by level: k-means of what the levels above left over
            residual = rq["enc"](x)
            books = rq["codebooks"].weight.view(params.n_levels, params.codebook_size, -1)
            for level in range(params.n_levels):
                centroids = kmeans(
                    residual.numpy(),
                    params.codebook_size,
                    seed=seed + level,
                    iters=params.kmeans_iters,
                    threads=threads,
                ).centroids
                books[level] = torch.from_numpy(centroids.astype(np.float32))
                residual = residual - books[level][torch.cdist(residual, books[level]).argmin(1)]
        opt = torch.optim.Adam(rq.parameters(), lr=params.lr)
        rng = np.random.default_rng(seed)
        for _ in range(params.epochs):
            for rows in shuffled_batches(len(x), params.batch_size, rng):
                z = rq["enc"](x[rows])
                _, zq, commit = quantise(rq, z, params.n_levels, params.commitment)
                recon = rq["dec"](z + (zq - z).detach())  # straight-through estimator
                loss = (recon - x[rows]).square().sum(1).mean() + commit
                opt.zero_grad()
                loss.backward()
                opt.step()
    return rq.eval()


def encode_codes(rq, embeddings: np.ndarray, n_levels: int) -> np.ndarray:
    """(N, n_levels) int64 codes of the (N, D) ``embeddings`` under the trained ``rq``."""
    import torch

    with torch.no_grad():
        z = rq["enc"](torch.from_numpy(np.ascontiguousarray(embeddings, np.float32)))
        return quantise(rq, z, n_levels, 0.0)[0].numpy()


# ---- unique IDs -----------------------------------------------------------------------------
def collision_digits(codes: np.ndarray) -> np.ndarray:
    """(N,) digit per row of ``codes`` (N, L): its rank (by index) among the rows sharing its
    code tuple (0 for the first of each tuple)."""
    _, group = np.unique(codes, axis=0, return_inverse=True)
    group = group.ravel()
    order = np.lexsort((np.arange(len(codes)), group))
    first = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
    rank = np.empty(len(codes), np.int64)
    rank[order] = np.arange(len(codes)) - np.repeat(first, np.diff(np.r_[first, len(codes)]))
    return rank


def semantic_ids(codes: np.ndarray) -> tuple[np.ndarray, float]:
    """Unique IDs (N, L + 1): ``codes`` (N, L) with the collision digit appended, and the
    collision rate (share of rows whose codes repeat an earlier row's, i.e. whose digit > 0)."""
    digits = collision_digits(codes)
    return np.c_[codes, digits], float((digits > 0).mean()) if len(codes) else 0.0


# ---- the prefix trie ------------------------------------------------------------------------
class Trie:
    """The prefix trie of the semantic IDs, laid out level by level for batching.

    Args:
        codes: (N, L + 1) int64, every item's unique ID (codes and collision digit).
        warm: (N,) bool, the items with training interactions.
        vocab: L + 1 token counts, one per level (a level's width grows to fit larger digits).

    Attributes, for level l (predicting token l): ``prefix[l]`` (N,) each item's length-l
    prefix index, ``tokens[l]`` (P_l, l) the prefixes, ``children[l]`` (P_l, W_l) which tokens
    follow each prefix, ``branching[l]`` the prefixes with >= 2 children (only those need the
    decoder), ``parent[l]`` (P_l,) each prefix's prefix one level up, ``needed[l]`` the
    branching prefixes and their ancestors, ``warm_children[l]`` (P_l, W_l) children whose
    subtree holds a warm item, ``share[l]`` (P_l, W_l) log-shares of the prefix's probability
    (-inf: no such child), and ``leaf_items`` (P_L, W_L) the item at each full ID (-1: none).
    Lookups: :meth:`find` (prefixes -> indices), :meth:`items_of` (full IDs -> items).
    """

    def __init__(self, codes: np.ndarray, warm: np.ndarray, vocab: list[int]):
        self.codes, self.warm, self.n_levels = codes, warm, codes.shape[1]
        self.prefix, self.children, self.tokens, self.branching = [], [], [], []
        for level in range(self.n_levels):
            tokens, inverse = np.unique(codes[:, :level], axis=0, return_inverse=True)
            inverse = inverse.ravel()
            width = max(vocab[level], int(codes[:, level].max()) + 1)  # cold digits may exceed
            children = np.zeros((len(tokens), width), bool)
            children[inverse, codes[:, level]] = True
            self.prefix.append(inverse)
            self.children.append(children)
            self.tokens.append(tokens)
            self.branching.append(np.flatnonzero(children.sum(1) >= 2))
        self.parent = [np.zeros(1, np.int64)]  # parent[l]: (P_l,) the prefix one level up
        for level in range(1, self.n_levels):
            parent = np.zeros(len(self.tokens[level]), np.int64)
            parent[self.prefix[level]] = self.prefix[level - 1]
            self.parent.append(parent)
        # prefixes whose decoder state scoring needs: the branching ones and their ancestors
        self.needed = [self.branching[-1]]
        for level in range(self.n_levels - 2, -1, -1):
            self.needed.insert(
                0, np.union1d(self.branching[level], self.parent[level + 1][self.needed[0]])
            )
        # cold-aware shares: a child whose subtree holds no warm item was never a training
        # target, so it gets its item-count share n(child) / n(prefix) of the prefix's mass; the
        # warm children share the rest by the decoder (log-share in share[l], -inf: no child)
        self.warm_children, self.share = [], []
        for level in range(self.n_levels):
            node = self.prefix[level + 1] if level + 1 < self.n_levels else np.arange(len(codes))
            n_node = np.bincount(node)
            warm_child = (np.bincount(node, weights=warm.astype(float)) > 0)[node]  # (N,)
            pre = self.prefix[level]
            n_pre = np.bincount(pre)
            n_warm_under = np.bincount(pre, weights=warm_child.astype(float), minlength=len(n_pre))
            log_share = np.log(np.where(warm_child, n_warm_under[pre], n_node[node]) / n_pre[pre])
            share = np.full(self.children[level].shape, -np.inf, np.float32)
            share[pre, codes[:, level]] = log_share
            warm_children = np.zeros_like(self.children[level])
            warm_children[pre[warm_child], codes[warm_child, level]] = True
            self.share.append(share)
            self.warm_children.append(warm_children)
        self.leaf_items = np.full(self.children[-1].shape, -1, np.int64)  # (P_L, W_L) item ids
        self.leaf_items[self.prefix[-1], codes[:, -1]] = np.arange(len(codes))
        # every code row as one int64 key (mixed radix), sorted once, for batched lookups
        self.radix = int(codes.max()) + 1
        if self.radix**self.n_levels >= 2**62:
            raise ConfigError(
                f"semantic IDs of {self.n_levels} codes up to {self.radix - 1} do "
                "not fit int64 keys; lower codebook_size or n_levels"
            )
        self.prefix_keys = [_row_keys(t, self.radix) for t in self.tokens]  # sorted: np.unique
        item_keys = _row_keys(codes, self.radix)
        self.item_order = np.argsort(item_keys)
        self.item_keys = item_keys[self.item_order]

    def find(self, level: int, prefixes: np.ndarray) -> np.ndarray:
        """Indices in ``tokens[level]`` of (M, level) prefixes; -1 where absent."""
        return _search(self.prefix_keys[level], prefixes, self.radix)

    def items_of(self, ids: np.ndarray) -> np.ndarray:
        """Item indices of (M, L) full semantic IDs; -1 for IDs that match no item."""
        pos = _search(self.item_keys, ids, self.radix)
        return np.where(pos >= 0, self.item_order[np.maximum(pos, 0)], -1)


def _row_keys(rows: np.ndarray, radix: int) -> np.ndarray:
    """(M,) int64 keys of (M, l) rows of digits in 0..radix-1, ordered like the rows (lexically)."""
    keys = np.zeros(len(rows), np.int64)
    for j in range(rows.shape[1]):  # over code positions, never over rows
        keys = keys * radix + rows[:, j]
    return keys


def _search(sorted_keys: np.ndarray, rows: np.ndarray, radix: int) -> np.ndarray:
    """Positions in ``sorted_keys`` of the keys of (M, l) ``rows``; -1 where absent (or where a
    digit is outside 0..radix-1)."""
    rows = np.asarray(rows, np.int64)
    valid = ((rows >= 0) & (rows < radix)).all(axis=1)
    keys = _row_keys(np.where(valid[:, None], rows, 0), radix)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), max(len(sorted_keys) - 1, 0))
    hit = valid & (len(sorted_keys) > 0) & (sorted_keys[pos] == keys)
    return np.where(hit, pos, -1)
