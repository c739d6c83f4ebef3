"""Shilling: fake profiles follow their recipe, a big attack moves the targets, the detector
sees obvious fakes."""

import numpy as np
import pytest

from genrec.audit import AuditConfig
from genrec.audit.context import AuditContext
from genrec.audit.shilling import (
    cells,
    choose_targets,
    detector_auc,
    fake_profiles,
    poisoned_split,
    run,
)
from genrec.audit.world import audit_world
from genrec.models import EASE


@pytest.fixture(scope="module")
def split():
    return audit_world(seed=2)


def test_ofat_grid_varies_one_factor_at_a_time():
    grid = cells(AuditConfig())
    assert grid[0] == ("bandwagon", 0.01, "random")
    assert len(grid) == 1 + 3 + 3 + 2
    assert all(sum(a != b for a, b in zip(c, grid[0])) == 1 for c in grid[1:])
    assert len(cells(AuditConfig(shilling_grid="full"))) == 4 * 4 * 3


@pytest.mark.parametrize("attack", ["random", "average", "bandwagon", "segment"])
def test_profiles_hold_targets_and_filler(split, attack):
    rng = np.random.default_rng(0)
    targets = choose_targets(split.train.item_counts, "unpopular", 3, rng)
    profiles = fake_profiles(attack, 4, targets, split.train, rng)
    filler = int(round(split.train.user_counts.mean()))
    for p in profiles:
        assert set(targets) <= set(p.tolist()) and len(set(p.tolist())) == len(p)
        assert len(p) == len(targets) + filler
    if attack == "bandwagon":  # the most popular non-target item is in every profile
        counts = split.train.item_counts.copy()
        counts[targets] = -1
        assert all(int(np.argmax(counts)) in p for p in profiles)


def test_target_choices(split):
    counts = split.train.item_counts
    rng = np.random.default_rng(0)
    popular = choose_targets(counts, "popular", 3, rng)
    unpopular = choose_targets(counts, "unpopular", 3, rng)
    assert counts[popular].min() > counts[unpopular].max()


def test_poisoned_split_appends_fake_users(split):
    profiles = [np.array([0, 1, 2]), np.array([3, 4])]
    poisoned = poisoned_split(split, profiles, np.random.default_rng(0))
    n = split.train.n_users
    assert poisoned.train.n_users == n + 2
    assert len(poisoned.train) == len(split.train) + 5
    assert len(poisoned.test) == len(split.test) and poisoned.test.users is poisoned.train.users
    assert poisoned.train.user_items[n].indices.tolist() == [0, 1, 2]


def test_detector_sees_identical_fakes(split):
    profiles = [np.arange(10, 40)] * 6  # copies of one template
    poisoned = poisoned_split(split, profiles, np.random.default_rng(0))
    assert detector_auc(poisoned.train, 6) > 0.95


def test_a_large_bandwagon_attack_pushes_unpopular_targets_into_ease_lists(split):
    cfg = AuditConfig(
        k=5,
        shilling_grid="full",
        shilling_attacks=("bandwagon",),
        shilling_sizes=(0.2,),
        shilling_targets=("unpopular",),
        n_targets=2,
    )
    ctx = AuditContext(split, {"ease": "ease"}, lambda spec: EASE(), cfg)
    m = run(ctx, "ease").metrics
    name = "bandwagon,20%,unpopular"
    assert (
        m[f"target_hr@5_attacked[{name}]"]["mean"] > m[f"target_hr@5_clean[{name}]"]["mean"] + 0.1
    )
    assert m[f"target_hr_shift@5[{name}]"]["ci_low"] > 0
    assert 0 <= m[f"detector_auc[{name}]"]["mean"] <= 1
