"""Candidate items from embeddings through an index, and recall against exact search."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError
from genrec.models import EASE, IALS
from genrec.options import RunOptions
from genrec.retrieval.candidates import CandidateIndex, factor_embeddings, recall_vs_exact

pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def embeddings():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(3000, 16)).astype(np.float32)
    users = rng.normal(size=(200, 16)).astype(np.float32)
    return users, items


def test_exact_and_flat_indexes_have_recall_one(embeddings):
    users, items = embeddings
    for kind in ("exact", "flat"):
        (row,) = recall_vs_exact(users, items, kind=kind, settings=[{}], k=10)
        assert row["recall"] == 1.0 and row["kind"] == kind


@pytest.mark.parametrize(
    "kind,build,settings",
    [
        ("ivf", {"nlist": 32}, [{"nprobe": 1}, {"nprobe": 8}, {"nprobe": 32}]),
        ("hnsw", {"M": 16, "ef_construction": 80}, [{"ef_search": 16}, {"ef_search": 256}]),
    ],
)
def test_recall_is_high_at_generous_settings_and_grows_with_them(embeddings, kind, build, settings):
    users, items = embeddings
    rows = recall_vs_exact(users, items, kind=kind, build=build, settings=settings, k=10)
    recalls = [r["recall"] for r in rows]
    assert recalls == sorted(recalls)  # more cells / a wider beam never finds less here
    assert recalls[-1] >= 0.95
    if kind == "ivf":
        assert recalls[0] < 0.9 and recalls[-1] == 1.0  # every cell probed: exhaustive


def test_seen_items_are_excluded_like_the_exact_top_k(embeddings):
    users, items = embeddings
    exact = CandidateIndex(items, "exact")
    top, _ = exact.search(users[:5], 10)
    seen = sp.csr_matrix(
        (np.ones(15), (np.repeat(np.arange(5), 3), top[:, :3].ravel())), shape=(5, len(items))
    )
    found, scores = CandidateIndex(items, "flat").search(users[:5], 10, exclude=seen)
    np.testing.assert_array_equal(found[:, :7], top[:, 3:])
    assert not any(set(f) & set(s.indices) for f, s in zip(found, seen))
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_candidates_of_a_factor_model_equal_its_own_top_k():
    world = planted_clusters(noise=2)
    model = IALS(dim=8, iterations=10).fit(world.split.train, options=RunOptions(seed=0, threads=1))
    users = np.arange(30)
    histories = world.split.train.user_items[users]
    user_vecs, item_vecs = factor_embeddings(model, histories, users=users)
    found, _ = CandidateIndex(item_vecs, "flat").search(user_vecs, 5, exclude=histories)
    want, _ = model.recommend(histories, users=users, k=5)
    assert (found == want).mean() > 0.95  # float32 FAISS vs numpy products: rare near-ties
    with pytest.raises(ConfigError, match="factor model"):
        factor_embeddings(EASE(reg=10.0).fit(world.split.train), histories)
