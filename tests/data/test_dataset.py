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
