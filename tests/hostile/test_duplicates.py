"""Repeated (user, item) rows are counted, and what they do to evaluation is said and recorded.

Under full ranking a user's history items are excluded, so a test interaction whose pair is also
in train cannot be recommended and is dropped as seen. With many repeated rows that silently
removed most test pairs while the split line said "nothing dropped".
"""

import json

import numpy as np

from genrec.cli import main
from genrec.data import Dataset, drop_duplicates
from genrec.data.splits import TEST, TRAIN, VALID, describe_split, split_by_code, target_counts
from genrec.evaluation.runner import run_benchmark
from genrec.models import MODELS


def repeated_data() -> Dataset:
    """Two users; user a rated x three times and y twice; user b rated each item once."""
    users = ["a", "a", "a", "a", "a", "b", "b", "b"]
    items = ["x", "x", "y", "x", "y", "x", "y", "z"]
    return Dataset.from_interactions(users, items, timestamp=np.arange(1, 9))


def test_the_dataset_counts_repeated_rows():
    data = repeated_data()
    assert data.duplicate_interactions == 3
    assert data.stats()["duplicates"] == 3
    assert drop_duplicates(data).stats()["duplicates"] == 0


def test_the_split_line_says_what_repeats_do_and_points_to_dedup():
    data = repeated_data()
    #         a:x    a:x    a:y    a:x   a:y   b:x    b:y    b:z
    code = [TRAIN, TRAIN, TRAIN, TEST, TEST, TRAIN, TRAIN, TEST]
    split = split_by_code(data, code, {"method": "by-hand"}, drop_unseen=True)
    counts = target_counts(split)
    assert counts == {
        "interactions": 3,
        "dropped_unknown": 1,
        "dropped_seen": 2,
        "repeated": 0,
        "targets": 0,
        "users": 0,
    }
    line = describe_split(split)
    assert "nothing dropped" not in line
    assert "3 repeated (user, item) row(s)" in line
    assert "2 test interaction(s)" in line and "dropped as seen" in line and "--dedup" in line


def test_repeats_within_the_test_part_are_one_target():
    data = repeated_data()
    #        a:x   a:x   a:y    a:x   a:y   b:x    b:y    b:z
    code = [TEST, TEST, VALID, TEST, TEST, TRAIN, TRAIN, TEST]
    counts = target_counts(split_by_code(data, code, {"method": "by-hand"}))
    # a:x three times in test (one target), a:y seen in valid, b:z a new pair
    assert counts == {
        "interactions": 5,
        "dropped_unknown": 0,
        "dropped_seen": 1,
        "repeated": 2,
        "targets": 2,
        "users": 2,
    }


def test_results_protocol_records_duplicates_and_dropped_targets():
    data = repeated_data()
    code = [TRAIN, TRAIN, TRAIN, TEST, TEST, TRAIN, TRAIN, TEST]
    split = split_by_code(data, code, {"method": "by-hand"}, drop_unseen=False)
    result = run_benchmark(split, {"pop": MODELS["pop"]}, ks=(1,), metrics=("ndcg",), protocol={})
    protocol = result.to_dict()["protocol"]
    assert protocol["targets"] == {
        "interactions": 3,
        "dropped_unknown": 0,
        "dropped_seen": 2,
        "repeated": 0,
        "targets": 1,
        "users": 1,
    }


def write_ratings(folder, rows) -> None:
    folder.mkdir()
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t4\t{t}\n" for t, (u, i) in enumerate(rows)))


def test_benchmark_reports_repeats_on_the_console_and_in_results(tmp_path, capsys):
    rows = [(u, (u + j) % 50) for u in range(1, 21) for j in range(30)]  # 30 of 50 items
    rows += [(u, (u + j) % 50) for u in range(1, 21) for j in range(10)] * 2  # 10 rated thrice
    write_ratings(tmp_path / "ml", rows)
    out = tmp_path / "results.json"
    args = [
        "benchmark",
        "--dataset",
        str(tmp_path / "ml"),
        "--models",
        "pop",
        "--k",
        "5",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "400 repeated (user, item) row(s)" in err and "--dedup" in err
    protocol = json.loads(out.read_text())["protocol"]
    assert protocol["split_info"]["duplicates"] == 400
    assert protocol["targets"]["dropped_seen"] > 0
    seen_before = protocol["targets"]["dropped_seen"]

    assert main(args + ["--dedup"]) == 0
    assert "repeated" not in capsys.readouterr().err
    protocol = json.loads(out.read_text())["protocol"]
    assert protocol["split_info"]["duplicates"] == 0 and protocol["targets"]["dropped_seen"] == 0
    assert protocol["filtering"] == {"dedup": True} and seen_before > 0
