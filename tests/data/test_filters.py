"""Filters: rating threshold, k-core, duplicate removal, and the re-indexing they share."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.data import Dataset, drop_duplicates, filter_rating, k_core
from genrec.errors import ConfigError, DataError


def small() -> Dataset:
    """u1 rates x, y; u2 rates y, z; u3 rates z; with a catalog and a user table."""
    return Dataset.from_interactions(
        ["u1", "u1", "u2", "u2", "u3"],
        ["x", "y", "y", "z", "z"],
        [5, 2, 4, 3, 1],
        [10, 11, 12, 13, 14],
        item_rows={"title": ["X", "Y", "Z"], "year": [2001.0, 2002.0, 2003.0]},
        item_row_ids=["x", "y", "z"],
        user_rows={"age": [31, 32, 33]},
        user_row_ids=["u1", "u2", "u3"],
        text_fields=("title",),
        name="small",
    )


def test_filter_rating_reindexes_vocabularies_and_tables():
    data = small()
    kept = filter_rating(data, 3)
    assert kept is not data and kept.name == "small"
    assert kept.users.ids.tolist() == ["u1", "u2"]  # u3 rated only 1
    assert kept.items.ids.tolist() == ["x", "y", "z"]
    assert kept.value.tolist() == [5, 4, 3] and kept.timestamp.tolist() == [10, 12, 13]
    assert kept.users.ids[kept.user_idx].tolist() == ["u1", "u2", "u2"]
    assert kept.user_table["age"].tolist() == [31, 32]
    assert kept.catalog.text_fields == ("title",)
    strict = filter_rating(data, 4)
    assert strict.items.ids.tolist() == ["x", "y"]
    assert strict.catalog["title"].tolist() == ["X", "Y"]
    assert strict.items.ids[strict.item_idx].tolist() == ["x", "y"]
    assert len(data) == 5 and data.n_items == 3  # the input is left alone


def test_filters_keep_the_ids_relative_order():
    data = Dataset.from_interactions(["c", "a", "b", "a"], ["3", "1", "2", "1"], [1, 5, 5, 5])
    kept = filter_rating(data, 5)
    assert kept.users.ids.tolist() == ["a", "b"] and kept.items.ids.tolist() == ["1", "2"]


def test_filter_that_empties_the_dataset_names_itself():
    with pytest.raises(
        DataError,
        match=r"filter_rating\(threshold=6\) removed every interaction"
        r" of dataset 'small'",
    ):
        filter_rating(small(), 6)
    with pytest.raises(DataError, match=r"k_core\(user_k=3, item_k=3\)"):
        k_core(small(), 3)


def test_k_core_iterates_until_stable():
    # d rates only z; without d, z has one rating (c); without z, c has one rating (y)
    data = Dataset.from_interactions(
        ["a", "a", "b", "b", "c", "c", "d"], ["x", "y", "x", "y", "y", "z", "z"]
    )
    core = k_core(data, 2)
    assert core.users.ids.tolist() == ["a", "b"] and core.items.ids.tolist() == ["x", "y"]
    assert len(core) == 4
    assert k_core(data, 2, item_k=1).users.ids.tolist() == ["a", "b", "c"]


def test_k_core_with_separate_thresholds():
    data = Dataset.from_interactions(["a", "a", "a", "b"], ["x", "y", "z", "x"])
    assert k_core(data, user_k=3, item_k=1).users.ids.tolist() == ["a"]
    assert k_core(data, user_k=1, item_k=2).items.ids.tolist() == ["x"]


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 2.5}, {"user_k": -1}, {"item_k": True}])
def test_k_core_rejects_bad_thresholds(kwargs):
    with pytest.raises(ConfigError, match="must be an int >= 1"):
        k_core(small(), **kwargs)


def brute_force_core(pairs, k) -> set:
    """The largest set of interactions where every user and item appears >= k times."""
    users = sorted({u for u, _ in pairs})
    items = sorted({i for _, i in pairs})
    best: set = set()
    for n_u in range(len(users) + 1):
        for us in itertools.combinations(users, n_u):
            for n_i in range(len(items) + 1):
                for its in itertools.combinations(items, n_i):
                    kept = [(j, (u, i)) for j, (u, i) in enumerate(pairs) if u in us and i in its]
                    counts_u = {u: sum(1 for _, (x, _) in kept if x == u) for u in us}
                    counts_i = {i: sum(1 for _, (_, y) in kept if y == i) for i in its}
                    if all(c >= k for c in counts_u.values()) and all(
                        c >= k for c in counts_i.values()
                    ):
                        best |= {j for j, _ in kept}  # valid sets are closed under union
    return best


interactions = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(pairs=interactions, k=st.integers(1, 4))
def test_k_core_properties(pairs, k):
    data = Dataset.from_interactions(
        [f"u{u}" for u, _ in pairs], [f"i{i}" for _, i in pairs], timestamp=np.arange(len(pairs))
    )
    try:
        core = k_core(data, k)
        kept = set(core.timestamp.tolist())  # timestamps number the interactions
    except DataError:
        core, kept = None, set()
    if len(pairs) <= 12:  # the brute force enumerates every subset of users and items
        assert kept == brute_force_core(pairs, k)
    if core is not None:
        assert core.user_counts.min() >= k and core.item_counts.min() >= k
        assert k_core(core, k).checksum() == core.checksum()


def test_drop_duplicates_keeps_the_latest_and_breaks_ties_by_file_order():
    data = Dataset.from_interactions(
        ["a", "a", "b", "a", "b", "b"],
        ["x", "x", "y", "x", "y", "z"],
        [1, 2, 3, 4, 5, 6],
        [30, 50, 10, 20, 10, 5],
    )
    latest = drop_duplicates(data)
    # a-x: timestamp 50 wins; b-y: a tie at 10, the later line (value 5) wins
    assert latest.value.tolist() == [2, 5, 6] and latest.timestamp.tolist() == [50, 10, 5]
    earliest = drop_duplicates(data, keep="earliest")
    assert earliest.value.tolist() == [3, 4, 6]
    with pytest.raises(ConfigError, match="'latest' or 'earliest'"):
        drop_duplicates(data, keep="first")


def test_filters_carry_per_interaction_extras_over():
    base = small()
    data = Dataset(
        base.users,
        base.items,
        base.user_idx,
        base.item_idx,
        base.value,
        base.timestamp,
        extras={"review_text": list("abcde")},
    )
    kept = filter_rating(data, 4)
    assert kept.extras["review_text"].tolist() == ["a", "c"]
    assert len(kept.extras["review_text"]) == len(kept)
