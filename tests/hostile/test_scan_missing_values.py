"""Null ids, NaN or infinite ratings and null timestamps in the scanned files give a DataError
naming the file, the column, how many rows and the first row, never a dataset with holes."""

import numpy as np
import pytest

pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from genrec.data import scan  # noqa: E402
from genrec.errors import DataError  # noqa: E402


def write_folder(folder, column: str, bad):
    (folder / "interactions").mkdir(parents=True)
    good = {
        "user_id": pa.array([1, 2, 3], pa.int64()),
        "item_id": pa.array([5, 6, 7], pa.int64()),
        "rating": pa.array([4.0, 3.0, 5.0], pa.float32()),
        "timestamp": pa.array([10, 20, 30], pa.int64()),
    }
    pq.write_table(pa.table(good), folder / "interactions" / "part-0.parquet")
    damaged = dict(good)
    damaged[column] = pa.array(bad, good[column].type)
    pq.write_table(pa.table(damaged), folder / "interactions" / "part-1.parquet")
    return scan.parquet_folder(folder)


class TestScanMissingValues:
    @pytest.mark.parametrize(
        "column, bad",
        [
            ("user_id", [1, None, None]),
            ("item_id", [None, 6, 7]),
            ("rating", [4.0, np.nan, 5.0]),
            ("rating", [np.inf, 3.0, 5.0]),
            ("rating", [4.0, None, 5.0]),
            ("timestamp", [10, 20, None]),
        ],
    )
    def test_named_by_file_and_column(self, tmp_path, column, bad):
        source = write_folder(tmp_path / "log", column, bad)
        with pytest.raises(DataError) as err:
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")
        message = str(err.value)
        first = next(j for j, v in enumerate(bad) if v is None or not np.isfinite(v))
        assert "part-1.parquet" in message and f"column {column!r}" in message
        assert f"first at row {first}" in message
        assert not any(p.name.startswith("log-") for p in (tmp_path / "cache" / "scans").iterdir())

    def test_string_ids_with_nulls(self, tmp_path):
        path = tmp_path / "log.parquet"
        pq.write_table(pa.table({"u": ["a", None, "b"], "i": ["x", "y", "z"]}), path)
        source = scan.ScanSource((path,), user="u", item="i", name="log")
        with pytest.raises(DataError, match=r"log\.parquet: column 'u' \(user\) .*first at row 1"):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")
        with pytest.raises(DataError, match=r"log\.parquet: column 'u' \(user\)"):
            scan.read_in_memory(source)

    def test_float_timestamps_are_floored_and_nan_ones_named(self, tmp_path):
        path = tmp_path / "log.parquet"
        table = {"u": [1, 2, 3], "i": [4, 4, 5], "t": [10.7, -3.5, 99.0]}
        pq.write_table(pa.table(table), path)
        source = scan.ScanSource((path,), user="u", item="i", timestamp="t", name="log")
        got = scan.scan_dataset(source, cache_dir=tmp_path / "cache")
        assert got.timestamp.tolist() == scan.read_in_memory(source).timestamp.tolist()
        assert got.timestamp.tolist() == [10, -4, 99]
        pq.write_table(pa.table({**table, "t": [1.0, np.nan, 2.0]}), path)
        with pytest.raises(DataError, match=r"log\.parquet: column 't' \(timestamp\).*row 1"):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")

    def test_a_rating_beyond_float32(self, tmp_path):
        """1e300 is a finite double but no float32: refused before the build, not a traceback
        from the cast, on both engines."""
        path = tmp_path / "log.parquet"
        pq.write_table(pa.table({"u": [1, 2, 3], "i": [5, 6, 7], "r": [4.0, 1e300, 5.0]}), path)
        source = scan.ScanSource((path,), user="u", item="i", rating="r", name="log")
        with pytest.raises(DataError, match=r"column 'r' \(rating\) .*float32.*first at row 1"):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")
        with pytest.raises(DataError, match="NaN or infinite"):
            scan.read_in_memory(source)
