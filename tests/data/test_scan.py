"""The out-of-core path (DuckDB scan, memory-mapped cache) equals the in-memory path.

The key check: on the same files, ``scan_dataset`` gives the same interaction arrays, the same
vocabularies and catalog, and every splitter gives the same parts as ``read_in_memory`` followed
by :mod:`genrec.data.filters`. Then: the cache is reused, rebuilt when a file changes, and the
CLI and ``load_dataset`` reach it.
"""

import functools
import json
import logging
import os

import numpy as np
import pytest

pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from genrec.cli import main  # noqa: E402
from genrec.data import filters, scan, sources, splits  # noqa: E402
from genrec.data.splits import describe_split, make_split  # noqa: E402
from genrec.errors import ConfigError, DataError  # noqa: E402

ARRAYS = ("user_idx", "item_idx", "value", "timestamp", "user_counts", "item_counts", "time_order")


def write_folder(folder, *, seed=1, parts=3, rows=300, users=50, items=30):
    """A Parquet folder in the synth layout: string-free int ids, repeated pairs, tied times."""
    rng = np.random.default_rng(seed)
    (folder / "interactions").mkdir(parents=True)
    for k in range(parts):
        table = {
            "user_id": rng.integers(0, users, rows) * 3 + 7,
            "item_id": rng.integers(0, items, rows) + 1000,
            "rating": rng.integers(1, 6, rows).astype(np.float32),
            "timestamp": rng.integers(0, 40, rows),
        }
        pq.write_table(pa.table(table), folder / "interactions" / f"part-{k:05d}.parquet")
    catalog = {
        "item_id": np.arange(1000, 1000 + items + 5),
        "title": [f"title {i}" for i in range(items + 5)],
        "genres": ["Drama|Comedy" if i % 2 else "Horror" for i in range(items + 5)],
        "description": [f"item {i}" for i in range(items + 5)],
    }
    pq.write_table(pa.table(catalog), folder / "items.parquet")
    return folder


def in_memory(source, *, min_rating=None, dedup=False, k_core=None):
    data = scan.read_in_memory(source)
    if min_rating is not None:
        data = filters.filter_rating(data, min_rating)
    if dedup:
        data = filters.drop_duplicates(data)
    if k_core is not None:
        data = filters.k_core(data, k_core)
    return data


def assert_same_data(a, b):
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.users == b.users and a.items == b.items
    assert (a.user_items != b.user_items).nnz == 0
    assert a.user_items.indices.dtype == b.user_items.indices.dtype
    assert a.stats() == b.stats()
    if b.catalog is not None:
        assert sorted(a.catalog.columns) == sorted(b.catalog.columns)
        for column in b.catalog.columns:
            assert list(a.catalog[column]) == list(b.catalog[column]), column


def assert_same_split(a, b):
    assert a.info == b.info
    for part in ("train", "valid", "test", "fold_in"):
        pa_, pb = getattr(a, part), getattr(b, part)
        assert (pa_ is None) == (pb is None)
        if pb is not None:
            for name in ("user_idx", "item_idx", "value", "timestamp"):
                np.testing.assert_array_equal(getattr(pa_, name), getattr(pb, name))


def built(cache) -> list:
    """The scan cache folders under ``cache`` (not the hidden lock files beside them)."""
    return sorted(p for p in (cache / "scans").iterdir() if not p.name.startswith("."))


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "log")


FILTERS = [
    {},
    {"min_rating": 3.0},
    {"dedup": True},
    {"k_core": 12},
    {"min_rating": 2.0, "dedup": True, "k_core": 5},
]


@pytest.mark.parametrize("settings", FILTERS, ids=lambda s: ",".join(s) or "none")
def test_scan_equals_in_memory_dataset_and_splits(folder, tmp_path, settings):
    source = scan.parquet_folder(folder)
    got = scan.scan_dataset(source, cache_dir=tmp_path / "cache", **settings)
    want = in_memory(source, **settings)
    assert len(want) < 900 or not settings  # the filters do remove something
    assert_same_data(got, want)
    for method in ("holdout", "loo", "temporal", "cold-users", "cold-items"):
        assert_same_split(make_split(got, method, seed=7), make_split(want, method, seed=7))


def test_k_core_is_the_one_filters_finds(folder, tmp_path):
    """A k high enough to need several rounds of peeling gives exactly filters.k_core's result."""
    source = scan.parquet_folder(folder)
    raw = scan.read_in_memory(source)
    rounds = [len(raw)]
    for k in (14, 16):
        got = scan.scan_dataset(source, cache_dir=tmp_path / "cache", k_core=k)
        want = filters.k_core(raw, k)
        assert_same_data(got, want)
        assert got.user_counts.min() >= k and got.item_counts.min() >= k
        rounds.append(len(got))
    assert rounds[0] > rounds[1] > rounds[2]


def test_arrays_are_memory_mapped_and_the_csr_is_not_rebuilt(folder, tmp_path):
    data = scan.scan_dataset(scan.parquet_folder(folder), cache_dir=tmp_path / "cache")
    assert isinstance(data.user_idx.base, np.memmap) or isinstance(data.user_idx, np.memmap)
    assert "user_items" in data.__dict__  # preset from the cache, not computed
    assert not data.user_idx.flags.writeable
    assert data.user_idx.dtype == data.item_idx.dtype == np.int32  # stored narrow, mapped as is


def test_second_scan_reuses_the_cache(folder, tmp_path, monkeypatch):
    source = scan.parquet_folder(folder)
    first = scan.scan_dataset(source, cache_dir=tmp_path / "cache")
    (folder_built,) = built(tmp_path / "cache")
    stamps = {p.name: p.stat().st_mtime_ns for p in folder_built.iterdir()}

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache was built again")

    monkeypatch.setattr(scan, "_build", no_rebuild)
    again = scan.scan_dataset(source, cache_dir=tmp_path / "cache")
    assert_same_data(again, first)
    assert {p.name: p.stat().st_mtime_ns for p in folder_built.iterdir()} == stamps


def test_a_changed_source_or_filter_builds_another_cache(folder, tmp_path):
    source = scan.parquet_folder(folder)
    before = scan.scan_dataset(source, cache_dir=tmp_path / "cache")
    scan.scan_dataset(source, cache_dir=tmp_path / "cache", min_rating=3.0)
    assert len(built(tmp_path / "cache")) == 2
    part = folder / "interactions" / "part-00001.parquet"
    table = pq.read_table(part).slice(0, 100)
    pq.write_table(table, part)
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 10**9))
    after = scan.scan_dataset(source, cache_dir=tmp_path / "cache")
    assert len(after) == len(before) - 200
    assert_same_data(after, scan.read_in_memory(source))
    assert len(built(tmp_path / "cache")) == 3


def test_string_ids_and_implicit_feedback(tmp_path):
    path = tmp_path / "log.parquet"
    users = ["b", "a", "b", "c", "a", "b"]
    items = ["x", "y", "y", "x", "z", "z"]
    pq.write_table(pa.table({"who": users, "what": items}), path)
    source = scan.ScanSource((path,), user="who", item="what", name="log")
    got = scan.scan_dataset(source, cache_dir=tmp_path / "cache")
    assert got.users.ids.tolist() == ["b", "a", "c"] and got.items.ids.tolist() == ["x", "y", "z"]
    assert_same_data(got, scan.read_in_memory(source))
    assert not got.has_timestamps and set(got.value.tolist()) == {1.0}


@pytest.mark.parametrize("sep", [",", "::"])
def test_text_files_equal_the_in_memory_path(tmp_path, sep):
    """CSV with a header and MovieLens-style ``::`` files without one, ids read as text."""
    rng = np.random.default_rng(3)
    rows = [
        (f"u{rng.integers(9)}", f"{rng.integers(6):02d}", rng.integers(1, 6), t) for t in range(60)
    ]
    header = sep == ","
    path = tmp_path / ("log.csv" if header else "ratings.dat")
    lines = ([sep.join(["user", "item", "rating", "time"])] if header else []) + [
        sep.join(str(x) for x in row) for row in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    source = scan.ScanSource(
        (path,),
        user="user",
        item="item",
        rating="rating",
        timestamp="time",
        sep=sep,
        header=header,
        names=() if header else ("user", "item", "rating", "time"),
    )
    got = scan.scan_dataset(source, cache_dir=tmp_path / "cache", k_core=2)
    want = in_memory(source, k_core=2)
    assert "01" in got.items or "01" not in want.items  # leading zeros kept: ids are text
    assert_same_data(got, want)


def test_choose_engine(folder, monkeypatch):
    source = scan.parquet_folder(folder)
    assert scan.choose_engine(source) == "pandas"
    monkeypatch.setattr(scan, "AUTO_ROWS", 100)
    assert scan.choose_engine(source) == "duckdb"
    assert scan.choose_engine(source, "pandas") == "pandas"
    with pytest.raises(ConfigError, match="engine must be one of auto, pandas, duckdb"):
        scan.choose_engine(source, "polars")


def test_load_dataset_reads_a_parquet_folder_either_way(folder, tmp_path):
    kw = {"cache_dir": tmp_path / "cache", "min_rating": 2.0, "k_core": 3}
    got, applied = sources.load_dataset(folder, engine="duckdb", **kw)
    want, applied_too = sources.load_dataset(folder, engine="pandas", **kw)
    assert applied == applied_too == {"min_rating": 2.0, "k_core": 3}
    assert_same_data(got, want)
    assert len(built(tmp_path / "cache")) == 1
    with pytest.raises(ConfigError, match="engine must be one of"):
        sources.load_dataset(folder, engine="spark", cache_dir=tmp_path / "cache")


def test_cli_data_info_scans_out_of_core(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["data", "info", str(folder), "--engine", "duckdb", "--k-core", "3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == in_memory(scan.parquet_folder(folder), k_core=3).stats()
    assert len(built(tmp_path / "cache")) == 1


def test_build_failure_leaves_no_cache(folder, tmp_path, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scan, "_write_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        scan.scan_dataset(scan.parquet_folder(folder), cache_dir=tmp_path / "cache")
    assert built(tmp_path / "cache") == []
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        scan.scan_dataset(scan.parquet_folder(folder), cache_dir=tmp_path / "cache")
    assert "damaged" not in caplog.text


def write_movielens(folder, layout):
    """A tiny ML-1M (``::`` files with movies and users) or ML-20M (CSV) folder."""
    rng = np.random.default_rng(5)
    folder.mkdir()
    rows = [
        (rng.integers(1, 9), rng.integers(1, 7), rng.integers(1, 6), 9 * 10**8 + t)
        for t in range(80)
    ]
    movies = [
        (m, f"Movie {m} ({1990 + m})", "Drama|Comedy" if m % 2 else "Horror") for m in range(1, 8)
    ]
    if layout == "dat":
        (folder / "ratings.dat").write_text("".join("::".join(map(str, r)) + "\n" for r in rows))
        (folder / "movies.dat").write_text("".join("::".join(map(str, m)) + "\n" for m in movies))
        users = [(u, "F" if u % 2 else "M", 25, u % 21, f"0{u}000") for u in range(1, 9)]
        (folder / "users.dat").write_text("".join("::".join(map(str, u)) + "\n" for u in users))
    else:
        lines = ["userId,movieId,rating,timestamp"] + [",".join(map(str, r)) for r in rows]
        (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
        movie_lines = ["movieId,title,genres"] + [f'{m},"{t}",{g}' for m, t, g in movies]
        (folder / "movies.csv").write_text("\n".join(movie_lines) + "\n")
    return folder


@pytest.mark.parametrize("layout", ["dat", "csv"])
def test_movielens_folders_scan_to_what_load_movielens_gives(tmp_path, layout):
    folder = write_movielens(tmp_path / f"ml-{layout}", layout)
    kw = {"cache_dir": tmp_path / "cache", "min_rating": 2.0, "k_core": 2}
    got, _ = sources.load_dataset(folder, engine="duckdb", **kw)
    want, _ = sources.load_dataset(folder, engine="pandas", **kw)
    assert len(built(tmp_path / "cache")) == 1
    assert_same_data(got, want)
    assert got.positive_threshold == want.positive_threshold == 4.0
    if layout == "dat":
        for column in want.user_table.columns:
            assert list(got.user_table[column]) == list(want.user_table[column]), column
    assert_same_split(make_split(got, "loo"), make_split(want, "loo"))


@pytest.mark.parametrize("method", ["holdout", "loo", "cold-users"])
def test_a_split_of_the_cache_is_stored_and_reused(folder, tmp_path, monkeypatch, method):
    source = scan.parquet_folder(folder)
    want = make_split(scan.read_in_memory(source), method, seed=4)
    first = make_split(scan.scan_dataset(source, cache_dir=tmp_path / "cache"), method, seed=4)
    assert_same_split(first, want)

    @functools.wraps(splits.SPLITTERS[method])  # the same signature: the same options
    def no_split(*args, **kwargs):
        raise AssertionError("split again")

    monkeypatch.setitem(splits.SPLITTERS, method, no_split)
    again = make_split(scan.scan_dataset(source, cache_dir=tmp_path / "cache"), method, seed=4)
    assert_same_split(again, want)
    assert again.code.dtype == np.int8 and len(again.code) == len(want.code)
    assert describe_split(again) == describe_split(want)
    if method != "loo":  # loo takes no seed: the same split
        with pytest.raises(AssertionError, match="split again"):  # another seed, another split
            make_split(scan.scan_dataset(source, cache_dir=tmp_path / "cache"), method, seed=5)


def overwrite(path, position, value):
    arr = np.load(path, mmap_mode="r+")
    arr[position] = value
    arr.flush()


SPLIT_DAMAGE = {
    "code of another size": lambda f: np.save(f / "code.npy", np.zeros(3, np.int8)),
    "item index beyond the vocabulary": lambda f: overwrite(f / "train.item_idx.npy", 2, 99),
    "NaN value": lambda f: overwrite(f / "valid.value.npy", 0, np.nan),
    "a part's column missing": lambda f: (f / "test.timestamp.npy").unlink(),
    "a part cut short": lambda f: np.save(f / "test.user_idx.npy", np.zeros(1, np.int32)),
    "another dtype": lambda f: np.save(
        f / "train.value.npy", np.load(f / "train.value.npy").astype(np.float64)
    ),
}


@pytest.mark.parametrize("damage", sorted(SPLIT_DAMAGE))
def test_a_damaged_stored_split_is_made_again(folder, tmp_path, caplog, damage):
    source = scan.parquet_folder(folder)
    make_split(scan.scan_dataset(source, cache_dir=tmp_path / "cache"), "holdout", seed=1)
    (stored,) = (p for p in (built(tmp_path / "cache")[0] / "splits").iterdir() if p.is_dir())
    SPLIT_DAMAGE[damage](stored)
    with caplog.at_level(logging.WARNING, logger="genrec.data.scan"):
        got = make_split(scan.scan_dataset(source, cache_dir=tmp_path / "cache"), "holdout", seed=1)
    assert "ignoring the stored split" in caplog.text
    assert_same_split(got, make_split(scan.read_in_memory(source), "holdout", seed=1))


def test_stored_parts_stay_memory_mapped(folder, tmp_path):
    """On the first run as on the second, a split of the cache hands out parts whose columns
    are the stored files, mapped (read-only), not copies in memory; a model fits on them."""
    from genrec.build import build_model

    source = scan.parquet_folder(folder)
    for run in ("first", "second"):
        split = make_split(scan.scan_dataset(source, cache_dir=tmp_path / "cache"), "holdout")
        for part in (split.train, split.valid, split.test):
            for name in ("user_idx", "item_idx", "value", "timestamp"):
                column = getattr(part, name)
                assert isinstance(column, np.memmap), (run, name)
                assert not column.flags.writeable
        assert isinstance(split.code, np.memmap)
        assert split.train.users is split.valid.users  # one vocabulary for every part
    model = build_model("pop").fit(split.train)
    items, scores = model.recommend(split.train.user_items[:4], k=3)
    assert items.shape == scores.shape == (4, 3)


@pytest.mark.parametrize("layout", ["parquet", "ml-1m", "ml-20m"])
def test_generated_worlds_scan_to_the_in_memory_dataset(tmp_path, layout):
    """`genrec data synth interactions` output in the layouts the scan reads."""
    from genrec.data.generator import InteractionWorld, write_interactions

    world = InteractionWorld(n_users=60, n_items=40, n_interactions=900, seed=3)
    folder = write_interactions(tmp_path / layout, world, format=layout, chunk_rows=300)
    kw = {"cache_dir": tmp_path / "cache", "k_core": 3}
    got, _ = sources.load_dataset(folder, engine="duckdb", **kw)
    want, _ = sources.load_dataset(folder, engine="pandas", **kw)
    assert len(built(tmp_path / "cache")) == 1 and len(got) == len(want) > 0
    assert_same_data(got, want)
    assert_same_split(make_split(got, "temporal"), make_split(want, "temporal"))


def test_min_rating_compares_like_the_in_memory_filter(tmp_path):
    """Values are float32 in a Dataset: 3.3 stored as float32 passes min_rating=3.3 in both."""
    path = tmp_path / "log.parquet"
    rating = pa.array([3.3, 3.2, 4.0], pa.float32())
    pq.write_table(pa.table({"u": [1, 2, 3], "i": [1, 1, 2], "r": rating}), path)
    source = scan.ScanSource((path,), user="u", item="i", rating="r", name="log")
    got = scan.scan_dataset(source, cache_dir=tmp_path / "cache", min_rating=3.3)
    assert_same_data(got, in_memory(source, min_rating=3.3))
    assert len(got) == 2


def test_filters_that_leave_nothing_say_so(folder, tmp_path):
    source = scan.parquet_folder(folder)
    with pytest.raises(DataError, match=r"the filters \(min_rating=9.0\) removed every"):
        scan.scan_dataset(source, cache_dir=tmp_path / "cache", min_rating=9.0)
    with pytest.raises(ConfigError, match="k_core: k must be an int >= 1"):
        scan.scan_dataset(source, cache_dir=tmp_path / "cache", k_core=0)


def test_an_experiment_on_either_engine_gives_the_same_results(folder, tmp_path):
    from genrec.experiment import Experiment, run_experiment

    results = {}
    for engine in ("duckdb", "pandas"):
        exp = Experiment.from_dict(
            {"name": "t", "dataset": str(folder), "engine": engine, "split": "loo"}
            | {"models": [{"name": "pop"}], "filters": {"k_core": 3}}
        )
        run = run_experiment(exp, cache_dir=tmp_path / "cache", threads=1, progress=False)
        protocol = run.results["protocol"]
        metrics = [(r["model"], r["metrics"]) for r in run.results["results"]]
        results[engine] = (metrics, protocol["checksum"], protocol["split_info"], exp.sha256())
    assert results["duckdb"] == results["pandas"]
    with pytest.raises(ConfigError, match="engine must be one of auto, pandas, duckdb"):
        Experiment.from_dict({"name": "t", "engine": "spark", "models": [{"name": "pop"}]})


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_small_chunks_give_the_same_arrays_and_csr(folder, tmp_path, monkeypatch, chunk):
    """Batches from DuckDB and blocks of users for the CSR cut anywhere (a block always holds
    whole users, even one user longer than a chunk)."""
    monkeypatch.setattr(scan, "CHUNK_ROWS", chunk)
    source = scan.parquet_folder(folder)
    got = scan.scan_dataset(source, cache_dir=tmp_path / "cache", min_rating=2.0)
    assert_same_data(got, in_memory(source, min_rating=2.0))


def test_a_named_movielens_release_scans_after_its_fetch(tmp_path):
    """A catalogued source read by load_movielens (ML-20M, ML-25M by name) reaches the scan."""
    import zipfile

    write_movielens(tmp_path / "ml-tiny", "csv")
    archive = tmp_path / "ml-tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (tmp_path / "ml-tiny").iterdir():
            zf.write(path, f"ml-tiny/{path.name}")
    remote = sources.RemoteFile((archive.as_uri(),), "ml-tiny.zip", unpack=True)
    catalog = {"ml-tiny": sources.Source("ml-tiny", (remote,), "load_movielens", "tiny")}
    kw = {"cache_dir": tmp_path / "cache", "sources": catalog, "progress": False}
    got, _ = sources.load_dataset("ml-tiny", engine="duckdb", **kw)
    want, _ = sources.load_dataset("ml-tiny", engine="pandas", **kw)
    assert got.name == want.name == "ml-tiny"
    assert len(built(tmp_path / "cache")) == 1
    assert_same_data(got, want)


@pytest.mark.parametrize("pattern", ["all", "runs", "random", "last dropped"])
def test_rows_of_kept_positions_count_the_kept_before_them(pattern):
    """Blocks kept whole (256 of 256, past a uint8's range), dropped whole, or cut anywhere."""
    rng = np.random.default_rng(3)
    n = 5 * scan._Rows.BLOCK + 17
    kept = {
        "all": np.ones(n, bool),
        "runs": (np.arange(n) // 300) % 2 == 0,
        "random": rng.random(n) < 0.7,
        "last dropped": np.arange(n) < n - 1,
    }[pattern]
    padded = np.zeros(-(-n // scan._Rows.BLOCK) * scan._Rows.BLOCK, np.uint8)
    padded[:n] = kept
    positions = np.flatnonzero(kept)
    rows = scan._Rows(padded)(positions)
    np.testing.assert_array_equal(rows, np.arange(len(positions)))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32])
def test_arrays_written_in_chunks_equal_np_save(tmp_path, dtype):
    values = np.arange(1000).astype(dtype)
    with scan._NpyFile(tmp_path / "chunks.npy", dtype, len(values)) as out:
        for start in range(0, len(values), 300):
            out.write(values[start : start + 300].astype(np.int64))  # cast on the way
    np.save(tmp_path / "whole.npy", values)
    assert (tmp_path / "chunks.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    with pytest.raises(RuntimeError, match="wrote 3 values of 4"):
        with scan._NpyFile(tmp_path / "short.npy", dtype, 4) as out:
            out.write(values[:3])


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_text_ids_of_any_width_are_written_in_chunks(tmp_path, monkeypatch, chunk):
    """The vocabularies are written a chunk at a time as wide as their widest id."""
    monkeypatch.setattr(scan, "CHUNK_ROWS", chunk)
    users = ["u", "user-22", "ü", "😀-long-user-id", "u", "user-22", "x"]
    items = ["i1", "i1", "item-ß", "i1", "i-333333", "", "i1"]
    pq.write_table(pa.table({"u": users, "i": items}), tmp_path / "log.parquet")
    source = scan.ScanSource((tmp_path / "log.parquet",), user="u", item="i", name="log")
    got = scan.scan_dataset(source, cache_dir=tmp_path / "cache")
    assert_same_data(got, in_memory(source))
    (folder,) = built(tmp_path / "cache")
    assert np.load(folder / "user_ids.npy").dtype == np.dtype("<U14")  # the emoji id
    assert list(np.load(folder / "item_ids.npy")) == ["i1", "item-ß", "i-333333", ""]
