"""One seeded k-means for every model that clusters vectors.

:func:`kmeans` partitions the rows of ``points`` (n, d) into ``k`` clusters and returns
``(centroids (k, d), labels (n,))``. Two backends compute it:

* ``"faiss"``: ``faiss.Kmeans`` runs the ``iters`` Lloyd steps (every point used: no
  subsampling), when the ``faiss`` extra is installed;
* ``"numpy"``: Lloyd steps in numpy until the labels stop changing or ``iters`` steps.

Both start from the same k-means++ centroids, drawn by a numpy generator seeded with ``seed``
(faiss's own start, ``iters`` random points, fell into a poor local optimum on four
well-separated blobs in the tests, where k-means++ did not).

``backend="auto"`` (the default) takes faiss when it imports and numpy otherwise, so a model's
clustering, like its speed, depends on whether the extra is installed; each backend is
deterministic for a seed (faiss for a fixed thread count). Both end the same way, so the
contract holds for either: labels are each point's nearest centroid, except that a cluster
left empty takes the point farthest from its centroid among those not alone in theirs, and
the centroids are the means of their labelled points. Hence every cluster holds at least one
point when ``n >= k``. With ``n < k`` the first ``n`` centroids are the points themselves and
the others are randomly drawn points moved by a tiny seeded jitter (an RQ-VAE codebook larger
than its training set still gets distinct codes).

It lives on the ground floor (it needs only numpy, optionally faiss, and :mod:`genrec.errors`)
because models of different families use it: L-DiffRec clusters items before its per-cluster
auto-encoders, and the RQ-VAE of semantic IDs initialises its codebooks with it.

Example:
    >>> import numpy as np
    >>> points = np.array([[0.0, 0.0], [0.1, 0.0], [9.0, 9.0], [9.1, 9.0]])
    >>> centroids, labels = kmeans(points, 2, seed=0, backend="numpy")
    >>> bool(labels[0] == labels[1] != labels[2] == labels[3]), centroids.shape
    (True, (2, 2))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from genrec.errors import ConfigError, DataError, require

BACKENDS = ("auto", "faiss", "numpy")


class Clustering(NamedTuple):
    centroids: np.ndarray  # (k, d) float64: the means of the labelled points
    labels: np.ndarray  # (n,) int64 in 0..k-1


def kmeans(
    points, k: int, *, seed: int, iters: int = 50, backend: str = "auto", threads: int | None = None
) -> Clustering:
    """``k`` clusters of the rows of ``points`` (n, d); see the module docstring.

    Args:
        points: (n, d) finite numbers, n >= 1.
        k: clusters, a positive integer.
        seed: seeds the initial centroids (and the jitter when n < k).
        iters: Lloyd steps at most (a positive integer).
        backend: "auto", "faiss" or "numpy".
        threads: faiss's OpenMP threads during the call (restored after); None leaves them.

    Returns:
        ``Clustering(centroids (k, d), labels (n,))``.

    Raises:
        ConfigError: a bad ``k``, ``iters`` or ``backend``. DataError: ``points`` not a finite
        non-empty 2-D array. MissingExtraError: ``backend="faiss"`` without faiss installed.
    """
    points = _check(points, k, iters, backend)
    n = len(points)
    if n <= k:
        return _tiny(points, k, seed)
    if backend == "auto":
        backend = "faiss" if _faiss_available() else "numpy"
    start = _kmeans_plus_plus(points, k, np.random.default_rng(seed))
    if backend == "faiss":
        centroids = _faiss_lloyd(points, start, seed=seed, iters=iters, threads=threads)
    else:
        centroids = _numpy_lloyd(points, start, iters=iters)
    labels = _assign(points, centroids)
    return Clustering(_means(points, labels, k), labels)


def _check(points, k, iters, backend) -> np.ndarray:
    if backend not in BACKENDS:
        raise ConfigError(
            f"k-means backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}"
        )
    for name, value in (("k", k), ("iters", iters)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"k-means {name} must be a positive integer, got {value!r}")
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or len(array) == 0 or array.shape[1] == 0 or not np.isfinite(array).all():
        raise DataError(
            f"k-means needs a non-empty (n, d) array of finite numbers, got shape "
            f"{array.shape}{'' if np.isfinite(array).all() else ' with NaN or inf'}; "
            "drop or fill the bad rows first"
        )
    return array


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _tiny(points: np.ndarray, k: int, seed: int) -> Clustering:
    """n <= k: every point is its own cluster; the remaining centroids are jittered copies."""
    n, rng = len(points), np.random.default_rng(seed)
    extra = points[rng.integers(n, size=k - n)]
    scale = 1e-3 * max(float(np.abs(points).max()), 1e-6)
    extra = extra + scale * rng.standard_normal(extra.shape)
    return Clustering(np.r_[points, extra], np.arange(n, dtype=np.int64))


def _kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, d) k-means++ start: each next centroid drawn with probability ~ squared distance."""
    n = len(points)
    centroids = np.empty((k, points.shape[1]))
    centroids[0] = points[rng.integers(n)]
    d2 = ((points - centroids[0]) ** 2).sum(1)  # (n,) squared distance to the nearest centroid
    for c in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centroids[c] = points[rng.choice(n, p=p)]
        d2 = np.minimum(d2, ((points - centroids[c]) ** 2).sum(1))
    return centroids


def _faiss_lloyd(points, start, *, seed, iters, threads) -> np.ndarray:
    faiss = require("faiss", "faiss")
    x = np.ascontiguousarray(points, dtype=np.float32)
    before = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(threads)
    try:  # every point trains (no subsampling), no warning for few points per centroid
        km = faiss.Kmeans(
            x.shape[1],
            len(start),
            niter=iters,
            seed=int(seed) % (1 << 31),
            max_points_per_centroid=len(x),
            min_points_per_centroid=1,
            verbose=False,
        )
        km.train(x, init_centroids=np.ascontiguousarray(start, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(before)
    return np.asarray(km.centroids, np.float64)


def _numpy_lloyd(points, centroids, *, iters) -> np.ndarray:
    """Lloyd steps from ``centroids`` until the labels repeat (or ``iters`` steps)."""
    labels = np.full(len(points), -1)
    for _ in range(iters):
        new = _assign(points, centroids)
        if (new == labels).all():
            break
        labels, centroids = new, _means(points, new, len(centroids))
    return centroids


def _assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n,) nearest centroid of each point; a cluster left empty takes the point farthest
    from its own centroid among those not alone in their cluster."""
    k = len(centroids)
    d2 = (
        (points**2).sum(1)[:, None] - 2 * points @ centroids.T + (centroids**2).sum(1)[None]
    )  # (n, k)
    labels = d2.argmin(1).astype(np.int64)
    if len(points) < k:
        return labels
    rows = np.arange(len(points))
    for c in np.flatnonzero(np.bincount(labels, minlength=k) == 0):
        movable = np.bincount(labels, minlength=k)[labels] > 1
        labels[np.argmax(np.where(movable, d2[rows, labels], -np.inf))] = c
    return labels


def _means(points: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, d) mean of each cluster's points (a cluster without points: zeros)."""
    sums = np.zeros((k, points.shape[1]))
    np.add.at(sums, labels, points)
    counts = np.bincount(labels, minlength=k)[:, None]
    return sums / np.maximum(counts, 1)
