"""Consumer fairness: user groups, and the gap statistic against scipy directly."""

import numpy as np
import pytest
import scipy.stats

from genrec.audit import AuditConfig
from genrec.audit.context import AuditContext
from genrec.audit.fairness import run, user_groups
from genrec.audit.world import audit_world
from genrec.errors import DataError
from genrec.evaluation.stats import group_gap
from genrec.models import EASE


def test_group_gap_matches_welch_and_kruskal():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(1, 1, 40), rng.normal(0, 1, 30), rng.normal(0.5, 1, 20)
    two = group_gap({"a": a, "b": b}, seed=0)
    assert two["gap"] == pytest.approx(a.mean() - b.mean())
    assert two["p_value"] == pytest.approx(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert two["ci_low"] < two["gap"] < two["ci_high"]
    three = group_gap({"a": a, "b": b, "c": c}, seed=0)
    assert (three["high"], three["low"], three["test"]) == ("a", "b", "kruskal_wallis")
    assert three["p_value"] == pytest.approx(scipy.stats.kruskal(a, b, c).pvalue)


def test_group_gap_needs_two_groups():
    with pytest.raises(DataError, match="two groups"):
        group_gap({"a": np.ones(5), "b": np.ones(1)})


def test_groups_and_gap_on_the_synthetic_world():
    split = audit_world(seed=0)
    ctx = AuditContext(split, {"ease": "ease"}, lambda spec: EASE(), AuditConfig(k=5))
    groups = user_groups(ctx, np.arange(split.train.n_users))
    assert set(groups) == {"gender", "age", "occupation", "activity"}
    assert set(groups["age"]) <= {"<25", "25-34", "35-49", "50+"}
    assert (groups["activity"] == "active").mean() == pytest.approx(0.2, abs=0.1)
    finding = run(ctx, "ease")
    gap = finding.metrics["ndcg_gap@5[gender]"]
    f, m = finding.metrics["ndcg@5[gender=F]"]["mean"], finding.metrics["ndcg@5[gender=M]"]["mean"]
    assert gap["mean"] == pytest.approx(abs(f - m))
    assert 0 <= gap["p_value"] <= 1
