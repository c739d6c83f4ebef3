"""EASE under the shared contract, plus its closed form against a naive solve."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError, DataError
from genrec.models import EASE
from genrec.models.classic.ease import (
    _mirror_upper,
    available_memory_bytes,
    ease_fit_bytes,
    ease_weights,
    spd_inverse_inplace,
)

from .contract import ModelContract


class TestEASE(ModelContract):
    model_cls = EASE
    config = {"reg": 10.0}
    quality_floor = 0.95
    bad_configs = [{"reg": 0.0}, {"reg": -1.0}, {"max_items": 0}, {"memory_gb": 0.0}]


def test_default_reg_is_the_validation_tuned_value():
    assert EASE().config.reg == 300.0


def test_diagonal_is_zero():
    world = planted_clusters(noise=3)
    model = EASE(reg=5.0).fit(world.split.train)
    assert model.weights_.shape == (60, 60)
    assert np.all(model.weights_.diagonal() == 0)


def test_matches_naive_per_column_ridge_solve():
    """diag(B) = 0 makes column j a ridge regression of x_j on the other columns."""
    rng = np.random.default_rng(3)
    x = (rng.random((30, 7)) < 0.4).astype(np.float64)
    reg = 2.5
    naive = np.zeros((7, 7))
    for j in range(7):
        others = [c for c in range(7) if c != j]
        a = x[:, others]
        naive[others, j] = np.linalg.solve(a.T @ a + reg * np.eye(6), a.T @ x[:, j])
    import scipy.sparse as sp

    np.testing.assert_allclose(ease_weights(sp.csr_matrix(x), reg=reg), naive, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 5, 60])
def test_spd_inverse_is_the_inverse_written_over_its_input(n):
    """Cholesky inverse in place against numpy's general inverse."""
    rng = np.random.default_rng(n)
    x = rng.random((n + 3, n))
    a = x.T @ x + 0.5 * np.eye(n)
    expected = np.linalg.inv(a)
    out = spd_inverse_inplace(a)
    assert out is a
    np.testing.assert_allclose(out, expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(out, out.T)


@pytest.mark.parametrize("block", [1, 3, 7, 8])
def test_mirror_copies_the_upper_triangle_down_block_by_block(block):
    a = np.triu(np.arange(49.0).reshape(7, 7))
    _mirror_upper(a, block=block)
    np.testing.assert_array_equal(a, np.triu(a) + np.triu(a, 1).T)


def test_spd_inverse_of_an_indefinite_matrix_is_a_data_error():
    with pytest.raises(DataError, match="positive definite"):
        spd_inverse_inplace(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_scores_are_history_times_weights():
    world = planted_clusters(noise=2)
    model = EASE(reg=5.0).fit(world.split.train)
    histories = world.split.train.user_items[:4]
    np.testing.assert_allclose(
        model.score(histories), histories.toarray() @ model.weights_, rtol=1e-5, atol=1e-6
    )


def test_too_many_items_is_a_config_error_with_the_fix():
    world = planted_clusters()
    with pytest.raises(ConfigError, match="max_items") as err:
        EASE(max_items=50).fit(world.split.train)
    assert "60" in str(err.value) and "k-core" in str(err.value)


def test_refuses_above_the_memory_it_may_use_naming_need_have_and_alternatives():
    """60 items need 12 * 60^2 bytes = 43.2 kB; a limit of 30 kB is refused before any work."""
    world = planted_clusters()
    with pytest.raises(ConfigError) as err:
        EASE(memory_gb=30e-6).fit(world.split.train)
    message = str(err.value)
    assert "0.0432 MB" in message and "0.03 MB" in message  # needed, allowed
    assert "60 items" in message and "ials" in message and "subset of items" in message
    assert ease_fit_bytes(60) == 43_200


def test_fits_when_the_memory_limit_is_enough():
    world = planted_clusters()
    model = EASE(reg=10.0, memory_gb=1e-3).fit(world.split.train)
    assert model.weights_.shape == (60, 60)


def test_available_memory_is_read_from_the_machine():
    assert available_memory_bytes() > 0
