"""Dataset: derived views agree with each other; index columns are narrow where they fit."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from genrec.data import Dataset, Vocabulary
from genrec.data.dataset import index_dtype
from genrec.data.splits import pair_keys
from genrec.errors import DataError


def test_user_item_order_and_history_sequences_agree_with_padded_sequences():
    from genrec.data import Dataset, as_history_matrix, history_sequences

    data = Dataset.from_interactions(
        ["a", "a", "a", "b", "b", "a"], ["x", "y", "z", "y", "x", "x"], timestamp=[5, 1, 3, 2, 9, 7]
    )  # a: y(1) z(3) x(5) x(7) -> y, z, x ; b: y(2), x(9)
    order = data.user_item_order
    assert (order != 0).toarray().tolist() == (data.user_items != 0).toarray().tolist()
    for max_len in (1, 2, 3, 5):
        expected = history_sequences(order, max_len)
        padded = data.padded_sequences(max_len)
        # a repeated item appears once, at its latest position
        assert expected.tolist() == [
            [0] * (max_len - 3) + [2, 3, 1] if max_len >= 3 else [2, 3, 1][-max_len:],
            [0] * (max_len - 2) + [2, 1] if max_len >= 2 else [1],
        ]
        assert padded[1].tolist() == expected[1].tolist()  # no repeats for b: identical
    listed = as_history_matrix([[2, 1, 0]], 3)  # z, y, x in that order
    assert history_sequences(listed, 3).tolist() == [[3, 2, 1]]
    binary = (listed > 0).astype("float32")  # no order: items by index
    assert history_sequences(binary, 3).tolist() == [[1, 2, 3]]


def test_index_columns_are_int32_where_the_vocabulary_fits():
    assert index_dtype(2**31) == np.int32 and index_dtype(2**31 + 1) == np.int64
    users, items = Vocabulary(["a", "b", "c"], kind="user"), Vocabulary(["x", "y"], kind="item")
    wide = np.array([0, 2, 1, 2], np.int64), np.array([1, 0, 1, 1], np.int64)
    data = Dataset(users, items, *wide, timestamp=[4, 3, 2, 1])
    assert data.user_idx.dtype == data.item_idx.dtype == np.int32
    np.testing.assert_array_equal(data.user_idx, wide[0])
    narrow = np.array([0, 1], np.int32)
    assert Dataset(users, items, narrow, narrow).user_idx is narrow  # int32 kept, not copied
    # what models read is what int64 columns gave: sequences, CSR, fingerprint
    indptr, seq = data.sequences()
    assert seq.dtype == np.int64 and seq.tolist() == [1, 1, 1, 0]
    assert data.user_items.toarray().tolist() == [[0, 1], [0, 1], [1, 1]]
    assert data.checksum() == _fingerprint(wide, data, users, items)


def _fingerprint(wide, data, users, items) -> str:
    """Dataset.checksum as it was with int64 index columns (their bytes, then value, time, ids)."""
    h = hashlib.sha256()
    for arr in (*wide, data.value, data.timestamp):
        h.update(np.ascontiguousarray(arr).tobytes())
    for vocab in (users, items):
        h.update("\x00".join(vocab.ids).encode())
    return h.hexdigest()


def test_an_index_that_int32_would_wrap_is_out_of_range():
    users, items = Vocabulary(["a", "b"], kind="user"), Vocabulary(["x"], kind="item")
    with pytest.raises(DataError, match="user index out of range"):
        Dataset(users, items, np.array([2**32 + 1], np.int64), [0])  # wraps to 1 as int32


def test_pair_keys_are_exact_beyond_int32():
    """70,000 users x 40,000 items: the last pair's key 2,799,999,999 exceeds int32."""
    users = Vocabulary(np.arange(70_000), kind="user")
    items = Vocabulary(np.arange(40_000), kind="item")
    data = Dataset(users, items, [69_999, 1], [39_999, 2])
    assert data.user_idx.dtype == np.int32
    assert pair_keys(data).tolist() == [2_799_999_999, 40_002]


def test_from_checked_takes_columns_as_they_are():
    data = Dataset.from_interactions(["a", "b", "a"], ["x", "y", "y"], [1.0, 2.0, 3.0], [5, 6, 7])
    columns = (data.user_idx[:2], data.item_idx[:2], data.value[:2], data.timestamp[:2])
    part = Dataset.from_checked(data.users, data.items, *columns, like=data, name="part")
    assert part.user_idx is columns[0] and len(part) == 2 and part.users is data.users
    assert part.positive_threshold == data.positive_threshold
    with pytest.raises(DataError, match="checked columns must be"):
        Dataset.from_checked(data.users, data.items, *columns[:2], columns[2] * 1.0, columns[3][:1])
    with pytest.raises(DataError, match="checked columns must be"):
        Dataset.from_checked(
            data.users, data.items, columns[0].astype(np.int64), *columns[1:], like=data
        )
