"""Synthetic worlds with a known answer, for tests of models and the evaluation protocol.

Each world returns the full ``Dataset``, a ``Split`` whose test item per user is determined by the
world's structure, and that answer, so a test can demand that a model finds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.data.dataset import Dataset, ItemCatalog, Split
from genrec.data.splits import TEST, TRAIN, VALID, split_by_code
from genrec.data.vocabulary import Vocabulary
from genrec.errors import ConfigError


@dataclass
class World:
    """A dataset, its split and each test user's known answer (item index, -1 for none)."""

    data: Dataset
    split: Split
    answer: np.ndarray  # (n_users,)


def planted_clusters(
    n_users: int = 120, n_items: int = 60, n_clusters: int = 4, *, noise: int = 0, seed: int = 0
) -> World:
    """Users and items fall into ``n_clusters`` groups; each user interacted with every item of
    its group. One of them (a random one) is the test item, another the validation item, the rest
    are train. Out-of-group items never co-occur with the group, so the test item is the only
    unseen item that a collaborative model can support: a good model ranks it first.

    ``noise`` adds that many random out-of-group train interactions per user. Timestamps put each
    user's train interactions first, then the valid item, then the test item.

    Raises:
        ConfigError: fewer than 3 items per cluster (one each for train, valid and test).
    """
    if n_clusters < 1 or n_items < 3 * n_clusters or n_users < 1 or noise < 0:
        raise ConfigError(
            f"planted_clusters needs n_users >= 1, noise >= 0 and n_items >= 3 * n_clusters (3 "
            f"items per cluster), got n_users={n_users}, n_items={n_items}, "
            f"n_clusters={n_clusters}, noise={noise}; raise n_items or lower n_clusters"
        )
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % n_clusters
    item_group = np.arange(n_items) % n_clusters
    rows, cols, part = [], [], []
    answer = np.empty(n_users, np.int64)
    for g in range(n_clusters):  # per group, not per user
        members = np.flatnonzero(user_group == g)
        group_items = np.flatnonzero(item_group == g)
        choice = np.argsort(rng.random((len(members), len(group_items))), axis=1)
        ordered = group_items[choice]  # (U_g, I_g): a random order of the group's items per user
        rows.append(np.repeat(members, len(group_items)))
        cols.append(ordered.ravel())
        tag = np.full(ordered.shape, TRAIN, np.int8)
        tag[:, 0], tag[:, 1] = TEST, VALID
        part.append(tag.ravel())
        answer[members] = ordered[:, 0]
    u, i, p = np.concatenate(rows), np.concatenate(cols), np.concatenate(part)
    if noise:
        nu = np.repeat(np.arange(n_users), noise)
        ni = rng.integers(0, n_items, len(nu))
        keep = item_group[ni] != user_group[nu]
        u, i = np.r_[u, nu[keep]], np.r_[i, ni[keep]]
        p = np.r_[p, np.full(keep.sum(), TRAIN, np.int8)]
    data = _dataset(
        u, i, _time_by_part(u, p), n_users, n_items, "planted-clusters", item_group=item_group
    )
    split = split_by_code(data, p, {"method": "planted-clusters", "seed": seed})
    return World(data, split, answer)


def checkerboard(n_users: int = 40, n_items: int = 40, block: int = 10, *, seed: int = 0) -> World:
    """User u likes item i when ``(u // block + i // block)`` is even; as planted_clusters, one
    liked item per user is held out for test and one for validation. Timestamps put each user's
    train interactions first, then the valid item, then the test item.

    Raises:
        ConfigError: a user who likes fewer than 3 items (e.g. ``n_items <= block``).
    """
    if n_users < 1 or block < 1:
        raise ConfigError(
            f"checkerboard needs n_users >= 1 and block >= 1, got n_users={n_users}, block={block}"
        )
    rng = np.random.default_rng(seed)
    likes = ((np.arange(n_users)[:, None] // block + np.arange(n_items)[None, :] // block) % 2) == 0
    if likes.sum(axis=1).min() < 3:
        raise ConfigError(
            f"checkerboard with n_items={n_items} and block={block} leaves some users with "
            f"{int(likes.sum(axis=1).min())} liked item(s); each needs 3 (train, valid, test): "
            "use n_items >= block + 3"
        )
    noise = rng.random(likes.shape)
    order = np.argsort(np.where(likes, noise, 2.0), axis=1)  # liked items first, random order
    answer, valid = order[:, 0], order[:, 1]
    u, i = np.nonzero(likes)
    p = np.where(i == answer[u], TEST, np.where(i == valid[u], VALID, TRAIN))
    data = _dataset(u, i, _time_by_part(u, p), n_users, n_items, "checkerboard")
    split = split_by_code(data, p, {"method": "checkerboard", "seed": seed})
    return World(data, split, answer)


def deterministic_sequences(
    n_users: int = 100, n_items: int = 30, *, length: int = 8, n_chains: int = 3, seed: int = 0
) -> World:
    """Items form ``n_chains`` disjoint cycles; each user walks one cycle from a random start,
    one step per time unit (a b c -> d). The last item is the test item and follows from the
    second last; leave-one-out by time recovers it (valid = second last, test = last).

    Raises:
        ConfigError: ``length`` < 3, or longer than the shortest cycle (``n_items // n_chains``),
            which would repeat the test item in train.
    """
    if n_chains < 1 or n_users < 1 or not 3 <= length <= n_items // n_chains:
        raise ConfigError(
            f"deterministic_sequences needs n_users >= 1 and 3 <= length <= n_items // n_chains "
            f"(a walk must not revisit an item), got n_users={n_users}, length={length}, "
            f"n_items={n_items}, n_chains={n_chains}; shorten length or add items"
        )
    rng = np.random.default_rng(seed)
    chains = np.array_split(rng.permutation(n_items), n_chains)
    chain_of_user = rng.integers(0, n_chains, n_users)
    start = rng.integers(0, 1 << 30, n_users)
    rows, cols, times = [], [], []
    for c, chain in enumerate(chains):
        members = np.flatnonzero(chain_of_user == c)
        steps = (start[members, None] + np.arange(length)[None, :]) % len(chain)  # (U_c, T)
        rows.append(np.repeat(members, length))
        cols.append(chain[steps].ravel())
        times.append(np.tile(np.arange(length), len(members)))
    u, i, t = np.concatenate(rows), np.concatenate(cols), np.concatenate(times)
    data = _dataset(u, i, t, n_users, n_items, "deterministic-sequences")
    p = np.where(t == length - 1, TEST, np.where(t == length - 2, VALID, TRAIN))
    answer = np.full(n_users, -1, np.int64)
    answer[u[p == TEST]] = i[p == TEST]
    split = split_by_code(data, p, {"method": "deterministic-sequences", "seed": seed})
    return World(data, split, answer)


def _time_by_part(u: np.ndarray, part: np.ndarray) -> np.ndarray:
    """(n,) timestamps 1..n: users in turn, each user's train (0) then valid (1) then test (2)."""
    t = np.empty(len(u), np.int64)
    t[np.lexsort((np.arange(len(u)), part, u))] = np.arange(1, len(u) + 1)
    return t


def _dataset(u, i, t, n_users, n_items, name, item_group=None) -> Dataset:
    users = Vocabulary([f"u{x}" for x in range(n_users)], kind="user")
    items = Vocabulary([f"i{x}" for x in range(n_items)], kind="item")
    columns = {"title": [f"Item {x}" for x in range(n_items)]}
    if item_group is not None:
        columns["genres"] = [(f"group{g}",) for g in item_group]
    catalog = ItemCatalog(items, columns)
    return Dataset(users, items, u, i, None, t, catalog=catalog, name=name)


_ADJECTIVES = (
    "Silent",
    "Golden",
    "Broken",
    "Hidden",
    "Crimson",
    "Frozen",
    "Electric",
    "Lonely",
    "Midnight",
    "Savage",
    "Velvet",
    "Wild",
)
_NOUNS = ("River", "Garden", "Empire", "Harbor", "Mirror", "Compass", "Lantern", "Orchard")
# cluster -> the genres of its items (movie_clusters)
MOVIE_GENRES = (("Comedy",), ("Drama", "Romance"), ("Horror",), ("Action", "Thriller"))


def movie_clusters(n_users: int = 80, n_items: int = 48, *, seed: int = 0) -> World:
    """:func:`planted_clusters` with 4 clusters and a movie catalog, for conversational tests.

    Item ``i`` is in cluster ``i % 4`` and has that cluster's genres (:data:`MOVIE_GENRES`), a
    distinct two-word title ("Silent River") and the year ``1950 + 10 * (i // 4 % 5) + i % 7``,
    so genres and decades both tell items apart.

    Raises:
        ConfigError: more items than distinct titles (96), or as :func:`planted_clusters`.
    """
    if n_items > len(_ADJECTIVES) * len(_NOUNS):
        raise ConfigError(
            f"movie_clusters has {len(_ADJECTIVES) * len(_NOUNS)} distinct "
            f"titles, got n_items={n_items}; lower n_items"
        )
    world = planted_clusters(n_users=n_users, n_items=n_items, n_clusters=4, seed=seed)
    columns = world.data.catalog.columns  # shared by the split's parts
    columns["title"] = np.array(
        [f"{_ADJECTIVES[i % 12]} {_NOUNS[i // 12]}" for i in range(n_items)], dtype=object
    )
    genres = np.empty(n_items, dtype=object)
    genres[:] = [MOVIE_GENRES[i % 4] for i in range(n_items)]
    columns["genres"] = genres
    columns["year"] = np.array([1950 + 10 * (i // 4 % 5) + i % 7 for i in range(n_items)], float)
    return world
