"""The benchmark runner: the protocol block it records and the files save_rankings writes."""

import csv

import numpy as np
import pytest

from genrec.data.splits import leave_one_out_split
from genrec.data.synthetic import planted_clusters
from genrec.evaluation.runner import protocol_block, run_benchmark
from genrec.models import Pop
from genrec.options import RunOptions


@pytest.fixture(scope="module")
def world():
    return planted_clusters(n_users=30, n_items=24, n_clusters=3, noise=2, seed=0)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_protocol_block_records_data_split_and_seeds(world):
    block = protocol_block(world.data, world.split, training_seed=42, filtering={"k_core": 2})
    assert block["dataset"] == world.data.name and block["checksum"] == world.data.checksum()
    assert block["split"] == "planted-clusters" and block["split_info"] is world.split.info
    assert block["seed"] == 0 and block["training_seed"] == 42  # the split's own seed
    assert block["filtering"] == {"k_core": 2}
    named = protocol_block(world.data, world.split, split_name="holdout", seed=7)
    assert named["split"] == "holdout" and named["seed"] == 7 and "training_seed" not in named


def test_a_deterministic_split_leaves_the_seed_to_the_run(world):
    split = leave_one_out_split(world.data)
    block = protocol_block(world.data, split)
    assert block["split"] == "loo" and "seed" not in block
    result = run_benchmark(split, {"pop": Pop}, protocol=block, options=RunOptions(seed=5))
    assert result.protocol["seed"] == 5


def test_save_rankings_writes_only_the_sampled_users_test_items(world, tmp_path):
    test = world.split.test
    users = np.array([11, 2, 7])  # any order: the runner sorts the sample
    result = run_benchmark(world.split, {"pop": Pop}, protocol={}, ks=(5,), users=users)
    _, test_path = result.save_rankings(tmp_path / "top.csv", world.split)
    written = sorted((r["user"], r["item"]) for r in read_csv(test_path))
    keep = np.isin(test.user_idx, users)
    expected = sorted(
        zip(
            test.users.ids[test.user_idx[keep]].tolist(),
            test.items.ids[test.item_idx[keep]].tolist(),
        )
    )
    assert written == [(str(u), str(i)) for u, i in expected] and len(written) == 3
    ranked_users = {r["user"] for r in read_csv(tmp_path / "top.csv")}
    assert ranked_users == {str(u) for u in test.users.ids[users]}


def test_save_rankings_without_a_sample_writes_every_test_item(world, tmp_path):
    result = run_benchmark(world.split, {"pop": Pop}, protocol={}, ks=(5,))
    _, test_path = result.save_rankings(tmp_path / "top.csv", world.split)
    assert len(read_csv(test_path)) == len(world.split.test)
