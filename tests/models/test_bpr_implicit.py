"""implicit's BPR-MF (``bpr-implicit``) under the shared contract."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.models import ImplicitBPR

from .contract import OPTIONS, ModelContract

pytest.importorskip("implicit")

TINY = {"dim": 16, "lr": 0.05, "reg": 0.01, "iterations": 60}


class TestImplicitBPR(ModelContract):
    model_cls = ImplicitBPR
    config = TINY
    quality_floor = 0.9
    stochastic = True
    bad_configs = [
        {"dim": 0},
        {"lr": 0.0},
        {"reg": -1.0},
        {"iterations": 0},
        {"fold_in_reg": 0.0},
    ]


def test_item_bias_column_and_unit_user_column():
    world = TestImplicitBPR().world()
    model = ImplicitBPR(TINY).fit(world.split.train, options=OPTIONS)
    assert model.item_factors_.shape == (world.split.train.n_items, TINY["dim"] + 1)
    np.testing.assert_array_equal(model.user_factors_[:, -1], 1.0)
    unknown = model.user_vectors(world.split.train.user_items[:3])
    np.testing.assert_array_equal(unknown[:, -1], 1.0)
