"""The one seeded k-means: both backends find well-separated blobs, and a seed fixes the result."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from genrec.errors import ConfigError, DataError
from genrec.kmeans import kmeans

HAS_FAISS = importlib.util.find_spec("faiss") is not None
BACKENDS = [
    "numpy",
    pytest.param(
        "faiss", marks=pytest.mark.skipif(not HAS_FAISS, reason="the faiss extra is not installed")
    ),
]


def blobs(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    truth = np.repeat(np.arange(4), 25)
    return centres[truth] + rng.normal(scale=0.5, size=(100, 2)), truth, centres


@pytest.mark.parametrize("backend", BACKENDS)
def test_well_separated_blobs_are_found(backend):
    points, truth, centres = blobs()
    centroids, labels = kmeans(points, 4, seed=3, backend=backend)
    assert labels.shape == (100,) and centroids.shape == (4, 2)
    assert len({(t, c) for t, c in zip(truth, labels)}) == 4  # the same partition, renamed
    for c in range(4):  # each centroid is the mean of its points, near a true centre
        np.testing.assert_allclose(centroids[c], points[labels == c].mean(0))
        assert np.linalg.norm(centres - centroids[c], axis=1).min() < 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_seed_gives_the_same_result(backend):
    points = np.random.default_rng(1).normal(size=(200, 5))  # no clear structure: init matters
    a = kmeans(points, 6, seed=7, backend=backend)
    b = kmeans(points, 6, seed=7, backend=backend)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)


def test_different_seeds_can_differ():
    points = np.random.default_rng(1).normal(size=(200, 5))
    results = {tuple(kmeans(points, 6, seed=s, iters=2, backend="numpy").labels) for s in range(5)}
    assert len(results) > 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_cluster_is_left_empty(backend):
    points = np.zeros((5, 2))  # all identical: every centroid coincides
    labels = kmeans(points, 3, seed=0, backend=backend).labels
    assert np.bincount(labels, minlength=3).min() >= 1


def test_fewer_points_than_clusters_gives_every_point_its_own_cluster():
    points = np.array([[0.0, 1.0], [2.0, 3.0]])
    centroids, labels = kmeans(points, 4, seed=0)
    np.testing.assert_array_equal(labels, [0, 1])
    np.testing.assert_array_equal(centroids[:2], points)
    assert len(np.unique(centroids, axis=0)) == 4  # the extra centroids are jittered copies


@pytest.mark.parametrize(
    "bad", [{"k": 0}, {"k": 2.5}, {"k": True}, {"iters": 0}, {"backend": "sklearn"}]
)
def test_bad_settings_name_the_value(bad):
    args = {"k": 2, "iters": 10, "backend": "numpy", **bad}
    with pytest.raises(ConfigError, match=repr(bad[next(iter(bad))]).strip("'")):
        kmeans(np.zeros((4, 2)), args.pop("k"), seed=0, **args)


@pytest.mark.parametrize("points", [np.zeros((0, 2)), np.zeros(3), np.array([[np.nan, 0.0]])])
def test_bad_points_raise_a_data_error(points):
    with pytest.raises(DataError, match="finite"):
        kmeans(points, 1, seed=0)
