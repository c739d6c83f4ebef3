"""Exposure metrics against hand-computed values and an independent reading of each formula."""

import numpy as np
import pytest

from genrec.audit import AuditConfig
from genrec.audit.context import AuditContext
from genrec.audit.exposure import exposure_disparity, long_tail, run
from genrec.audit.world import audit_world
from genrec.models import Pop


def test_elliot_head_covers_the_share_of_interactions():
    counts = np.array([50, 30, 10, 5, 3, 2])  # cumulative share 0.5, 0.8, 0.9, ...
    assert long_tail(counts, how="elliot", head_share=0.8).tolist() == [
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert long_tail(counts, how="elliot", head_share=0.85).tolist() == [
        False,
        False,
        False,
        True,
        True,
        True,
    ]


def test_recbole_tail_is_the_least_popular_fraction():
    counts = np.array([1, 9, 5, 7, 3, 2, 8, 6, 4, 10])
    tail = long_tail(counts, how="recbole", tail_ratio=0.3)
    assert sorted(np.flatnonzero(tail).tolist()) == [0, 4, 5]  # counts 1, 3, 2


def test_exposure_disparity_zero_at_parity_and_one_when_tail_unseen():
    tail = np.array([False, True])
    assert exposure_disparity(np.array([[0, 1], [1, 0]]), tail) == pytest.approx(0.0)
    assert exposure_disparity(np.array([[0], [0]]), tail) == pytest.approx(1.0)


def test_popularity_model_shows_no_long_tail_and_high_gini():
    split = audit_world(seed=1)
    ctx = AuditContext(split, {"pop": "pop"}, lambda spec: Pop(), AuditConfig(k=5))
    m = run(ctx, "pop").metrics
    assert m["aplt@5"]["mean"] == 0.0  # the five most popular items are all short head
    assert m["gini@5"]["mean"] > 0.85
    assert m["exposure_disparity@5"]["mean"] == pytest.approx(1.0)
    # ARP by hand: mean training popularity of the 5 most popular unseen items per user
    ev = ctx.evaluation("pop")
    pop = split.train.item_counts
    assert m["arp@5"]["mean"] == pytest.approx(pop[ev.top_items[:, :5]].mean(1).mean())
    assert m["arp@5"]["ci_low"] <= m["arp@5"]["mean"] <= m["arp@5"]["ci_high"]


def test_pop_rsp_by_hand_on_two_users():
    from genrec.audit.exposure import _pop_rsp
    from genrec.data.dataset import Dataset

    data = Dataset.from_interactions(["a", "a", "b"], ["x", "y", "z"])
    tail = np.array([False, True, True])  # x head; y, z tail
    top = np.array([[2, -1], [0, 1]])  # a gets z; b gets x, y
    # head: shown 1 (x) / unseen head per user: a 0 (saw x), b 1 -> 1/1
    # tail: shown 2 (z, y) / unseen tail: a 1 (z), b 1 (y) -> 2/2  => equal, RSP 0
    assert _pop_rsp(top, np.array([0, 1]), tail, data) == pytest.approx(0.0)
