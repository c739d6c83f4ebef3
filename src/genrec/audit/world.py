"""A small synthetic world for the audit's fast mode and its tests.

Users belong to taste clusters; item popularity is skewed (Zipf-like within each cluster), so
exposure metrics have a long tail to measure; users carry ``gender``, ``age`` and
``occupation`` attributes, and one group (``gender == "F"``) has shorter profiles, so a
consumer-fairness gap exists to be found. Items have titles, genres (the cluster) and years,
so language-model, segment-attack and conversational-agent code paths run too. Split: holdout 0.8 / 0.1 / 0.1.

Example:
    >>> split = audit_world(n_users=60, n_items=40, seed=0)
    >>> sorted(split.train.user_table.columns)
    ['age', 'gender', 'occupation']
"""

from __future__ import annotations

import numpy as np

from genrec.data.dataset import Dataset, Split
from genrec.data.splits import make_split
from genrec.errors import ConfigError

OCCUPATIONS = ("student", "engineer", "artist", "retired")


def audit_world(
    n_users: int = 150, n_items: int = 80, n_clusters: int = 4, *, seed: int = 0
) -> Split:
    """The split of a synthetic world (module docstring); the same seed gives the same world."""
    if n_users < 20 or n_items < 4 * n_clusters or n_clusters < 1:
        raise ConfigError(
            f"audit_world needs n_users >= 20 and n_items >= 4 * n_clusters, got "
            f"n_users={n_users}, n_items={n_items}, n_clusters={n_clusters}"
        )
    rng = np.random.default_rng(seed)
    item_group = np.arange(n_items) % n_clusters
    user_group = rng.integers(0, n_clusters, n_users)
    gender = rng.choice(["F", "M"], n_users)
    length = np.where(gender == "F", rng.integers(5, 10, n_users), rng.integers(10, 20, n_users))
    rank = np.arange(n_items) // n_clusters + 1
    rows, cols = [], []
    for u in range(n_users):  # a world of a few hundred users, built once
        own = np.where(item_group == user_group[u], 4.0, 0.3) / rank**0.8
        picked = rng.choice(n_items, min(length[u], n_items), replace=False, p=own / own.sum())
        rows.append(np.full(len(picked), u))
        cols.append(picked)
    u, i = np.concatenate(rows), np.concatenate(cols)
    t = np.arange(len(u))
    users = {
        "age": rng.integers(16, 70, n_users).astype(float).tolist(),
        "gender": gender.tolist(),
        "occupation": rng.choice(OCCUPATIONS, n_users).tolist(),
    }
    items = {
        "title": [f"Movie {x}" for x in range(n_items)],
        "genres": [(f"genre{g}",) for g in item_group],
        "year": [float(1960 + (7 * x) % 40) for x in range(n_items)],
    }
    data = Dataset.from_interactions(
        [f"u{x}" for x in u],
        [f"i{x}" for x in i],
        None,
        t,
        item_rows=items,
        item_row_ids=[f"i{x}" for x in range(n_items)],
        user_rows=users,
        user_row_ids=[f"u{x}" for x in range(n_users)],
        name="audit-world",
    )
    return make_split(data, "holdout", seed=seed)


__all__ = ["audit_world"]
