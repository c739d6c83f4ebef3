"""Pop under the shared contract, on a world where popularity is the answer."""

from __future__ import annotations

import numpy as np

from genrec.data import Dataset, Vocabulary
from genrec.data.splits import TEST, TRAIN, VALID, split_by_code
from genrec.data.synthetic import World
from genrec.models import Pop

from .contract import ModelContract


def blockbuster_world(n_users: int = 60, n_items: int = 30, *, seed: int = 0) -> World:
    """Item 0 is a blockbuster every user interacted with; other items get rarer with their index.

    Even users have the blockbuster held out as their test item (answer 0), so the most popular
    unseen item is the answer; odd users train on it and have no known answer (-1). Every user
    has one random other item held out for validation (and odd users one for test).
    """
    rng = np.random.default_rng(seed)
    likes = rng.random((n_users, n_items)) < 0.3 * (1 - np.arange(n_items) / n_items)
    likes[:, 0] = True
    third = np.arange(3)[None, :] == (np.arange(n_users) % 3)[:, None]  # (U, 3) one-hot
    likes[:, -3:] |= third  # every user has at least two other items, among the rarest
    likes[:, -6:-3] |= third
    u, i = np.nonzero(likes)
    part = np.full(len(u), TRAIN, np.int8)
    answer = np.full(n_users, -1, np.int64)
    for user in range(n_users):  # a tiny world: a loop is clearer than index tricks
        rows = np.flatnonzero((u == user) & (i != 0))
        held = rng.choice(rows, 2, replace=False)
        part[held[0]] = VALID
        if user % 2 == 0:
            part[(u == user) & (i == 0)] = TEST
            answer[user] = 0
        else:
            part[held[1]] = TEST
    users = Vocabulary([f"u{x}" for x in range(n_users)], kind="user")
    items = Vocabulary([f"i{x}" for x in range(n_items)], kind="item")
    data = Dataset(users, items, u, i, name="blockbuster")
    split = split_by_code(data, part, {"method": "blockbuster", "seed": seed})
    return World(data, split, answer)


class TestPop(ModelContract):
    model_cls = Pop
    quality_k = 1
    quality_floor = 1.0

    def world(self) -> World:
        return blockbuster_world()


def test_pop_scores_are_training_popularity():
    world = blockbuster_world()
    model = Pop().fit(world.split.train)
    expected = np.bincount(world.split.train.item_idx, minlength=world.data.n_items)
    np.testing.assert_array_equal(
        model.score(world.split.train.user_items[:3]), np.tile(expected, (3, 1))
    )
