"""The large-log generator: shapes, determinism, layouts read back by the existing loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from genrec.data.amazon import load_amazon_2023  # noqa: E402
from genrec.data.generator import (  # noqa: E402
    FORMATS,
    GENRES,
    InteractionWorld,
    interaction_blocks,
    user_counts,
    write_interactions,
)
from genrec.data.sources import load_dataset  # noqa: E402

SMALL = InteractionWorld(n_users=300, n_items=200, n_interactions=9_000, seed=3)


def _log(world: InteractionWorld) -> dict[str, np.ndarray]:
    blocks = list(interaction_blocks(world))
    return {
        name: np.concatenate([getattr(b, name) for b in blocks])
        for name in ("user_id", "item_id", "rating", "timestamp")
    }


@pytest.fixture(scope="module")
def log():
    return _log(InteractionWorld(n_users=2_000, n_items=1_000, n_interactions=40_000, seed=0))


def _files(folder) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_parquet_layout_schema_and_manifest(tmp_path):
    folder = write_interactions(tmp_path / "out", SMALL, chunk_rows=4_000)
    parts = sorted((folder / "interactions").iterdir())
    assert [p.name for p in parts] == [f"part-0000{k}.parquet" for k in range(3)]
    table = pq.read_table(folder / "interactions")
    assert table.schema == pa.schema(
        [("user_id", pa.int64()), ("item_id", pa.int64()), ("rating", pa.float32())]
        + [("timestamp", pa.int64())]
    )
    assert table.num_rows == 9_000
    assert [pq.read_metadata(p).num_rows for p in parts] == [4_000, 4_000, 1_000]
    items = pq.read_table(folder / "items.parquet")
    assert items.column_names == ["item_id", "title", "genres", "description"]
    assert items.schema.field("item_id").type == pa.int64()
    assert items["item_id"].to_pylist() == list(range(1, 201))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["rows"]["interactions"] == 9_000 and manifest["rows"]["parts"] == [
        4_000,
        4_000,
        1_000,
    ]
    assert manifest["parameters"]["n_users"] == 300 and manifest["seed"] == 3
    assert manifest["genrec_version"] and manifest["format"] == "parquet"
    users = table["user_id"].to_numpy()
    assert users.min() == 1 and users.max() == 300 and len(np.unique(users)) == 300


@pytest.mark.parametrize("fmt", ["parquet", "ml-1m", "amazon"])
def test_same_seed_gives_byte_identical_files(tmp_path, fmt):
    a = _files(write_interactions(tmp_path / "a", SMALL, format=fmt, chunk_rows=5_000))
    b = _files(write_interactions(tmp_path / "b", SMALL, format=fmt, chunk_rows=5_000))
    assert a == b
    other = InteractionWorld(n_users=300, n_items=200, n_interactions=9_000, seed=4)
    c = _files(write_interactions(tmp_path / "c", other, format=fmt, chunk_rows=5_000))
    assert c.keys() == a.keys() and c != a


def test_part_size_does_not_change_the_rows(tmp_path):
    one = pq.read_table(
        write_interactions(tmp_path / "a", SMALL, chunk_rows=10**6) / "interactions"
    )
    many = pq.read_table(write_interactions(tmp_path / "b", SMALL, chunk_rows=777) / "interactions")
    assert one.equals(many)


def test_counts_sum_with_a_minimum_and_a_heavy_tail():
    world = InteractionWorld(n_users=5_000, n_items=3_000, n_interactions=150_000, min_per_user=7)
    counts = user_counts(world)
    assert counts.sum() == 150_000 and counts.min() >= 7
    assert counts.max() > 8 * np.median(counts)  # log-normal tail: a few very active users


def test_item_popularity_follows_a_power_law(log):
    per_item = np.sort(np.bincount(log["item_id"], minlength=1_001)[1:])[::-1]
    top = per_item[: len(per_item) // 100].sum() / per_item.sum()
    assert top > 0.10  # top 1% of items hold over 10x their share
    flat = _log(
        InteractionWorld(
            n_users=2_000, n_items=1_000, n_interactions=40_000, item_exponent=0.0, taste=0.0
        )
    )
    per_item = np.sort(np.bincount(flat["item_id"], minlength=1_001)[1:])[::-1]
    assert per_item[:10].sum() / per_item.sum() < 0.02  # exponent 0: about uniform


def test_no_repeated_pairs_unless_asked(log):
    pairs = log["user_id"] * 10_000 + log["item_id"]
    assert len(np.unique(pairs)) == len(pairs)
    world = InteractionWorld(n_users=50, n_items=10, n_interactions=2_000, repeats=True)
    again = _log(world)
    assert len(again["user_id"]) == 2_000
    assert len(np.unique(again["user_id"] * 100 + again["item_id"])) < 2_000


def test_users_with_most_of_the_catalogue_get_distinct_items():
    world = InteractionWorld(n_users=40, n_items=20, n_interactions=700, min_per_user=12)
    got = _log(world)
    pairs = got["user_id"] * 100 + got["item_id"]
    assert len(np.unique(pairs)) == 700 and got["item_id"].max() <= 20
    full = _log(InteractionWorld(n_users=10, n_items=8, n_interactions=80, min_per_user=1))
    assert np.array_equal(np.bincount(full["user_id"])[1:], np.full(10, 8))


def test_timestamps_increase_per_user_in_sessions(log):
    user, time = log["user_id"], log["timestamp"]
    assert np.all(np.diff(user) >= 0)  # grouped by user
    same = np.diff(user) == 0
    gaps = np.diff(time)[same]
    assert gaps.min() >= 10  # strictly increasing within a user
    within, between = gaps <= 1_800, gaps >= 3_600
    assert np.all(within | between)  # the 30-minute rule recovers the sessions
    assert 0.15 < between.mean() < 0.40  # sessions of about four interactions
    assert time.min() >= 1_420_070_400


def test_ratings_are_stars_skewed_high(log):
    stars = np.bincount(log["rating"].astype(int), minlength=6)[1:]
    assert log["rating"].min() >= 1 and log["rating"].max() <= 5
    assert np.argmax(stars) == 3 and 3.3 < log["rating"].mean() < 3.9


def test_item_text_names_the_genres(tmp_path):
    items = pq.read_table(write_interactions(tmp_path / "o", SMALL) / "items.parquet").to_pylist()
    for row in items:
        genres = row["genres"].split("|")
        assert set(genres) <= set(GENRES) and len(genres) == len(set(genres))
        assert genres[0].lower() in row["description"] and row["title"]


@pytest.mark.parametrize("fmt", ["ml-1m", "ml-10m", "ml-20m", "ml-25m"])
def test_movielens_layouts_load_through_load_dataset(tmp_path, fmt):
    folder = write_interactions(tmp_path / fmt, SMALL, format=fmt)
    manifest = json.loads((folder / "manifest.json").read_text())
    data, _ = load_dataset(folder, cache_dir=tmp_path / "cache", progress=False)
    assert (data.n_users, len(data)) == (300, 9_000)
    assert data.n_items == manifest["rows"]["items_with_interactions"]
    assert data.catalog is not None and data.catalog["title"][0].startswith("The ")
    assert 1920 <= data.catalog["year"][0] <= 2020 and data.catalog["genres"][0]
    parquet = pq.read_table(write_interactions(tmp_path / "p", SMALL) / "interactions")
    assert sorted(data.value.tolist()) == sorted(parquet["rating"].to_pylist())
    if fmt == "ml-1m":
        assert data.user_table is not None and "occupation" in data.user_table


def test_amazon_layout_loads_through_load_amazon_2023(tmp_path):
    folder = write_interactions(tmp_path / "amazon", SMALL, format="amazon")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["loader"] == "load_amazon_2023"
    data = load_amazon_2023(*(folder / name for name in manifest["files"]))
    assert (data.n_users, len(data)) == (300, 9_000)
    assert data.n_items == manifest["rows"]["items_with_interactions"]
    times = data.timestamp
    assert (
        times.min() == manifest["timestamps"]["min"]
        and times.max() == manifest["timestamps"]["max"]
    )
    assert data.catalog["description"][0] and data.catalog["genres"][0][0] in GENRES


def test_every_format_is_listed_in_the_cli(capsys):
    from genrec.cli import main

    with pytest.raises(SystemExit):
        main(["data", "synth", "interactions", "--help"])
    out = capsys.readouterr().out
    assert all(fmt in out for fmt in FORMATS)


def test_cli_writes_and_reports(tmp_path, capsys):
    from genrec.cli import main

    argv = ["data", "synth", "interactions", "--users", "20", "--items", "15"]
    argv += ["--interactions", "200", "--output", str(tmp_path / "o"), "--quiet"]
    assert main(argv) == 0
    assert "wrote 200 interactions" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "o" / "interactions").num_rows == 200
