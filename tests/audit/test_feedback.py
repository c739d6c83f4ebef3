"""Feedback loops: the choice model, homogenisation, and a loop run end to end."""

import numpy as np
import pytest

from genrec.audit import AuditConfig
from genrec.audit.context import AuditContext
from genrec.audit.feedback import choose, homogenisation, run
from genrec.audit.world import audit_world
from genrec.build import audit_model
from genrec.models import EASE, Pop


def test_choice_follows_the_position_discount():
    top = np.tile(np.array([[7, 8, 9]]), (20000, 1))
    picked = choose(top, np.random.default_rng(0))
    w = 1 / np.log2(np.arange(2, 5))
    share = np.array([(picked == i).mean() for i in (7, 8, 9)])
    assert share == pytest.approx(w / w.sum(), abs=0.01)
    assert choose(np.array([[4, -1, -1]]), np.random.default_rng(0)).tolist() == [4]


def test_homogenisation_of_disjoint_and_equal_lists():
    assert (
        homogenisation(np.array([[0, 1], [2, 3]]), np.random.default_rng(0), pairs=4).tolist()
        == [0.0] * 4
    )
    half = homogenisation(np.array([[0, 1], [1, 2]]), np.random.default_rng(0), pairs=2)
    assert half.tolist() == [1 / 3, 1 / 3]


def test_popularity_loop_runs_and_records_every_round():
    split = audit_world(seed=6)
    ctx = AuditContext(split, {"pop": "pop"}, lambda spec: Pop(), AuditConfig(k=5, rounds=2))
    finding = run(ctx, "pop")
    m = finding.metrics
    for r in range(3):
        assert f"gini@5[round={r}]" in m and f"homogenisation@5[round={r}]" in m
    assert m["gini_change@5"]["mean"] == pytest.approx(
        m["gini@5[round=2]"]["mean"] - m["gini@5[round=0]"]["mean"]
    )
    assert m["homogenisation@5[round=0]"]["mean"] > 0.3  # everyone sees nearly the same list
    assert finding.settings["rounds"] == 2


def test_ease_llm_loops_on_the_lm_sample_for_lm_rounds(monkeypatch):
    split = audit_world(seed=6)
    built, fitted_on = [], []
    fit = EASE._fit
    monkeypatch.setattr(
        EASE, "_fit", lambda self, train, *a: (fitted_on.append(len(train)), fit(self, train, *a))
    )

    def build(spec):  # ease+llm over the fake language model, each model kept
        built.append(audit_model(spec, {"llm.lm": "fake", "fusion_weight": 1.0}))
        return built[-1]

    cfg = AuditConfig(k=5, rounds=3, lm_rounds=1, lm_users=7)
    ctx = AuditContext(split, {"ease+llm": "ease+llm"}, build, cfg)
    finding = run(ctx, "ease+llm")
    m = finding.metrics
    assert finding.settings["rounds"] == 1 and finding.settings["users"] == 7
    assert "lm_rounds=1" in finding.settings["user_sample"]
    assert "ndcg@5[round=1]" in m and "ndcg@5[round=2]" not in m
    assert all(np.isfinite(m[f"{name}_change@5"]["mean"]) for name in ("gini", "coverage"))
    # the EASE inside the refitted pipeline learned one accepted item per sampled user
    assert fitted_on == [len(split.train), len(split.train) + 7]
    assert not np.allclose(built[-1].retriever.weights_, built[0].retriever.weights_)
