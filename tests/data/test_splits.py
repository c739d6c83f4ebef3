"""Splitters: properties on random small datasets (Hypothesis) and RecBole's rounding by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from genrec.data import Dataset, Split, splits
from genrec.data.splits import (
    DROPPED,
    FOLD_IN,
    SPLITTERS,
    TEST,
    TRAIN,
    VALID,
    describe_split,
    held_out_items_split,
    held_out_users_split,
    holdout_split,
    leave_one_out_split,
    make_split,
    ratio_counts,
    split_by_code,
    temporal_split,
)
from genrec.errors import ConfigError, DataError

PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def datasets(draw, *, min_size=1, timestamps=True):
    """A small Dataset whose ``value`` is each interaction's id (1..n), to trace it to its part."""
    n = draw(st.integers(min_size, 50))
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 12))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, n_items - 1), min_size=n, max_size=n))
    times = draw(
        st.lists(
            st.integers(1 if timestamps else 0, 6 if timestamps else 0), min_size=n, max_size=n
        )
    )
    return Dataset.from_interactions(
        [f"u{x}" for x in users],
        [f"i{x}" for x in items],
        value=np.arange(1, n + 1),
        timestamp=times,
    )


def ids(part: Dataset) -> np.ndarray:
    return part.value.astype(np.int64)


def parts_of(split: Split) -> dict[str, Dataset]:
    out = {"train": split.train, "valid": split.valid, "test": split.test}
    if split.fold_in is not None:
        out["fold_in"] = split.fold_in
    return out


def per_user(part: Dataset, n_users: int) -> np.ndarray:
    return np.bincount(part.user_idx, minlength=n_users)


def recbole_sizes(n: int, ratios=(0.8, 0.1, 0.1)) -> tuple[int, int, int]:
    """RecBole 1.2.1's per-group rule, written out one group at a time as a reference."""
    total = sum(ratios)
    shares = [r / total for r in ratios]
    sizes = [0] + [int(r * n) for r in shares[1:]]
    sizes[0] = n - sum(sizes[1:])
    for j in (2, 1):  # test, then valid
        if sizes[0] <= 1:
            break
        if 0 < shares[j] * n < 1:
            sizes[j] += 1
            sizes[0] -= 1
    return tuple(sizes)


def check_partition(data: Dataset, split: Split) -> None:
    """Parts are disjoint; together with the dropped interactions they are the input."""
    all_ids = [ids(p) for p in parts_of(split).values()]
    joined = np.concatenate(all_ids)
    assert len(np.unique(joined)) == len(joined), "parts overlap"
    assert set(joined) <= set(ids(data))
    dropped = split.info["dropped"]
    n_dropped = dropped["valid"]["interactions"] + dropped["test"]["interactions"]
    assert len(joined) + n_dropped == len(data)
    for part in parts_of(split).values():
        assert part.users is data.users and part.items is data.items


def check_dropped_unseen(data: Dataset, split: Split) -> None:
    """Kept valid/test pairs use train users and items; every dropped one did not."""
    seen_u = set(split.train.user_idx.tolist())
    seen_i = set(split.train.item_idx.tolist())
    for part in (split.valid, split.test):
        assert set(part.user_idx.tolist()) <= seen_u and set(part.item_idx.tolist()) <= seen_i
    kept = set(np.concatenate([ids(p) for p in parts_of(split).values()]).tolist())
    for k in np.flatnonzero(~np.isin(ids(data), list(kept))):
        assert data.user_idx[k] not in seen_u or data.item_idx[k] not in seen_i


def same_split(a: Split, b: Split) -> bool:
    pa, pb = parts_of(a), parts_of(b)
    return pa.keys() == pb.keys() and all(np.array_equal(ids(pa[k]), ids(pb[k])) for k in pa)


# ---- RecBole's rounding rule -------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, sizes",
    [
        (1, (1, 0, 0)),
        (2, (1, 0, 1)),
        (3, (1, 1, 1)),
        (4, (2, 1, 1)),
        (5, (3, 1, 1)),
        (9, (7, 1, 1)),
        (10, (8, 1, 1)),
        (11, (9, 1, 1)),
        (19, (17, 1, 1)),
        (20, (16, 2, 2)),
        (30, (24, 3, 3)),
    ],
)
def test_rounding_by_hand(n, sizes):
    assert tuple(ratio_counts([n], (0.8, 0.1, 0.1))[0]) == sizes
    assert recbole_sizes(n) == sizes


@given(
    n=st.integers(1, 2000),
    ratios=st.sampled_from(
        [
            (0.8, 0.1, 0.1),
            (0.7, 0.2, 0.1),
            (0.6, 0.2, 0.2),
            (0.9, 0.1, 0.0),
            (0.5, 0.25, 0.25),
            (0.98, 0.01, 0.01),
        ]
    ),
)
@PROPS
def test_rounding_matches_reference(n, ratios):
    assert tuple(ratio_counts([n], ratios)[0]) == recbole_sizes(n, ratios)


def test_holdout_per_user_counts_by_hand():
    lengths = [1, 2, 3, 5, 10, 11]
    users = [f"u{n}" for n in lengths for _ in range(n)]
    data = Dataset.from_interactions(users, [f"i{k}" for k in range(len(users))])
    split = holdout_split(data, drop_unseen=False)
    got = np.stack([per_user(p, data.n_users) for p in (split.train, split.valid, split.test)], 1)
    assert got.tolist() == [[1, 0, 0], [1, 0, 1], [1, 1, 1], [3, 1, 1], [8, 1, 1], [9, 1, 1]]


# ---- holdout ----------------------------------------------------------------------------------
@given(data=datasets(), seed=st.integers(0, 2**31))
@PROPS
def test_holdout_partition_and_rounding(data, seed):
    split = holdout_split(data, seed=seed, drop_unseen=False)
    check_partition(data, split)
    parts = (split.train, split.valid, split.test)
    counts = np.stack([per_user(p, data.n_users) for p in parts], axis=1)
    expected = [recbole_sizes(int(n)) for n in data.user_counts]
    assert counts.tolist() == [list(e) for e in expected]
    assert split.fold_in is None and split.info["method"] == "holdout"

    dropping = holdout_split(data, seed=seed)
    check_partition(data, dropping)
    check_dropped_unseen(data, dropping)
    assert np.array_equal(ids(dropping.train), ids(split.train))  # dropping never touches train
    assert same_split(dropping, holdout_split(data, seed=seed))


def big_data(n_users=40, per_user_n=15, n_items=30, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user_n)
    items = rng.integers(0, n_items, len(users))
    return Dataset.from_interactions(
        [f"u{x}" for x in users],
        [f"i{x}" for x in items],
        value=np.arange(1, len(users) + 1),
        timestamp=rng.integers(1, 1000, len(users)),
    )


@pytest.mark.parametrize("method", ["holdout", "cold-users", "cold-items"])
@given(seeds=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)))
@settings(max_examples=15, deadline=None)
def test_seed_determinism(method, seeds):
    data = big_data()
    a, b = make_split(data, method, seed=seeds[0]), make_split(data, method, seed=seeds[0])
    assert same_split(a, b)
    assume(seeds[0] != seeds[1])
    assert not same_split(a, make_split(data, method, seed=seeds[1]))


# ---- leave one out ----------------------------------------------------------------------------
@given(data=datasets())
@PROPS
def test_loo_takes_the_latest(data):
    split = leave_one_out_split(data, drop_unseen=False)
    check_partition(data, split)
    n = data.user_counts
    assert per_user(split.test, data.n_users).tolist() == (n >= 2).astype(int).tolist()
    assert per_user(split.valid, data.n_users).tolist() == (n >= 3).astype(int).tolist()
    for u in np.flatnonzero(n >= 2):
        rows = np.flatnonzero(data.user_idx == u)
        by_time = rows[np.argsort(data.timestamp[rows], kind="stable")]  # ties: file order
        assert ids(split.test)[split.test.user_idx == u].tolist() == [by_time[-1] + 1]
        if n[u] >= 3:
            assert ids(split.valid)[split.valid.user_idx == u].tolist() == [by_time[-2] + 1]
    dropping = leave_one_out_split(data)
    check_partition(data, dropping)
    check_dropped_unseen(data, dropping)
    assert dropping.info["dropped"]["test"]["users"] == 0  # every user keeps one train item


# ---- temporal ---------------------------------------------------------------------------------
@given(data=datasets(), drop=st.booleans())
@PROPS
def test_temporal_cuts_time(data, drop):
    split = temporal_split(data, drop_unseen=drop)
    check_partition(data, split)
    if drop:
        check_dropped_unseen(data, split)
    else:
        sizes = (len(split.train), len(split.valid), len(split.test))
        assert sizes == recbole_sizes(len(data))
    stamps = [p.timestamp for p in (split.train, split.valid, split.test) if len(p)]
    for early, late in zip(stamps, stamps[1:]):
        assert early.max() <= late.min()


# ---- cold-start splits ------------------------------------------------------------------------
@given(
    data=datasets(min_size=3),
    share=st.floats(0.05, 0.95),
    fold=st.floats(0.0, 0.95),
    seed=st.integers(0, 1000),
)
@PROPS
def test_cold_users(data, share, fold, seed):
    assume((data.user_counts > 0).sum() >= 3)
    split = held_out_users_split(data, share, fold_in=fold, seed=seed)
    check_partition(data, split)
    train_users = set(split.train.user_idx.tolist())
    valid_users, test_users = set(split.valid.user_idx.tolist()), set(split.test.user_idx.tolist())
    assert not train_users & valid_users and not train_users & test_users
    assert not valid_users & test_users
    held = valid_users | test_users
    assert len(valid_users) == split.info["held_out_users"]["valid"]
    assert len(test_users) == split.info["held_out_users"]["test"]
    assert len(held) >= 2 and train_users
    fold_in = split.fold_in
    assert set(fold_in.user_idx.tolist()) <= held
    for u in held:  # fold-in share, and at least one target per held-out user
        k = int(data.user_counts[u])
        assert int((fold_in.user_idx == u).sum()) == min(int(np.floor(fold * k)), k - 1)
    for part, users in (("valid", valid_users), ("test", test_users)):
        history = split.history(part)
        for u in users:  # a held-out user's history is exactly its fold-in part
            assert sorted(ids(history)[history.user_idx == u]) == sorted(
                ids(fold_in)[fold_in.user_idx == u]
            )


@given(data=datasets(min_size=3), share=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
@PROPS
def test_cold_items(data, share, seed):
    assume((data.item_counts > 0).sum() >= 3)
    split = held_out_items_split(data, share, seed=seed)
    check_partition(data, split)
    assert len(split.train) + len(split.valid) + len(split.test) == len(data)
    train_items = set(split.train.item_idx.tolist())
    valid_items, test_items = set(split.valid.item_idx.tolist()), set(split.test.item_idx.tolist())
    assert not train_items & valid_items and not train_items & test_items
    assert not valid_items & test_items and train_items
    assert len(valid_items) == split.info["held_out_items"]["valid"]
    assert len(test_items) == split.info["held_out_items"]["test"]


def test_cold_items_hold_out_a_share():
    data = big_data(n_users=20, per_user_n=30, n_items=60)
    split = held_out_items_split(data, 0.2, seed=3)
    held = split.info["held_out_items"]
    assert held["valid"] + held["test"] == int(0.2 * (data.item_counts > 0).sum())


# ---- make_split, describe_split, errors -------------------------------------------------------
def test_make_split_names_methods():
    data = big_data()
    assert list(SPLITTERS) == ["holdout", "loo", "temporal", "cold-users", "cold-items"]
    for method in SPLITTERS:
        split = make_split(data, method, seed=5)
        assert split.info["method"] == method
    assert same_split(make_split(data, "holdout"), holdout_split(data, seed=2020))
    assert make_split(data, "holdout", seed=7).info["seed"] == 7
    with pytest.raises(ConfigError, match="holdout, loo, temporal, cold-users, cold-items"):
        make_split(data, "random")
    with pytest.raises(ConfigError, match="user_share"):
        make_split(data, "cold-users", item_share=0.2)


def test_describe_split_says_what_was_dropped():
    data = Dataset.from_interactions(
        ["a", "a", "a", "b", "b", "b"], ["x", "y", "z", "x", "y", "w"], timestamp=[1, 2, 3, 4, 5, 6]
    )
    split = leave_one_out_split(data)
    assert split.info["dropped"] == {
        "valid": {"interactions": 2, "users": 0, "items": 1},
        "test": {"interactions": 2, "users": 0, "items": 2},
    }
    text = describe_split(split)
    assert "\n" not in text and text.startswith("loo: train 2 / valid 0 / test 0 interactions")
    assert text.endswith(
        "dropped from valid 2 interaction(s) (0 unseen user(s), 1 unseen "
        "item(s)), from test 2 interaction(s) (0 unseen user(s), "
        "2 unseen item(s))"
    )
    repeated = describe_split(holdout_split(big_data(per_user_n=40, n_items=5)))
    assert "nothing dropped" not in repeated  # every test pair is also in train
    assert "no unseen user or item dropped" in repeated and "dropped as seen" in repeated
    unique = Dataset.from_interactions(
        [u for u in "abcdefghij" for _ in range(10)], [str(i) for _ in range(10) for i in range(10)]
    )
    assert describe_split(holdout_split(unique, seed=1)).endswith("; nothing dropped")
    assert "fold-in" in describe_split(held_out_users_split(big_data(), 0.2))
    for cold in (held_out_users_split(big_data(), 0.2), held_out_items_split(big_data(), 0.2)):
        assert "; unseen users and items kept" in describe_split(cold)


def test_split_by_code_builds_parts_in_input_order():
    data = Dataset.from_interactions(
        ["a", "a", "b", "b", "a", "b"], ["x", "y", "x", "y", "z", "w"], value=np.arange(1, 7)
    )
    code = [TEST, TRAIN, TRAIN, VALID, DROPPED, TEST]
    split = split_by_code(data, code, {"method": "by-hand"})
    assert ids(split.train).tolist() == [2, 3] and ids(split.valid).tolist() == [4]
    assert ids(split.test).tolist() == [1, 6] and split.fold_in is None
    assert split.train.name == "data/train"
    zero = {"interactions": 0, "users": 0, "items": 0}
    assert split.info == {
        "method": "by-hand",
        "drop_unseen": False,
        "dropped": {"valid": zero, "test": zero},
        "duplicates": 0,
    }
    dropping = split_by_code(data, code, {"method": "by-hand"}, drop_unseen=True)
    assert ids(dropping.test).tolist() == [1]  # item w is not in train
    assert dropping.info["dropped"]["test"] == {"interactions": 1, "users": 0, "items": 1}
    with_fold = split_by_code(
        data, [FOLD_IN, TRAIN, TRAIN, TEST, TRAIN, VALID], {}, with_fold_in=True
    )
    assert ids(with_fold.fold_in).tolist() == [1]
    with pytest.raises(DataError, match=r"code\[2\] is 7; part codes are"):
        split_by_code(data, [TRAIN, TRAIN, 7, TRAIN, TRAIN, TRAIN], {})
    with pytest.raises(DataError, match=r"one part code per interaction, shape \(6,\)"):
        split_by_code(data, [TRAIN], {})


def test_loo_takes_no_seed():
    data = big_data()
    with pytest.raises(TypeError, match="seed"):
        leave_one_out_split(data, seed=1)
    assert same_split(make_split(data, "loo", seed=1), leave_one_out_split(data))


@pytest.mark.parametrize(
    "ratios",
    [
        (0.5, 0.5, 0.5),
        (1.1, -0.05, -0.05),
        (0.8, 0.2),
        (0.0, 0.5, 0.5),
        ("a", 0.1, 0.1),
        (0.8, 0.1, float("nan")),
    ],
)
def test_bad_ratios(ratios):
    with pytest.raises(ConfigError, match="ratios"):
        holdout_split(big_data(), ratios)
    with pytest.raises(ConfigError, match="ratios"):
        temporal_split(big_data(), ratios)


@pytest.mark.parametrize("share", [0, 1, 1.5, -0.1, float("nan"), True])
def test_bad_shares(share):
    with pytest.raises(ConfigError, match="user_share"):
        held_out_users_split(big_data(), share)
    with pytest.raises(ConfigError, match="item_share"):
        held_out_items_split(big_data(), share)
    if share != 0:
        with pytest.raises(ConfigError, match="fold_in"):
            held_out_users_split(big_data(), 0.1, fold_in=share)


def test_bad_seed():
    for seed in (-1, 1.5, None, "0"):
        with pytest.raises(ConfigError, match="seed"):
            holdout_split(big_data(), seed=seed)


def test_empty_and_untimed_data():
    empty = big_data().subset(np.zeros(0, np.int64))
    for method in SPLITTERS:
        with pytest.raises(DataError, match="no interactions"):
            make_split(empty, method)
    untimed = Dataset.from_interactions(["a", "a", "b"], ["x", "y", "x"])
    for method in ("loo", "temporal"):
        with pytest.raises(DataError, match="no timestamps.*holdout"):
            make_split(untimed, method)
    assert len(holdout_split(untimed).train) == 2
    tiny = Dataset.from_interactions(["a", "b"], ["x", "y"])
    with pytest.raises(DataError, match="at least 3 users"):
        held_out_users_split(tiny)
    with pytest.raises(DataError, match="at least 3 items"):
        held_out_items_split(tiny)


@pytest.mark.parametrize("n", [1, 7, 5000])
def test_shuffled_positions_are_the_generators_permutation(n):
    """Narrow positions change no split: the same values and the same draws as permutation."""
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    got = splits._shuffled_positions(a, n)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, b.permutation(n))
    assert a.integers(1 << 30) == b.integers(1 << 30)


@pytest.mark.parametrize("time_order_at_hand", [True, False])
def test_pieces_by_user_give_the_whole_array_codes(monkeypatch, time_order_at_hand):
    """Part codes computed a few rows at a time, from blocks of whole users sorted on their own
    (time order at hand) or from the whole order, equal the one-pass formula; users without
    interactions (a subset) are skipped."""
    rng = np.random.default_rng(0)
    full = Dataset.from_interactions(
        rng.integers(0, 40, 700), rng.integers(0, 30, 700), timestamp=rng.integers(0, 9, 700)
    )
    data = full.subset(full.user_idx % 3 != 0)  # a third of the users have no interactions
    key = rng.permutation(len(data))
    if time_order_at_hand:
        assert data.time_order is not None and data.has_view("time_order")
    order = np.lexsort((key, data.user_idx))
    counts = splits.ratio_counts(data.user_counts, (0.6, 0.2, 0.2))
    starts = np.cumsum(data.user_counts) - data.user_counts
    users = data.user_idx[order]
    rank = np.arange(len(order)) - starts[users]
    want = np.empty(len(data), np.int8)
    want[order] = (rank >= counts[users, 0]).astype(np.int8) + (
        rank >= counts[users, 0] + counts[users, 1]
    )
    monkeypatch.setattr(splits, "CHUNK", 16)
    pieces = list(splits._by_user(data, key))
    assert [start for start, _ in pieces] == list(np.cumsum([0] + [len(r) for _, r in pieces])[:-1])
    np.testing.assert_array_equal(np.concatenate([rows for _, rows in pieces]), order)
    code = splits._code_by_rank(data, iter(pieces), splits._by_counts(counts))
    np.testing.assert_array_equal(code, want)
    by_time = np.concatenate([rows for _, rows in splits._by_user(data)])
    np.testing.assert_array_equal(by_time, data.time_order)
