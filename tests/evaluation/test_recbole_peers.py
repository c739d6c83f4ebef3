"""The bridge of benchmarks/recbole_peers.py: genrec's split goes out as RecBole atomic files (or,
for sequence models, RecBole's sequential benchmark files) and RecBole's scores come back under
genrec's indices, to be ranked by genrec's evaluator.

The last tests run RecBole 1.2.1 itself (``.venv-recbole``, which ``make test`` sets up) on
planted clusters and check that genrec's evaluation of RecBole's scores equals RecBole's own.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genrec.data.dataset import Dataset
from genrec.data.splits import leave_one_out_split
from genrec.data.synthetic import deterministic_sequences, planted_clusters
from genrec.errors import DataError
from genrec.evaluation.protocol import evaluate_split

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import recbole_peers as P  # noqa: E402
import recbole_sequence_peers as S  # noqa: E402

needs_recbole = pytest.mark.skipif(
    not P.DEFAULT_PYTHON.exists(), reason="no .venv-recbole; run bash scripts/setup_recbole.sh"
)


def _pairs(data):
    return set(
        zip(data.users.ids_of(data.user_idx).tolist(), data.items.ids_of(data.item_idx).tolist())
    )


def test_split_files_hold_each_part_as_given(tmp_path):
    split = planted_clusters(seed=1).split
    P.write_split(split, tmp_path)
    for part in ("train", "valid", "test"):
        lines = (tmp_path / "genrec" / f"genrec.{part}.inter").read_text().splitlines()
        assert lines[0] == "user_id:token\titem_id:token"
        rows = {tuple(line.split("\t")) for line in lines[1:]}
        assert len(lines) - 1 == len(getattr(split, part))
        assert rows == {(str(u), str(i)) for u, i in _pairs(getattr(split, part))}


def _saved_scores(path, split, users, items, rng):
    scores = rng.random((len(users), len(items))).astype(np.float32)
    np.savez(
        path,
        scores=scores,
        users=np.array(split.train.users.ids_of(users), dtype=str),
        items=np.array(split.train.items.ids_of(items), dtype=str),
        info=json.dumps(
            {
                "model": "Fake",
                "seed": 0,
                "seconds": 1.0,
                "best_epoch": 1,
                "epochs_run": 1,
                "test": {},
            }
        ),
    )
    return scores


def test_saved_scores_come_back_under_genrec_indices(tmp_path):
    split = planted_clusters(seed=2).split
    rng = np.random.default_rng(0)
    users = rng.permutation(split.train.n_users)  # RecBole's own order of users and items
    items = rng.permutation(split.train.n_items)[:-1]  # one item RecBole never saw
    scores = _saved_scores(tmp_path / "s.npz", split, users, items, rng)
    table = P.RecBoleScores(tmp_path / "s.npz", split)
    got = table.score(None, users=users[:5])
    np.testing.assert_array_equal(got[:, items], scores[:5])
    missing = np.setdiff1d(np.arange(split.train.n_items), items)
    assert (got[:, missing] < scores.min()).all()
    assert table.name == "Fake"


def test_users_recbole_did_not_score_are_an_error_not_a_silent_zero(tmp_path):
    split = planted_clusters(seed=3).split
    rng = np.random.default_rng(0)
    _saved_scores(tmp_path / "s.npz", split, np.arange(3), np.arange(split.train.n_items), rng)
    with pytest.raises(ValueError, match="did not score"):
        evaluate_split(P.RecBoleScores(tmp_path / "s.npz", split), split, "test")


@needs_recbole
@pytest.mark.parametrize("model, epochs", [("EASE", 1), ("MultiDAE", 3)])
def test_genrec_scores_recbole_runs_as_recbole_does(tmp_path, model, epochs):
    world = planted_clusters(n_users=60, n_items=40, n_clusters=4, noise=2, seed=0)
    P.write_split(world.split, tmp_path)
    saved = P.RecBoleScores(
        P.run_recbole(P.DEFAULT_PYTHON, tmp_path, model, 1, epochs), world.split
    )
    evaluation = evaluate_split(saved, world.split, "test", metrics=("ndcg", "recall"))
    own = saved.info["test"]
    for metric in ("ndcg@10", "recall@10", "ndcg@20", "recall@20"):
        assert evaluation.mean(metric) == pytest.approx(own[metric], abs=1e-4), metric
    assert 1 <= saved.info["best_epoch"] <= saved.info["epochs_run"] <= epochs
    if model == "EASE":  # the planted test item is the one unseen in-cluster item
        assert evaluation.mean("recall@10") > 0.9


def _sequence_rows(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id_list:token_seq\titem_id:token"
    return [(u, tuple(past.split(" ")), i) for u, past, i in (x.split("\t") for x in lines[1:])]


def _expected_sequence_rows(data, part_of, max_len):
    """From the raw interactions: each target of a part after the user's earlier items that a
    model may see for it (train for train and valid targets, train + valid for test)."""
    seen = {"train": ("train",), "valid": ("train",), "test": ("train", "valid")}
    users, items = data.users.ids_of(data.user_idx), data.items.ids_of(data.item_idx)
    rows = {"train": [], "valid": [], "test": []}
    for u in np.unique(data.user_idx):
        mine = np.flatnonzero(data.user_idx == u)
        mine = mine[np.argsort(data.timestamp[mine], kind="stable")]
        for k, row in enumerate(mine):
            part = part_of[row]
            past = [str(items[r]) for r in mine[:k] if part_of[r] in seen[part]][-max_len:]
            if past:
                rows[part].append((str(users[row]), tuple(past), str(items[row])))
    return rows


def test_sequence_split_files_hold_each_part_after_its_history(tmp_path):
    world = deterministic_sequences(n_users=30, n_items=24, length=7, seed=4)
    data, split = world.data, world.split
    pairs = {part: _pairs(getattr(split, part)) for part in ("train", "valid", "test")}
    keys = zip(data.users.ids_of(data.user_idx).tolist(), data.items.ids_of(data.item_idx).tolist())
    part_of = [next(part for part in pairs if key in pairs[part]) for key in keys]
    P.write_sequence_split(split, tmp_path, max_len=3)
    expected = _expected_sequence_rows(data, part_of, max_len=3)
    for part in ("train", "valid", "test"):
        got = _sequence_rows(tmp_path / "genrec" / f"genrec.{part}.inter")
        assert sorted(got) == sorted(expected[part]), part
    assert len(expected["test"]) == len(split.test) and len(expected["valid"]) == len(split.valid)
    assert len(expected["train"]) == len(split.train) - split.train.n_users


def test_sequence_ids_with_spaces_are_refused_with_the_fix(tmp_path):
    world = deterministic_sequences(n_users=5, n_items=9, length=3, seed=0)
    data = world.data
    spaced = Dataset.from_interactions(
        [f"user {u}" for u in data.users.ids_of(data.user_idx)],
        data.items.ids_of(data.item_idx),
        timestamp=data.timestamp,
    )
    with pytest.raises(DataError, match="'user .*whitespace.*rename"):
        P.write_sequence_split(leave_one_out_split(spaced), tmp_path)


@needs_recbole
def test_genrec_scores_a_recbole_sequence_run_as_recbole_does(tmp_path):
    world = deterministic_sequences(n_users=60, n_items=24, length=8, seed=0)
    P.write_sequence_split(world.split, tmp_path)
    saved = P.RecBoleScores(
        P.run_recbole(P.DEFAULT_PYTHON, tmp_path, "GRU4Rec", 1, 3, sequence=True), world.split
    )
    own, unmasked = saved.info["test"], S.unmasked(saved, world.split)
    for metric in ("ndcg@10", "recall@10", "ndcg@20", "recall@20"):
        assert unmasked[metric] == pytest.approx(own[metric], abs=1e-4), metric
    assert 1 <= saved.info["best_epoch"] <= saved.info["epochs_run"] <= 3
    progress = (tmp_path / "GRU4Rec-1.npz.progress.jsonl").read_text().splitlines()
    assert len(progress) == saved.info["epochs_run"]


@needs_recbole
def test_a_recbole_run_stopped_and_resumed_ends_as_the_uninterrupted_one(tmp_path):
    world = deterministic_sequences(n_users=60, n_items=24, length=8, seed=0)
    whole, pieces = tmp_path / "whole", tmp_path / "pieces"
    for folder in (whole, pieces):
        P.write_sequence_split(world.split, folder)
    uninterrupted = np.load(P.run_recbole(P.DEFAULT_PYTHON, whole, "GRU4Rec", 1, 3, sequence=True))
    piece = P.runner_command(P.DEFAULT_PYTHON, pieces, "GRU4Rec", 1, 3, sequence=True)
    subprocess.run([*piece, "--stop-after", "1"], cwd=pieces, check=True, capture_output=True)
    assert not (pieces / "GRU4Rec-1.npz").exists()
    assert (pieces / "saved" / "GRU4Rec-1" / "last.pth").exists()
    resumed = np.load(P.run_recbole(P.DEFAULT_PYTHON, pieces, "GRU4Rec", 1, 3, sequence=True))
    info = json.loads(str(resumed["info"]))
    assert info["resumed"] == 1 and info["epochs_run"] == 3
    assert info["test"] == json.loads(str(uninterrupted["info"]))["test"]
    np.testing.assert_array_equal(resumed["scores"], uninterrupted["scores"])
    progress = (pieces / "GRU4Rec-1.npz.progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in progress] == [1, 2, 3]
    assert not (pieces / "saved" / "GRU4Rec-1" / "last.pth").exists()
