"""Vector indexes for maximum-inner-product search behind one small interface.

* :class:`VectorIndex` — the protocol: ``name``, ``dim``, ``ntotal``, ``add(vectors)``,
  ``search(queries, k) -> (scores, ids)`` (both (B, k), best first) and ``save(path)``.
* :class:`ExactIndex` — brute-force inner product in numpy: no dependencies, the default.
* :class:`FaissIndex` — a FAISS index (the ``faiss`` extra, ``pip install 'genrec[faiss]'``):
  ``"flat"`` (exact ``IndexFlatIP``), ``"hnsw"`` (``IndexHNSWFlat``: ``M``,
  ``ef_construction``, ``ef_search``), ``"ivf"`` (``IndexIVFFlat``: ``nlist``, ``nprobe``;
  trained on the first vectors added) or ``"ivfpq"`` (``IndexIVFPQ``: ``nlist``, ``m``,
  ``nbits``, ``nprobe``, optional exact re-ranking of ``refine`` x k candidates; trained on the
  first vectors added).
* :func:`build_index` — one factory for all of them; :func:`load_index` reads a saved one;
  :func:`recall_at_k` compares approximate ids with exact ones.

Indexes are saved as plain files (``.npz`` for the exact index, FAISS's own format otherwise),
never pickles. FAISS runs with ``threads`` OpenMP threads (default 1: see RUNTIME_NOTES).

Example:
    >>> rng = np.random.default_rng(0)
    >>> vectors = rng.normal(size=(100, 8)).astype(np.float32)
    >>> index = build_index("exact", 8)
    >>> index.add(vectors)
    >>> scores, ids = index.search(vectors[:2], k=3)
    >>> ids.shape, recall_at_k(ids, ids)
    ((2, 3), 1.0)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from genrec.errors import ArtifactError, ConfigError, DataError, require
from genrec.io import atomic_write

KINDS = ("exact", "flat", "hnsw", "ivf", "ivfpq")
# ef_construction 200 (FAISS's own default is 40), measured by `benchmarks/retrieval.py --only
# hnsw-build` (BENCHMARKS.md, HNSW efConstruction): at the default ef_search 64 and M 32, recall@10
# against exact search on 20,000 MiniLM text vectors is 0.678 / 0.900 / 0.932 / 0.981 for
# efConstruction 16 / 40 / 80 / 200, and on 100,000 of them 0.814 (40) against 0.957 (200); only
# 200 reaches 0.95. It costs 3.6x (20,000) to 5.6x (100,000) the build time of 40 (24 s and 136 s,
# one thread), where 40 would need ef_search 512, 6x slower queries, for the same recall. On the
# 1,682 ML-100K items every value gives recall@10 0.998 and builds in under a second.
_PARAMS = {  # kind -> allowed parameters and their defaults
    "exact": {},
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 200, "ef_search": 64},
    "ivf": {"nlist": 256, "nprobe": 16},
    "ivfpq": {"nlist": 256, "m": 48, "nbits": 8, "nprobe": 16, "refine": 0},
}
_TRAINED = ("ivf", "ivfpq")  # kinds built (and trained) on the first vectors added


@runtime_checkable
class VectorIndex(Protocol):
    """Maximum-inner-product search over added vectors (ids are insertion positions)."""

    name: str
    dim: int

    @property
    def ntotal(self) -> int: ...

    def add(self, vectors: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, path: str | os.PathLike) -> Path: ...


def _as_matrix(vectors, dim: int, what: str) -> np.ndarray:
    """(N, dim) C-contiguous float32, or a DataError saying what is wrong."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise DataError(
            f"{what} must have shape (n, {dim}) for this {dim}-d index, got {np.shape(vectors)}"
        )
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise DataError(
            f"{bad} of the {what} contain NaN or infinite values; encode them again "
            "or drop them before indexing"
        )
    return np.ascontiguousarray(array)


def _check_k(k, ntotal: int) -> int:
    if ntotal == 0:
        raise DataError("the index is empty; add vectors before searching")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= ntotal:
        raise ConfigError(
            f"k must be an integer in 1..{ntotal} (the vectors in the index), got {k!r}"
        )
    return int(k)


class ExactIndex:
    """Exact inner-product search in numpy, ties broken by the smaller id.

    ``float64=True`` computes the products in double precision: then a query's scores do not
    depend on the other queries of its batch (float32 BLAS may sum in another order for another
    batch shape), which rank-based consumers such as fusion need.
    """

    def __init__(self, dim: int, *, batch_size: int = 1024, float64: bool = False):
        self.dim, self.batch_size = _check_dim(dim), batch_size
        self.name = "exact"
        self._dtype = np.float64 if float64 else np.float32
        self._vectors = np.zeros((0, self.dim), self._dtype)

    @property
    def ntotal(self) -> int:
        return len(self._vectors)

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors

    def add(self, vectors: np.ndarray) -> None:
        vectors = _as_matrix(vectors, self.dim, "vectors").astype(self._dtype)
        self._vectors = np.concatenate([self._vectors, vectors])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = _check_k(k, self.ntotal)
        queries = _as_matrix(queries, self.dim, "queries")
        scores = np.empty((len(queries), k), np.float32)
        ids = np.empty((len(queries), k), np.int64)
        for lo in range(0, len(queries), self.batch_size):
            block = (
                queries[lo : lo + self.batch_size].astype(self._dtype) @ self._vectors.T
            )  # (b, N)
            scores[lo : lo + len(block)], ids[lo : lo + len(block)] = _top_k(block, k)
        return scores, ids

    def save(self, path: str | os.PathLike) -> Path:
        vectors = self._vectors
        return atomic_write(path, lambda f: np.savez(f, kind=np.array("exact"), vectors=vectors))

    @classmethod
    def from_vectors(cls, vectors: np.ndarray) -> ExactIndex:
        """An index holding ``vectors`` (their dtype, float32 or float64, kept)."""
        vectors = np.asarray(vectors)
        index = cls(vectors.shape[1], float64=vectors.dtype == np.float64)
        index.add(vectors)
        return index


def _top_k(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` per row of (b, N) scores, best first; equal scores: smaller id first."""
    if k < block.shape[1]:
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]  # (b, k) unordered
        # a tie at the cut-off could leave out a smaller id: take every item scoring >= the kth
        kth = np.take_along_axis(block, part, axis=1).min(axis=1, keepdims=True)
        if ((block >= kth).sum(axis=1) > k).any():
            part = np.argsort(-block, axis=1, kind="stable")[:, :k]
    else:
        part = np.broadcast_to(np.arange(block.shape[1]), block.shape)
    values = np.take_along_axis(block, part, axis=1)
    order = np.lexsort((part, -values), axis=1) if values.size else np.zeros_like(part)
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(part, order, axis=1)


class FaissIndex:
    """A FAISS inner-product index of kind ``"flat"``, ``"hnsw"`` or ``"ivfpq"``."""

    def __init__(self, kind: str, dim: int, *, threads: int = 1, **params):
        self.faiss = require("faiss", "faiss")
        self.dim, self.name, self.threads = _check_dim(dim), kind, _check_threads(threads)
        self.params = {**_PARAMS[kind], **params}
        self._index = None if kind in _TRAINED else self._make()

    def _make(self, train: np.ndarray | None = None):
        faiss, p = self.faiss, self.params
        if self.name == "flat":
            return faiss.IndexFlatIP(self.dim)
        if self.name == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, p["M"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction, index.hnsw.efSearch = p["ef_construction"], p["ef_search"]
            return index
        if self.name == "ivf":
            return self._make_ivf(train)
        need = max(p["nlist"], 2 ** p["nbits"])
        if len(train) < need:
            raise DataError(
                f"IVF-PQ with nlist={p['nlist']} and nbits={p['nbits']} trains on "
                f"the first vectors added and needs at least {need} of them, got "
                f"{len(train)}; add more vectors at once or lower nlist / nbits"
            )
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFPQ(
            quantizer, self.dim, p["nlist"], p["m"], p["nbits"], faiss.METRIC_INNER_PRODUCT
        )
        index.nprobe = p["nprobe"]  # faiss's Python wrappers keep the quantizer alive
        if p["refine"]:
            index = faiss.IndexRefineFlat(index)  # re-rank refine * k candidates exactly
            index.k_factor = float(p["refine"])
        index.train(train)
        return index

    def _make_ivf(self, train: np.ndarray):
        """An IVF-Flat index: ``nlist`` k-means cells, ``nprobe`` of them searched exactly."""
        faiss, p = self.faiss, self.params
        if len(train) < p["nlist"]:
            raise DataError(
                f"IVF with nlist={p['nlist']} trains on the first vectors added and needs at "
                f"least {p['nlist']} of them, got {len(train)}; add more vectors at once or "
                "lower nlist"
            )
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, p["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.nprobe = p["nprobe"]
        index.cp.seed = 1234  # k-means initialisation: the same cells every build
        index.train(train)
        return index

    @property
    def ntotal(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        vectors = _as_matrix(vectors, self.dim, "vectors")
        self.faiss.omp_set_num_threads(self.threads)
        if self._index is None:
            self._index = self._make(vectors)
        self._index.add(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = _check_k(k, self.ntotal)
        queries = _as_matrix(queries, self.dim, "queries")
        self.faiss.omp_set_num_threads(self.threads)
        scores, ids = self._index.search(queries, k)
        return scores.astype(np.float32), ids.astype(np.int64)

    def set_search_params(self, **params) -> None:
        """Change ``ef_search`` (HNSW), ``nprobe`` (IVF) or ``nprobe`` / ``refine`` (IVF-PQ) of a
        built index."""
        _check_params(self.name, params, search_only=True)
        self.params.update(params)
        if self._index is None:
            return
        if "ef_search" in params:
            self._index.hnsw.efSearch = params["ef_search"]
        if "refine" in params and not isinstance(self._index, self.faiss.IndexRefineFlat):
            raise ConfigError("refine can only be changed on an IVF-PQ index built with refine > 0")
        if "refine" in params:
            self._index.k_factor = float(params["refine"])
        if "nprobe" in params:
            self.faiss.extract_index_ivf(self._index).nprobe = params["nprobe"]

    def save(self, path: str | os.PathLike) -> Path:
        if self._index is None:
            raise DataError(
                "the index is empty (IVF-PQ is built on the first add); add vectors before saving"
            )
        data = self.faiss.serialize_index(self._index)
        return atomic_write(path, data.tobytes())


def build_index(kind: str = "exact", dim: int = 384, *, threads: int = 1, **params) -> VectorIndex:
    """An empty inner-product index.

    Args:
        kind: ``"exact"`` (numpy), ``"flat"``, ``"hnsw"``, ``"ivf"`` or ``"ivfpq"`` (FAISS).
        dim: vector length.
        threads: OpenMP threads FAISS may use.
        params: ``M``, ``ef_construction``, ``ef_search`` (hnsw); ``nlist``, ``m``, ``nbits``,
            ``nprobe``, ``refine`` (ivfpq); ``nlist``, ``nprobe`` (ivf); defaults in
            ``_PARAMS``.

    Raises:
        ConfigError: an unknown kind or parameter, or a bad value.
        MissingExtraError: a FAISS kind without faiss installed.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose from {', '.join(KINDS)}")
    _check_params(kind, params)
    if kind == "ivfpq" and dim % params.get("m", _PARAMS["ivfpq"]["m"]):
        raise ConfigError(
            f"IVF-PQ needs dim ({dim}) divisible by m "
            f"({params.get('m', _PARAMS['ivfpq']['m'])}); pick m dividing {dim}"
        )
    if kind == "exact":
        _check_threads(threads)
        return ExactIndex(dim)
    return FaissIndex(kind, dim, threads=threads, **params)


def load_index(path: str | os.PathLike, *, threads: int = 1) -> VectorIndex:
    """Read an index written by ``save``: an ``.npz`` exact index or a FAISS index file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"no index file at {path}") from None
    if raw[:2] == b"PK":  # a zip: the exact index's npz
        with np.load(path, allow_pickle=False) as npz:
            return ExactIndex.from_vectors(npz["vectors"])
    faiss = require("faiss", "faiss")
    try:
        inner = faiss.deserialize_index(np.frombuffer(raw, np.uint8))
    except RuntimeError as exc:
        raise ArtifactError(f"{path} is not a FAISS index file ({exc})") from None
    kind = (
        "hnsw"
        if isinstance(inner, faiss.IndexHNSW)
        else "flat"
        if isinstance(inner, faiss.IndexFlat)
        else "ivf"
        if isinstance(inner, faiss.IndexIVFFlat)
        else "ivfpq"
    )
    index = FaissIndex(kind, inner.d, threads=threads)
    index._index = inner
    return index


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean share of each row's exact top-k ids found in its approximate top-k, k from
    ``exact_ids``' width (ids < 0, FAISS's "no result", never match).

    >>> recall_at_k(np.array([[1, 2, 9]]), np.array([[2, 1, 3]]))
    0.6666666666666666
    """
    approx, exact = np.asarray(approx_ids), np.asarray(exact_ids)
    if approx.ndim != 2 or exact.ndim != 2 or approx.shape[0] != exact.shape[0]:
        raise DataError(
            f"recall_at_k needs (B, k) id arrays with the same B, got {approx.shape} "
            f"and {exact.shape}"
        )
    k = exact.shape[1]
    hits = [(np.isin(e, a[a >= 0])).sum() for a, e in zip(approx[:, :k], exact)]
    return float(np.mean(hits) / k) if hits else float("nan")


def _check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ConfigError(f"index dim must be a positive integer, got {dim!r}")
    return int(dim)


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def _check_params(kind: str, params: dict, *, search_only: bool = False) -> None:
    allowed = (
        {"hnsw": ["ef_search"], "ivf": ["nprobe"], "ivfpq": ["nprobe", "refine"]}.get(kind, [])
        if search_only
        else list(_PARAMS[kind])
    )
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {unknown} for a {kind!r} index; allowed: {allowed or 'none'}"
        )
    for key, value in params.items():
        low = 0 if key == "refine" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"index parameter {key} = {value!r} must be an integer >= {low}")
    if "nbits" in params and params["nbits"] > 16:
        raise ConfigError(f"nbits = {params['nbits']} is too large; use 4..16 (8 is usual)")
