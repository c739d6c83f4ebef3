"""The hybrid (RRF of dense, BM25 and a collaborative model) under the shared contract."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.build import build_model
from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError
from genrec.pipelines.hybrid import Hybrid
from genrec.ranking import as_score_tensor, mask_seen
from genrec.retrieval import reciprocal_rank_fusion

from .contract import OPTIONS, ModelContract

TINY = {"text_encoder": "hashing", "text_cache": "off", "collaborative": "ease"}


class TestHybrid(ModelContract):
    model_cls = Hybrid
    config = TINY
    quality_floor = 0.95
    bad_configs = [
        {"collaborative": "nope"},
        {"collaborative": "hybrid"},
        {"rrf_k": -1.0},
        {"weights": (1.0, 1.0)},
        {"weights": (1.0, -1.0, 1.0)},
    ]


def test_scores_are_rrf_of_the_components_without_seen_items():
    world = planted_clusters(noise=2)
    model = build_model("hybrid", {**TINY, "weights": (1.0, 0.5, 2.0)}).fit(
        world.split.train, options=OPTIONS
    )
    histories = world.split.history("test").user_item_order[:6]
    parts = [
        mask_seen(as_score_tensor(m.score(histories)), histories).numpy() for m in model.components_
    ]
    expected = reciprocal_rank_fusion(parts, k=60, weights=[1.0, 0.5, 2.0])
    np.testing.assert_allclose(model.score(histories), expected, rtol=1e-6)


def test_text_only_by_default_and_collab_preset():
    assert Hybrid().config.collaborative == ""
    preset = Hybrid.Config.from_preset("collab")
    assert preset.collaborative == "ease" and len(preset.weights) == 3
    with pytest.raises(ConfigError, match="weights"):
        Hybrid(weights=(1.0, 1.0, 1.0))  # three weights but two components
    with pytest.raises(ConfigError, match="collaborative model"):
        Hybrid(collaborative="ease")  # a spec alone: genrec.build builds the part
