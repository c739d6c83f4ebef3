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
