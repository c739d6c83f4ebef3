"""A scan cache that was cut short, edited or half deleted is noticed, rebuilt with a warning
and never used as it is."""

import json
import logging

import numpy as np
import pytest

pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from genrec.data import scan  # noqa: E402


@pytest.fixture
def built(tmp_path):
    """(source, cache root, the built cache folder, the in-memory dataset it must equal)."""
    rng = np.random.default_rng(0)
    (tmp_path / "log" / "interactions").mkdir(parents=True)
    table = {
        "user_id": rng.integers(0, 20, 200),
        "item_id": rng.integers(0, 15, 200),
        "rating": rng.integers(1, 6, 200).astype(np.float32),
        "timestamp": rng.integers(0, 99, 200),
    }
    pq.write_table(pa.table(table), tmp_path / "log" / "interactions" / "part-0.parquet")
    source = scan.parquet_folder(tmp_path / "log")
    scan.scan_dataset(source, cache_dir=tmp_path / "cache")
    data = scan.read_in_memory(source)
    (folder,) = (p for p in (tmp_path / "cache" / "scans").iterdir() if p.name.startswith("log-"))
    return source, tmp_path / "cache", folder, data


def truncate(path):
    path.write_bytes(path.read_bytes()[:-8])


def flip_a_byte(path):
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


DAMAGE = {
    "truncated array": lambda f: truncate(f / "user_idx.npy"),
    "edited array": lambda f: flip_a_byte(f / "item_idx.npy"),
    "missing array": lambda f: (f / "csr_indices.npy").unlink(),
    "missing manifest": lambda f: (f / "manifest.json").unlink(),
    "garbled manifest": lambda f: (f / "manifest.json").write_text("{not json"),
    "array of another shape": lambda f: np.save(f / "user_counts.npy", np.zeros(3, np.int64)),
}


def write_into(path, position, value):
    """Overwrite one element of a .npy file in place (its size, dtype and shape unchanged)."""
    arr = np.load(path, mmap_mode="r+")
    arr[position] = value
    arr.flush()


# Damage that keeps every file's size, dtype and shape: caught by the column check, which reads
# every cache (hashes cover only arrays up to HASH_ALWAYS_BYTES; the test drops them).
UNHASHED = {
    "user index beyond the vocabulary": lambda f: write_into(f / "user_idx.npy", 5, 10**6),
    "negative item index": lambda f: write_into(f / "item_idx.npy", 0, -1),
    "NaN value": lambda f: write_into(f / "value.npy", 7, np.nan),
}


class TestScanDamagedCache:
    @pytest.mark.parametrize("damage", sorted(DAMAGE))
    def test_rebuilt_with_a_warning(self, built, damage, caplog):
        source, cache, folder, data = built
        DAMAGE[damage](folder)
        assert scan.cache_problem(folder) is not None
        with caplog.at_level(logging.WARNING, logger="genrec.data.scan"):
            again = scan.scan_dataset(source, cache_dir=cache)
        assert "damaged" in caplog.text and str(folder) in caplog.text
        assert scan.cache_problem(folder) is None
        for name in ("user_idx", "item_idx", "value", "timestamp"):
            np.testing.assert_array_equal(getattr(again, name), getattr(data, name))
        assert (again.user_items != data.user_items).nnz == 0

    def test_an_intact_cache_has_no_problem(self, built):
        _, _, folder, _ = built
        assert scan.cache_problem(folder) is None
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["interactions"] == 200

    @pytest.mark.parametrize("damage", sorted(UNHASHED))
    def test_unhashed_columns_are_checked_too(self, built, damage, caplog):
        source, cache, folder, data = built
        manifest = json.loads((folder / "manifest.json").read_text())
        for entry in manifest["arrays"].values():  # as for arrays too large to hash on open
            entry.pop("sha256", None)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        UNHASHED[damage](folder)
        problem = scan.cache_problem(folder)
        assert problem is not None and "position" in problem
        with pytest.raises(scan.DataError, match="not a usable scan cache.*delete it"):
            scan.open_scan(folder, source)
        with caplog.at_level(logging.WARNING, logger="genrec.data.scan"):
            again = scan.scan_dataset(source, cache_dir=cache)
        assert "damaged" in caplog.text
        np.testing.assert_array_equal(again.value, data.value)
        np.testing.assert_array_equal(again.user_idx, data.user_idx)
