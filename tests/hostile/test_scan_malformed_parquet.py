"""A file that is not Parquet (truncated, text under a .parquet name) stops the out-of-core scan
with a DataError naming the file, before any cache is written."""

import pytest

pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from genrec.data import scan, sources  # noqa: E402
from genrec.errors import DataError  # noqa: E402


def write_folder(folder):
    (folder / "interactions").mkdir(parents=True)
    table = pa.table({"user_id": [1, 2, 2], "item_id": [5, 5, 6], "rating": [4.0, 3.0, 5.0]})
    table = table.append_column("timestamp", pa.array([10, 20, 30], pa.int64()))
    for k in range(2):
        pq.write_table(table, folder / "interactions" / f"part-{k}.parquet")
    return folder


class TestScanMalformedParquet:
    def test_truncated_part(self, tmp_path):
        folder = write_folder(tmp_path / "log")
        part = folder / "interactions" / "part-1.parquet"
        part.write_bytes(part.read_bytes()[:40])
        with pytest.raises(DataError, match=r"part-1\.parquet: not a readable Parquet file"):
            scan.scan_dataset(scan.parquet_folder(folder), cache_dir=tmp_path / "cache")
        assert not (tmp_path / "cache" / "scans").exists()

    def test_text_under_a_parquet_name(self, tmp_path):
        folder = write_folder(tmp_path / "log")
        (folder / "interactions" / "part-0.parquet").write_text("user_id,item_id\n1,5\n")
        with pytest.raises(DataError, match=r"part-0\.parquet: not a readable Parquet file"):
            sources.load_dataset(folder, engine="duckdb", cache_dir=tmp_path / "cache")

    def test_the_pandas_engine_says_the_same(self, tmp_path):
        folder = write_folder(tmp_path / "log")
        (folder / "interactions" / "part-0.parquet").write_bytes(b"PAR1 not really")
        with pytest.raises(DataError, match=r"part-0\.parquet: not a readable Parquet file"):
            sources.load_dataset(folder, engine="pandas", cache_dir=tmp_path / "cache")

    def test_unreadable_item_table(self, tmp_path):
        folder = write_folder(tmp_path / "log")
        (folder / "items.parquet").write_bytes(b"garbage")
        with pytest.raises(DataError, match=r"items\.parquet: not a readable Parquet file"):
            scan.scan_dataset(scan.parquet_folder(folder), cache_dir=tmp_path / "cache")
