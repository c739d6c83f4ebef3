"""A cached file changed in place, even with its size and modification time kept, is noticed.

Files up to ``sources.HASH_ALWAYS_BYTES`` are hashed on every load, so the change is caught and
the dataset fetched again (with a warning); ``genrec data verify`` reports it; on a cache that
cannot be written the error says the cached data changed and how to fetch it again.
"""

import logging
import os
import zipfile
from pathlib import Path

import pytest

from genrec.cli import main
from genrec.data import sources
from genrec.data.sources import RemoteFile, Source, fetch, load
from genrec.errors import SourceError

U_DATA = "1\t10\t5\t881250949\n2\t10\t4\t881250951\n2\t20\t3\t881250952\n"


@pytest.fixture
def tiny(tmp_path) -> dict:
    """A one-archive source served from a file:// URL."""
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("tiny/u.data", U_DATA)
    remote = RemoteFile((archive.as_uri(),), "tiny.zip", unpack=True)
    return {"tiny": Source("tiny", (remote,), "load_movielens", "three ratings")}


def change_keeping_size_and_time(path: Path) -> None:
    before = path.stat()
    path.write_text(U_DATA.replace("\t5\t", "\t1\t", 1))  # user 1 now rated item 10 with 1
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def test_a_small_file_changed_in_place_is_refetched(tmp_path, tiny, caplog):
    cache = tmp_path / "cache"
    folder = fetch("tiny", cache_dir=cache, sources=tiny)
    change_keeping_size_and_time(folder / "tiny" / "u.data")
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        data = load("tiny", cache_dir=cache, sources=tiny)
    assert data.value.tolist() == [5.0, 4.0, 3.0]  # the published bytes, not the edited ones
    assert "changed since it was fetched" in caplog.text and "u.data" in caplog.text
    assert (folder / "tiny" / "u.data").read_text() == U_DATA


def test_a_read_only_cache_says_the_data_changed_and_how_to_refetch(tmp_path, tiny, monkeypatch):
    cache = tmp_path / "cache"
    folder = fetch("tiny", cache_dir=cache, sources=tiny)
    change_keeping_size_and_time(folder / "tiny" / "u.data")

    def read_only(target, fill, *, name):  # what mkdir in a read-only folder raises
        stage = target.parent / f".{target.name}.partial-0"
        raise PermissionError(13, "Permission denied", str(stage))

    monkeypatch.setattr(sources, "_build", read_only)
    with pytest.raises(SourceError) as error:
        load("tiny", cache_dir=cache, sources=tiny)
    message = str(error.value)
    assert "cached copy of tiny" in message and "changed since it was fetched" in message
    assert "tiny/u.data differs from its recorded sha256" in message
    assert "genrec data fetch tiny --force" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_really_read_only_cache(tmp_path, tiny):
    cache = tmp_path / "cache"
    folder = fetch("tiny", cache_dir=cache, sources=tiny)
    change_keeping_size_and_time(folder / "tiny" / "u.data")
    cache.chmod(0o555)
    try:
        with pytest.raises(SourceError, match="changed since it was fetched.*--force"):
            load("tiny", cache_dir=cache, sources=tiny)
    finally:
        cache.chmod(0o755)


def test_data_verify_checks_one_or_every_cached_dataset(tmp_path, tiny, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENREC_CACHE_DIR", str(cache))
    assert main(["data", "verify"]) == 0
    assert "no dataset is cached" in capsys.readouterr().out

    folder = fetch("tiny", cache_dir=cache, sources=tiny)
    fetch("tiny", cache_dir=tmp_path / "other", sources=tiny)
    os.replace(tmp_path / "other" / "tiny", cache / "tiny-copy")  # a second cached dataset
    assert main(["data", "verify"]) == 0
    out = capsys.readouterr().out
    assert "tiny: intact" in out and "tiny-copy: intact" in out

    change_keeping_size_and_time(folder / "tiny" / "u.data")
    assert main(["data", "verify"]) == 1
    out = capsys.readouterr().out
    assert "tiny: tiny/u.data differs from its recorded sha256" in out
    assert "genrec data fetch tiny --force" in out and "tiny-copy: intact" in out
    assert main(["data", "verify", "tiny-copy"]) == 0
    assert main(["data", "verify", "ml-1m"]) == 1
    assert "ml-1m: not fetched" in capsys.readouterr().out
