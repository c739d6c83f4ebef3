"""A DuckDB memory limit too small for the data, or one DuckDB cannot read, gives a
ConfigError naming the limit and the fix, and leaves no cache behind; under the default limit
a build that runs out of memory runs again under a larger one."""

import logging

import numpy as np
import pytest

pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from genrec.data import scan  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402


def write_log(folder, rows=20_000):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    table = {"u": rng.integers(0, rows // 4, rows), "i": rng.integers(0, rows // 40, rows)}
    pq.write_table(pa.table(table), folder / "log.parquet")
    return scan.ScanSource((folder / "log.parquet",), user="u", item="i", name="log")


def built(cache):
    return [p for p in (cache / "scans").iterdir() if not p.name.startswith(".")]


class TestScanMemoryLimit:
    def test_a_limit_too_small_for_the_data(self, tmp_path):
        source = write_log(tmp_path / "log")
        with pytest.raises(ConfigError) as err:
            scan.scan_dataset(source, cache_dir=tmp_path / "cache", memory_limit="1MB")
        message = str(err.value)
        assert "ran out of memory" in message and "memory_limit='1MB'" in message
        assert "pass a larger memory_limit" in message
        assert built(tmp_path / "cache") == []
        got = scan.scan_dataset(source, cache_dir=tmp_path / "cache")  # the default suffices
        assert len(got) == 20_000 and len(built(tmp_path / "cache")) == 1

    @pytest.mark.parametrize("limit", ["lots", "0"])
    def test_a_limit_duckdb_cannot_read(self, tmp_path, limit):
        source = write_log(tmp_path / "log", rows=100)
        with pytest.raises(ConfigError, match=rf"memory_limit={limit!r} .*such as '128MB'"):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache", memory_limit=limit)
        assert built(tmp_path / "cache") == []

    def test_the_default_limit_builds_again_when_it_runs_out(self, tmp_path, monkeypatch, caplog):
        source = write_log(tmp_path / "log")
        monkeypatch.setattr(scan, "MEMORY_PER_THREAD_MB", 0)  # every build runs out at first
        with caplog.at_level(logging.WARNING, logger="genrec.data.scan"):
            got = scan.scan_dataset(source, cache_dir=tmp_path / "cache")
        assert len(got) == 20_000 and len(built(tmp_path / "cache")) == 1
        assert "building it again under 1GB" in caplog.text
        monkeypatch.setattr(scan, "RETRY_MEMORY_LIMIT", "1MB")  # and again, too small
        with pytest.raises(ConfigError, match=r"under memory_limit='1MB'"):
            scan.scan_dataset(source, cache_dir=tmp_path / "cache2")
        assert built(tmp_path / "cache2") == []
