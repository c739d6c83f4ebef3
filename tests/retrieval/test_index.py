"""Vector indexes: exact numpy and FAISS flat agree, HNSW / IVF-PQ reach high recall on
clustered data, bad input raises genrec errors, save -> load searches identically."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.errors import ConfigError, DataError
from genrec.retrieval import ExactIndex, build_index, load_index, recall_at_k


def clustered(n: int = 3000, dim: int = 32, *, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres: structure an ANN index can use (unlike pure noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))
    x = centres[rng.integers(0, 50, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    x = clustered()
    return x[:2800], x[2800:]  # base, queries


def test_exact_matches_brute_force(data):
    base, queries = data
    index = build_index("exact", base.shape[1])
    index.add(base[:1000])
    index.add(base[1000:])
    assert index.ntotal == len(base)
    scores, ids = index.search(queries, k=10)
    full = queries @ base.T
    np.testing.assert_array_equal(ids, np.argsort(-full, axis=1, kind="stable")[:, :10])
    np.testing.assert_allclose(scores, np.take_along_axis(full, ids, axis=1), rtol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_exact_ties_break_by_smaller_id():
    index = ExactIndex(2)
    index.add(np.array([[1, 0], [0, 1], [1, 0], [1, 0]], np.float32))
    _, ids = index.search(np.array([[1, 0]], np.float32), k=2)
    assert ids.tolist() == [[0, 2]]


def test_faiss_flat_equals_exact(data):
    base, queries = data
    exact, flat = build_index("exact", 32), build_index("flat", 32)
    exact.add(base)
    flat.add(base)
    _, e_ids = exact.search(queries, k=10)
    f_scores, f_ids = flat.search(queries, k=10)
    assert recall_at_k(f_ids, e_ids) == 1.0
    assert f_ids.dtype == np.int64 and f_scores.dtype == np.float32


@pytest.mark.parametrize(
    "kind,params,floor",
    [
        ("hnsw", {"M": 16, "ef_construction": 40, "ef_search": 64}, 0.95),
        ("ivfpq", {"nlist": 16, "m": 8, "nbits": 6, "nprobe": 8, "refine": 10}, 0.95),
        ("ivf", {"nlist": 16, "nprobe": 8}, 0.95),
    ],
)
def test_approximate_indexes_reach_high_recall(data, kind, params, floor):
    base, queries = data
    exact = build_index("exact", 32)
    exact.add(base)
    _, truth = exact.search(queries, k=10)
    index = build_index(kind, 32, threads=1, **params)
    index.add(base)
    _, ids = index.search(queries, k=10)
    assert recall_at_k(ids, truth) >= floor


def test_search_params_change_recall(data):
    base, queries = data
    exact = build_index("exact", 32)
    exact.add(base)
    _, truth = exact.search(queries, k=10)
    index = build_index("ivfpq", 32, nlist=128, m=8, nbits=6, nprobe=1, refine=10)
    index.add(base)
    low = recall_at_k(index.search(queries, k=10)[1], truth)
    index.set_search_params(nprobe=128)  # every list: only PQ error is left, refined away
    assert low < 0.9 and recall_at_k(index.search(queries, k=10)[1], truth) == 1.0
    with pytest.raises(ConfigError, match="ef_search"):
        index.set_search_params(ef_search=10)


@pytest.mark.parametrize(
    "kind,params",
    [
        ("exact", {}),
        ("flat", {}),
        ("hnsw", {"M": 8}),
        ("ivfpq", {"nlist": 8, "m": 4, "nbits": 6, "refine": 4}),
        ("ivf", {"nlist": 8, "nprobe": 2}),
    ],
)
def test_save_load_same_results(data, tmp_path, kind, params):
    base, queries = data
    index = build_index(kind, 32, **params)
    index.add(base)
    path = index.save(tmp_path / f"index.{kind}")
    loaded = load_index(path)
    assert loaded.ntotal == index.ntotal and loaded.dim == 32
    assert loaded.name == ("ivfpq" if kind == "ivfpq" else kind)
    for a, b in zip(index.search(queries, k=5), loaded.search(queries, k=5)):
        np.testing.assert_array_equal(a, b)
    assert path.read_bytes()[:2] != b"\x80\x04"  # never a pickle


def test_bad_input_raises():
    index = build_index("exact", 4)
    with pytest.raises(DataError, match="empty"):
        index.search(np.ones((1, 4)), k=1)
    with pytest.raises(DataError, match="NaN"):
        index.add(np.array([[1, np.nan, 0, 0]]))
    with pytest.raises(DataError, match=r"\(n, 4\)"):
        index.add(np.ones((2, 3)))
    index.add(np.eye(4))
    with pytest.raises(ConfigError, match="k must be"):
        index.search(np.ones((1, 4)), k=5)
    with pytest.raises(DataError, match="NaN"):
        index.search(np.full((1, 4), np.inf), k=1)
    with pytest.raises(DataError, match=r"\(n, 4\)"):
        index.search(np.ones((1, 5)), k=1)


def test_bad_configs_raise():
    with pytest.raises(ConfigError, match="hnsw"):
        build_index("annoy", 8)
    with pytest.raises(ConfigError, match="nprobe"):
        build_index("hnsw", 8, nprobe=3)
    with pytest.raises(ConfigError, match="divisible"):
        build_index("ivfpq", 10, m=4)
    with pytest.raises(ConfigError, match="M"):
        build_index("hnsw", 8, M=0)
    with pytest.raises(ConfigError, match="threads"):
        build_index("flat", 8, threads=0)
    small = build_index("ivfpq", 8, nlist=64, m=2)
    with pytest.raises(DataError, match="at least 256"):
        small.add(np.eye(8, dtype=np.float32))


def test_recall_at_k():
    assert recall_at_k(np.array([[1, 2], [3, -1]]), np.array([[2, 1], [3, 4]])) == 0.75
    with pytest.raises(DataError):
        recall_at_k(np.zeros((2, 3)), np.zeros((3, 3)))
