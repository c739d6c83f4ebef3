"""Semantic IDs on their own: the RQ-VAE quantiser, collision digits and the prefix trie."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.models.sequence.semantic_ids import (
    RQVAEParams,
    Trie,
    build_rqvae,
    collision_digits,
    encode_codes,
    quantise,
    semantic_ids,
    train_rqvae,
)

SMALL = RQVAEParams(n_levels=2, codebook_size=4, latent_dim=4, hidden=16, epochs=30, lr=3e-3)


def blobs(n_per: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """4 well-separated groups of 8-d embeddings and each row's group."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.eye(8)[:4]
    group = np.repeat(np.arange(4), n_per)
    return (centres[group] + rng.normal(scale=0.1, size=(len(group), 8))).astype(np.float32), group


def test_rqvae_first_level_codes_separate_the_groups():
    emb, group = blobs()
    rq = train_rqvae(emb, SMALL, seed=0)
    codes = encode_codes(rq, emb, SMALL.n_levels)
    assert codes.shape == (len(emb), 2) and codes.dtype == np.int64
    assert ((codes >= 0) & (codes < SMALL.codebook_size)).all()
    # one first-level code per group, distinct across groups: the same partition
    assert len({(g, c) for g, c in zip(group, codes[:, 0])}) == 4


def test_rqvae_is_deterministic_for_a_seed_and_leaves_torch_rng_alone():
    emb, _ = blobs()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = encode_codes(train_rqvae(emb, SMALL, seed=5), emb, 2)
    assert torch.equal(torch.get_rng_state(), before)
    b = encode_codes(train_rqvae(emb, SMALL, seed=5), emb, 2)
    np.testing.assert_array_equal(a, b)


def test_quantise_reconstructs_residuals_level_by_level():
    rq = build_rqvae(8, SMALL)
    z = torch.randn(10, SMALL.latent_dim)
    codes, quantised, loss = quantise(rq, z, SMALL.n_levels, 0.25)
    books = rq["codebooks"].weight.view(SMALL.n_levels, SMALL.codebook_size, -1)
    expected = books[0][codes[:, 0]] + books[1][codes[:, 1]]
    torch.testing.assert_close(quantised, expected)
    first = torch.cdist(z, books[0]).argmin(1)  # level 0: the nearest code of z itself
    torch.testing.assert_close(codes[:, 0], first)
    assert loss.ndim == 0 and float(loss.detach()) >= 0


def test_semantic_ids_are_unique_and_report_the_collision_rate():
    codes = np.array([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    ids, rate = semantic_ids(codes)
    assert len(np.unique(ids, axis=0)) == len(ids)
    np.testing.assert_array_equal(ids[:, :-1], codes)
    assert rate == pytest.approx(2 / 5)  # two rows repeat an earlier row's codes


def test_appended_rows_never_renumber_earlier_ones():
    old = np.array([[1, 2], [1, 2], [0, 0]])
    both = np.r_[old, [[1, 2], [0, 0]]]
    np.testing.assert_array_equal(collision_digits(both)[:3], collision_digits(old))
    np.testing.assert_array_equal(collision_digits(both)[3:], [2, 1])


def test_collision_digits_rank_items_within_a_tuple():
    codes = np.array([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    np.testing.assert_array_equal(collision_digits(codes), [0, 0, 1, 2, 0])


def test_trie_gives_cold_branches_their_item_share():
    codes = np.array([[0, 0], [0, 1], [1, 0]])  # item 1 is cold and shares prefix (0,) with 0
    trie = Trie(codes, np.array([True, False, True]), [2, 2])
    np.testing.assert_allclose(trie.share[0][0], [0.0, 0.0])  # both root children hold warm items
    np.testing.assert_allclose(trie.share[1][0], np.log([0.5, 0.5]))  # warm 0 and cold 1: halves
    assert trie.warm_children[1][0].tolist() == [True, False]
    assert [len(b) for b in trie.branching] == [1, 1]
    assert trie.leaf_items[trie.prefix[1][1], 1] == 1


def test_trie_lookups_match_a_dictionary():
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 5, (40, 3)), axis=0)  # distinct full IDs
    codes = codes[rng.permutation(len(codes))]
    trie = Trie(codes, np.ones(len(codes), bool), [5, 5, 5])
    queries = np.r_[rng.integers(0, 5, (200, 3)), [[7, 0, 0], [-1, 2, 2]]]  # out-of-range digits
    for level in range(3):
        known = {tuple(row): i for i, row in enumerate(trie.tokens[level].tolist())}
        expected = [known.get(tuple(row), -1) for row in queries[:, :level].tolist()]
        np.testing.assert_array_equal(trie.find(level, queries[:, :level]), expected)
    items = {tuple(row): i for i, row in enumerate(codes.tolist())}
    expected = [items.get(tuple(row), -1) for row in queries.tolist()]
    np.testing.assert_array_equal(trie.items_of(queries), expected)
    assert (trie.items_of(queries) >= 0).any() and (trie.items_of(queries) < 0).any()
