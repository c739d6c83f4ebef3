"""A Parquet part without a column the scan needs, or with ids of a type that cannot be ids,
gives a DataError naming the file, the column, the columns it has and the fix."""

import pytest

pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from genrec.data import scan  # noqa: E402
from genrec.errors import DataError  # noqa: E402

GOOD = {"user_id": [1, 2], "item_id": [5, 6], "rating": [4.0, 3.0], "timestamp": [10, 20]}


def write_folder(folder, second: dict):
    (folder / "interactions").mkdir(parents=True)
    pq.write_table(pa.table(GOOD), folder / "interactions" / "part-0.parquet")
    pq.write_table(pa.table(second), folder / "interactions" / "part-1.parquet")
    return scan.parquet_folder(folder)


class TestScanMissingColumn:
    @pytest.mark.parametrize("column", ["user_id", "item_id", "rating", "timestamp"])
    def test_a_part_lacks_a_column(self, tmp_path, column):
        second = {k: v for k, v in GOOD.items() if k != column}
        source = write_folder(tmp_path / "log", second)
        with pytest.raises(DataError) as err:
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")
        message = str(err.value)
        assert "part-1.parquet" in message and f"no column {column!r}" in message
        assert "its columns are" in message

    def test_the_in_memory_path_checks_the_same(self, tmp_path):
        source = write_folder(tmp_path / "log", {"user_id": [1], "item_id": [2]})
        with pytest.raises(DataError, match=r"part-1\.parquet: no column 'rating'"):
            scan.read_in_memory(source)

    def test_float_ids_are_refused(self, tmp_path):
        source = write_folder(tmp_path / "log", {**GOOD, "item_id": [5.5, 6.0]})
        with pytest.raises(
            DataError, match=r"part-1\.parquet: column 'item_id' \(item\) holds double"
        ):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")

    def test_item_table_without_its_key(self, tmp_path):
        source = write_folder(tmp_path / "log", GOOD)
        pq.write_table(pa.table({"id": [5], "title": ["x"]}), tmp_path / "log" / "items.parquet")
        source = scan.parquet_folder(tmp_path / "log")
        with pytest.raises(DataError, match=r"items\.parquet: no column 'item_id' \(item ids\)"):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")

    def test_a_csv_without_the_rating_column_is_named(self, tmp_path):
        path = tmp_path / "log.csv"
        path.write_text("user,item\nu1,i1\nu2,i1\n")
        source = scan.ScanSource((path,), user="user", item="item", rating="stars", sep=",")
        with pytest.raises(
            DataError, match=r"log\.csv: no column 'stars' \(rating\); its columns are user, item"
        ):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")

    def test_a_csv_rating_that_is_not_a_number(self, tmp_path):
        path = tmp_path / "log.csv"
        path.write_text("user,item,stars\nu1,i1,4\nu2,i1,great\n")
        source = scan.ScanSource((path,), user="user", item="item", rating="stars", sep=",")
        with pytest.raises(DataError, match=r"log\.csv: cannot be read"):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")

    def test_text_timestamps_in_parquet(self, tmp_path):
        source = write_folder(tmp_path / "log", {**GOOD, "timestamp": ["2020-01-01", "x"]})
        with pytest.raises(DataError, match=r"part-1\.parquet: column 'timestamp' .*seconds"):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache")
