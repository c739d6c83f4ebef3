"""Synthetic worlds: the known answer is really the answer, and the same seed gives the same world."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.data.splits import leave_one_out_split
from genrec.data.synthetic import World, checkerboard, deterministic_sequences, planted_clusters
from genrec.errors import ConfigError

WORLDS = {
    "clusters": lambda seed=0: planted_clusters(seed=seed),
    "clusters-noise": lambda seed=0: planted_clusters(noise=3, seed=seed),
    "clusters-odd": lambda seed=0: planted_clusters(
        n_users=37, n_items=50, n_clusters=3, noise=2, seed=seed
    ),
    "checkerboard": lambda seed=0: checkerboard(seed=seed),
    "checkerboard-odd": lambda seed=0: checkerboard(n_users=23, n_items=27, block=7, seed=seed),
    "sequences": lambda seed=0: deterministic_sequences(seed=seed),
    "sequences-odd": lambda seed=0: deterministic_sequences(
        n_users=31, n_items=25, length=5, n_chains=4, seed=seed
    ),
}


def fingerprint(world: World) -> tuple:
    s = world.split
    return (
        world.data.checksum(),
        s.train.checksum(),
        s.valid.checksum(),
        s.test.checksum(),
        world.answer.tobytes(),
    )


@pytest.fixture(params=sorted(WORLDS))
def world(request) -> World:
    return WORLDS[request.param]()


def test_parts_partition_the_data(world):
    s = world.split
    assert len(s.train) + len(s.valid) + len(s.test) == len(world.data)
    for part in (s.train, s.valid, s.test):
        assert part.users is world.data.users and part.items is world.data.items
    assert s.fold_in is None


def test_each_user_has_one_test_item_equal_to_the_answer(world):
    s, n_users = world.split, world.data.n_users
    assert world.answer.shape == (n_users,)
    assert np.bincount(s.test.user_idx, minlength=n_users).tolist() == [1] * n_users
    assert np.bincount(s.valid.user_idx, minlength=n_users).tolist() == [1] * n_users
    assert np.array_equal(s.test.item_idx[np.argsort(s.test.user_idx)], world.answer)


def test_answer_is_unseen_in_train_and_valid(world):
    users = np.arange(world.data.n_users)
    assert world.split.train.user_items[users, world.answer].sum() == 0
    assert world.split.valid.user_items[users, world.answer].sum() == 0
    assert np.all(world.split.train.user_counts >= 1)  # every user has a history


def test_answer_is_latest_in_time(world):
    """Leave-one-out by time gives back each world's own split."""
    loo = leave_one_out_split(world.data, drop_unseen=False)
    for ours, theirs in ((loo.test, world.split.test), (loo.valid, world.split.valid)):
        assert np.array_equal(
            ours.item_idx[np.argsort(ours.user_idx)], theirs.item_idx[np.argsort(theirs.user_idx)]
        )


@pytest.mark.parametrize("name", sorted(WORLDS))
def test_seeded_determinism(name):
    assert fingerprint(WORLDS[name](seed=3)) == fingerprint(WORLDS[name](seed=3))
    assert fingerprint(WORLDS[name](seed=3)) != fingerprint(WORLDS[name](seed=4))


def test_clusters_answer_is_in_the_users_group():
    world = planted_clusters(noise=3)
    group = world.data.catalog["genres"]
    users = np.arange(world.data.n_users)
    assert all(group[world.answer[u]] == (f"group{u % 4}",) for u in users)
    # noise never touches the user's own group, so the answer is its only unseen group item
    train = world.split.train
    in_group = np.array(
        [group[i] == (f"group{u % 4}",) for u, i in zip(train.user_idx, train.item_idx)]
    )
    per_user = np.bincount(train.user_idx[in_group], minlength=world.data.n_users)
    assert per_user.tolist() == [60 // 4 - 2] * world.data.n_users


def test_checkerboard_answer_is_liked():
    world = checkerboard(block=10)
    u = np.arange(world.data.n_users)
    assert np.all((u // 10 + world.answer // 10) % 2 == 0)


def test_sequences_answer_follows_from_second_last():
    world = deterministic_sequences()
    s = world.split
    second_last = s.valid.item_idx[np.argsort(s.valid.user_idx)]
    successor = {}
    for prev, nxt in zip(second_last, world.answer):  # one successor per item, across users
        assert successor.setdefault(prev, nxt) == nxt
    assert np.all(np.diff(world.data.sequences()[0]) == 8)


@pytest.mark.parametrize(
    "make",
    [
        lambda: planted_clusters(n_items=5, n_clusters=4),
        lambda: planted_clusters(noise=-1),
        lambda: checkerboard(n_items=10, block=10),
        lambda: checkerboard(n_items=12, block=10),
        lambda: deterministic_sequences(length=11),
        lambda: deterministic_sequences(n_items=5, n_chains=3, length=3),
        lambda: deterministic_sequences(length=2),
    ],
)
def test_impossible_worlds_are_refused(make):
    with pytest.raises(ConfigError):
        make()
