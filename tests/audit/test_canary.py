"""Canary exposure: a model that memorises co-occurrence gives an inserted canary's secret back,
popularity does not, and the exposure arithmetic matches a hand count."""

import numpy as np
import pytest

from genrec.audit import AuditConfig, canary
from genrec.audit.context import AuditContext
from genrec.audit.world import audit_world
from genrec.errors import ConfigError
from genrec.models import EASE, LLMRecommender, Pop


class _Fixed:
    """Scores item i as -i whatever the history (the secret's rank is known)."""

    def score(self, histories):
        return np.tile(-np.arange(10.0), (histories.shape[0], 1))


def test_exposure_by_hand():
    exp, rank = canary.exposure(_Fixed(), np.array([[0, 1, 2], [5, 6, 9]]), 10)
    assert rank.tolist() == [1.0, 8.0]  # 9 ranks last of the 8 items outside {5, 6}
    assert exp == pytest.approx([np.log2(8), 0.0])


def _run(build):
    ctx = AuditContext(
        audit_world(seed=0),
        {"m": "m"},
        lambda spec: build(),
        AuditConfig(k=5, canary_count=12, canary_length=6, canary_copies=(1, 3)),
    )
    return canary.run(ctx, "m")


def test_a_memorising_model_exposes_canaries_and_popularity_barely():
    ease = _run(lambda: EASE(reg=10.0)).metrics
    assert ease["exposure_gap[copies=3]"]["mean"] > 2.0
    assert ease["canary_hit@5[copies=3]"]["mean"] > ease["canary_hit@5[reference]"]["mean"]
    assert 0 < ease["canary_exposure[reference]"]["mean"] < 2.5
    pop = _run(Pop).metrics
    assert pop["exposure_gap[copies=3]"]["mean"] < ease["exposure_gap[copies=3]"]["mean"] - 1


def test_applies_and_config():
    assert "language model" in canary.applies(LLMRecommender(lm="fake"))
    assert canary.applies(EASE()) is None
    with pytest.raises(ConfigError, match="canary_copies"):
        AuditConfig(canary_copies=(0,))
