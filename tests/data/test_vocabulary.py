"""Vocabulary and Dataset.from_interactions: bad ids, values and timestamps raise genrec errors."""

import numpy as np
import pandas as pd
import pytest

from genrec.data import Dataset, Vocabulary
from genrec.errors import ConfigError, DataError, UnknownIdError


def test_index_rejects_a_bare_string_instead_of_reading_its_characters():
    v = Vocabulary(["a", "b"])
    with pytest.raises(ConfigError, match=r"single str 'ab'.*pass a list, e\.g\. \['ab'\]"):
        v.index("ab")
    with pytest.raises(ConfigError, match="pass a list"):
        v.lookup(b"ab")
    with pytest.raises(ConfigError, match="sequence of user ids"):
        Vocabulary("uvw", kind="user")
    assert v.index(["b", "a"]).tolist() == [1, 0]


def test_index_reads_a_generator_once_and_names_the_unknown_ids():
    v = Vocabulary(["a", "b"])
    assert v.index(x for x in ["b", "a"]).tolist() == [1, 0]
    with pytest.raises(UnknownIdError) as err:
        v.index(x for x in ["a", "zz", "yy"])
    assert str(err.value) == "2 unknown id(s): 'zz', 'yy'; known ids look like 'a', 'b'"
    assert err.value.unknown == ["zz", "yy"]


def test_unknown_id_message_names_the_kind_once():
    with pytest.raises(
        UnknownIdError,
        match=r"^1 unknown item id\(s\): 'x'; known item ids "
        r"look like 'i1'$",
    ):
        Vocabulary(["i1"], kind="item").index(["x"])
    with pytest.raises(UnknownIdError, match="the user id vocabulary is empty"):
        Vocabulary([], kind="user").index(["x"])


def test_index_and_lookup_of_series_and_arrays():
    v = Vocabulary(["a", "b"])
    assert v.index(pd.Series(["b", "a"], index=[7, 3])).tolist() == [1, 0]
    idx, known = v.lookup(np.array(["a", "c"], dtype=object))
    assert idx.tolist() == [0, -1] and known.tolist() == [True, False]
    with pytest.raises(DataError, match=r"1-D sequence of ids, got an array of shape \(1, 2\)"):
        v.index(np.array([["a", "b"]]))


@pytest.mark.parametrize(
    "user_ids",
    [
        ["a", None, "b", None],
        ["a", float("nan"), "b", np.nan],
        np.array(["a", None, "b", None], dtype=object),
    ],
)
def test_missing_user_ids_name_their_positions(user_ids):
    with pytest.raises(
        DataError,
        match=r"2 missing user id\(s\) \(None or NaN\) at position\(s\) "
        r"1, 3; every interaction needs a user id",
    ):
        Dataset.from_interactions(user_ids, ["x", "y", "z", "w"])


def test_missing_item_ids_and_shown_positions_are_capped():
    with pytest.raises(DataError, match=r"7 missing item id\(s\) .* 0, 1, 2, 3, 4 \.\.\.;"):
        Dataset.from_interactions(list("abcdefg"), [None] * 7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"user_ids": np.array([["a", "b"]]), "item_ids": ["x", "y"]},
            r"1-D sequence of user ids, got an array of shape \(1, 2\)",
        ),
        (
            {"user_ids": ["a", "b"], "item_ids": np.array([["x"], ["y"]])},
            r"1-D sequence of item ids, got an array of shape \(2, 1\)",
        ),
        ({"user_ids": [["a"], ["b"]], "item_ids": ["x", "y"]}, r"user ids must be one hashable id"),
        (
            {"user_ids": ["a", "b"], "item_ids": ["x"]},
            r"same length, got \{'user': 2, 'item': 1, 'value': 2, 'timestamp': 2\}",
        ),
        (
            {"user_ids": ["a"], "item_ids": ["x"], "value": ["good"]},
            r"value\[0\] is 'good', not a number; values must be numbers \(ratings or weights\)",
        ),
        (
            {"user_ids": ["a", "b"], "item_ids": ["x", "y"], "value": [1.0, np.nan]},
            r"1 interaction value\(s\) are NaN or infinite \(first at position 1\)",
        ),
        ({"user_ids": ["a"], "item_ids": ["x"], "value": [[1.0]]}, r"value must be 1-D"),
        (
            {"user_ids": ["a", "b"], "item_ids": ["x", "y"], "timestamp": [5, "2020-01-01"]},
            r"timestamp\[1\] is '2020-01-01', not a number; timestamps must be numbers \(seconds since "
            r"the epoch\); convert dates first",
        ),
        (
            {
                "user_ids": ["a"],
                "item_ids": ["x"],
                "timestamp": np.array(["2020-01-01"], dtype="datetime64[s]"),
            },
            r"convert dates first",
        ),
        (
            {"user_ids": ["a", "b"], "item_ids": ["x", "y"], "timestamp": [0.0, 1e30]},
            r"timestamp\[1\] is 1e\+30: timestamps must be finite seconds since the epoch within int64",
        ),
        ({"user_ids": ["a"], "item_ids": ["x"], "timestamp": [np.inf]}, r"timestamp\[0\] is inf"),
        ({"user_ids": ["a"], "item_ids": ["x"], "timestamp": [None]}, r"timestamp\[0\] is None"),
        (
            {
                "user_ids": ["a"],
                "item_ids": ["x"],
                "item_rows": {"title": ["A", "B"]},
                "item_row_ids": ["x"],
            },
            r"item column 'title' has 2 rows but item_row_ids has 1",
        ),
        (
            {"user_ids": ["a"], "item_ids": ["x"], "item_rows": {"title": ["A"]}},
            r"item_rows needs item_row_ids",
        ),
    ],
)
def test_from_interactions_rejects_bad_input_with_a_data_error(kwargs, match):
    with pytest.raises(DataError, match=match):
        Dataset.from_interactions(**kwargs)


def test_from_interactions_accepts_numbers_as_text_generators_and_floors_float_seconds():
    data = Dataset.from_interactions(
        (u for u in ["a", "b"]), ["x", "y"], value=["5", 4], timestamp=[1.5, -0.5]
    )
    assert data.value.tolist() == [5.0, 4.0]
    assert data.timestamp.tolist() == [1, -1]
    big = Dataset.from_interactions(["a"], ["x"], timestamp=np.array([2**62], np.uint64))
    assert big.timestamp.tolist() == [2**62]


def test_from_interactions_repeated_item_row_keeps_the_first():
    data = Dataset.from_interactions(
        ["a", "b"],
        ["x", "y"],
        item_rows={"title": ["X1", "Y", "X2"], "year": [1.0, 2.0, 3.0]},
        item_row_ids=["x", "y", "x"],
        user_rows={"age": [30, 40]},
        user_row_ids=["a", "a"],
    )
    assert data.catalog.row(0) == {"title": "X1", "year": 1.0}
    assert data.user_table.row(0) == {"age": 30.0}
    assert data.user_table.row(1) == {"age": None}


@pytest.mark.parametrize("stored", [np.array([7, 30, 2]), np.array(["7", "30", "2"])])
def test_stored_ids_become_str_only_when_needed(stored):
    """A cache's int64 or fixed-width ids: no str per id until ids or a lookup asks."""
    vocab = Vocabulary.from_distinct(stored, kind="user")
    assert len(vocab) == 3 and vocab._ids is None  # nothing converted by opening
    assert vocab.index(["30"]).tolist() == [1]
    assert vocab.ids.tolist() == ["7", "30", "2"] and vocab.ids.dtype == object
    assert vocab == Vocabulary(["7", "30", "2"])
    with pytest.raises(UnknownIdError, match="known user ids look like '7', '30', '2'"):
        vocab.index(["8"])
