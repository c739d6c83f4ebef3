"""Named dataset sources: fetch once, detect a broken cache, refuse unsafe or altered downloads.

Everything here runs offline against a real HTTP server on 127.0.0.1 (port 0), file:// URLs and
a fake recbole wheel; only the test marked ``slow`` asks PyPI for the real wheel.
"""

import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import types
import zipfile
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genrec.data import sources
from genrec.data.sources import SOURCES, RemoteFile, Source, WheelFallback, fetch, load, verify
from genrec.errors import ConfigError, SourceError

U_DATA = "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n3\t30\t1\t881250952\n"
U_ITEM = (
    "10|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "20|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
    "30|Four Rooms (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
)
U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n"
ATOMIC = {
    "inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t5\t881250949\n2\t10\t4\t881250951\n2\t20\t2\t881250953\n",
    "item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "10\tToy Story\t1995\tAnimation Comedy\n20\tGoldenEye\t1995\tAction\n",
    "user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\t94043\n",
}


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_proxy_for_localhost(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def write_zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


@pytest.fixture
def ml100k_zip(tmp_path) -> Path:
    """A tiny archive with the layout of GroupLens's ml-100k.zip."""
    return write_zip(
        tmp_path / "ml-100k.zip",
        {"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM, "ml-100k/u.user": U_USER},
    )


@pytest.fixture
def server(tmp_path):
    """A real HTTP server serving ``www/``; ``hits`` lists every requested path."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            hits.append(self.path)
            if self.path == "/truncated.zip":  # promises 1000 bytes, sends 10, hangs up
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"PK\x03\x04012345")
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield types.SimpleNamespace(root=root, hits=hits, url=f"http://127.0.0.1:{httpd.server_port}")
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def served(server, ml100k_zip):
    """The server with the tiny ml-100k.zip published at /ml-100k.zip."""
    shutil.copy(ml100k_zip, server.root / "ml-100k.zip")
    return server


def tiny_source(url: str, name: str = "tiny", **kw) -> Source:
    remote = RemoteFile(
        (url,) if isinstance(url, str) else tuple(url),
        "ml-100k.zip",
        unpack=True,
        md5=kw.pop("md5", None),
        sha256=kw.pop("sha256", None),
    )
    return Source(name, (remote,), "load_movielens", "test archive", **kw)


def catalog(*srcs: Source) -> dict:
    return {s.name: s for s in srcs}


def leftovers(cache: Path, name: str) -> list:
    """Hidden staging / trash folders or partial files left in the cache."""
    return [p.name for p in cache.iterdir() if p.name.startswith(f".{name}.")] + [
        str(p) for p in cache.rglob("*.part")
    ]


def fake_wheel(path: Path, files: dict | None = None) -> Path:
    files = ATOMIC if files is None else files
    return write_zip(
        path,
        {f"recbole/dataset_example/ml-100k/ml-100k.{ext}": text for ext, text in files.items()}
        | {"recbole/__init__.py": ""},
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakePip:
    """Stands in for `pip download`: copies a prepared wheel into the destination folder."""

    def __init__(self, wheel: Path | None = None, error: BaseException | None = None):
        self.wheel, self.error, self.calls = wheel, error, []

    def __call__(self, requirement: str, dest: Path) -> Path:
        self.calls.append(requirement)
        if self.error is not None:
            raise self.error
        return Path(shutil.copy(self.wheel, Path(dest) / "recbole-1.2.1-py3-none-any.whl"))


@pytest.fixture
def wheel_source(tmp_path):
    """An ml-100k-like source whose official URL refuses connections, with a fake wheel."""
    wheel = fake_wheel(tmp_path / "fake.whl")
    fallback = WheelFallback("recbole==1.2.1", sha256_of(wheel), sources.RECBOLE_WHEEL.members)
    src = tiny_source(f"http://127.0.0.1:{free_port()}/ml-100k.zip", name="ml-100k", wheel=fallback)
    return src, FakePip(wheel)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- fetching over HTTP -----------------------------------------------------------------------
def test_first_fetch_downloads_extracts_and_writes_manifest(served, tmp_path):
    url = f"{served.url}/ml-100k.zip"
    cache = tmp_path / "cache"
    folder = fetch("tiny", cache_dir=cache, sources=catalog(tiny_source(url)))

    assert folder == cache / "tiny"
    assert (folder / "ml-100k" / "u.data").read_text() == U_DATA
    assert not (folder / ".ml-100k.zip").exists()  # the archive is not kept
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["origin"] == "official" and manifest["source"] == url
    assert manifest["root"] == "ml-100k"
    assert set(manifest["files"]) == {"ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user"}
    for rel, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_of(folder / rel)
    (download,) = manifest["downloads"]
    assert download["url"] == url
    assert download["sha256"] == sha256_of(served.root / "ml-100k.zip")
    assert datetime.fromisoformat(manifest["fetched_at"]).tzinfo is not None
    assert served.hits == ["/ml-100k.zip"]
    assert leftovers(cache, "tiny") == []
    assert verify("tiny", cache_dir=cache, sources=catalog(tiny_source(url)))


def test_second_fetch_does_not_touch_the_server(served, tmp_path):
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    first = fetch("tiny", cache_dir=tmp_path, sources=srcs)
    stamp = (first / "manifest.json").read_text()
    assert fetch("tiny", cache_dir=tmp_path, sources=srcs) == first
    assert len(served.hits) == 1
    assert (first / "manifest.json").read_text() == stamp

    fetch("tiny", cache_dir=tmp_path, sources=srcs, force=True)
    assert len(served.hits) == 2


@pytest.mark.parametrize(
    "damage",
    ["flip_bytes", "same_size", "delete_file", "delete_manifest", "garbage_manifest", "append"],
)
def test_damaged_cache_is_detected_and_fetched_again(served, tmp_path, damage):
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    folder = fetch("tiny", cache_dir=tmp_path, sources=srcs)
    data = folder / "ml-100k" / "u.data"
    if damage == "flip_bytes":
        data.write_text("garbage")
    elif damage == "same_size":
        data.write_text(U_DATA.replace("5", "4", 1))
    elif damage == "delete_file":
        data.unlink()
    elif damage == "delete_manifest":
        (folder / "manifest.json").unlink()
    elif damage == "garbage_manifest":
        (folder / "manifest.json").write_text("{not json")
    else:
        with open(data, "a") as f:
            f.write("9\t9\t9\t9\n")
    assert not verify("tiny", cache_dir=tmp_path, sources=srcs)

    fetch("tiny", cache_dir=tmp_path, sources=srcs)
    assert len(served.hits) == 2
    assert data.read_text() == U_DATA
    assert verify("tiny", cache_dir=tmp_path, sources=srcs)
    assert leftovers(tmp_path, "tiny") == []


def stamp_manifest(folder: Path, *, same_as: Path | None = None) -> None:
    """Give the manifest a modification time 1 s after its files', or that of ``same_as``."""
    when = (
        same_as.stat().st_mtime_ns
        if same_as is not None
        else 10**9
        + max(p.stat().st_mtime_ns for p in folder.rglob("*") if p.name != "manifest.json")
    )
    os.utime(folder / "manifest.json", ns=(when, when))


def damage_keeping_size_and_time(path: Path) -> None:
    before = path.stat()
    path.write_text(U_DATA.replace("5", "4", 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def test_manifest_records_size_and_modification_time(served, tmp_path):
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    folder = fetch("tiny", cache_dir=tmp_path, sources=srcs)
    for rel, entry in json.loads((folder / "manifest.json").read_text())["files"].items():
        st = (folder / rel).stat()
        assert (entry["bytes"], entry["mtime_ns"]) == (st.st_size, st.st_mtime_ns)


def test_fetch_trusts_size_and_time_of_large_files_but_verify_hashes_every_file(
    served, tmp_path, monkeypatch
):
    monkeypatch.setattr(sources, "HASH_ALWAYS_BYTES", 0)  # every file counts as large
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    folder = fetch("tiny", cache_dir=tmp_path, sources=srcs)
    stamp_manifest(folder)
    hashed = []
    real = sources._file_digests
    monkeypatch.setattr(
        sources,
        "_file_digests",
        lambda path, **kw: hashed.append(Path(path).name) or real(path, **kw),
    )
    assert fetch("tiny", cache_dir=tmp_path, sources=srcs) == folder
    assert hashed == [] and len(served.hits) == 1

    assert verify("tiny", cache_dir=tmp_path, sources=srcs)
    assert sorted(hashed) == ["u.data", "u.item", "u.user"]
    damage_keeping_size_and_time(folder / "ml-100k" / "u.data")
    assert not verify("tiny", cache_dir=tmp_path, sources=srcs)


@pytest.mark.parametrize(
    "case", ["manifest_without_times", "file_as_new_as_manifest", "time_changed"]
)
def test_fetch_hashes_files_whose_time_cannot_be_trusted(served, tmp_path, case, monkeypatch):
    monkeypatch.setattr(sources, "HASH_ALWAYS_BYTES", 0)  # every file counts as large
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    folder = fetch("tiny", cache_dir=tmp_path, sources=srcs)
    data = folder / "ml-100k" / "u.data"
    if case == "manifest_without_times":  # written before mtime_ns was recorded
        manifest = json.loads((folder / "manifest.json").read_text())
        for entry in manifest["files"].values():
            del entry["mtime_ns"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    stamp_manifest(folder, same_as=data if case == "file_as_new_as_manifest" else None)
    if case == "time_changed":  # the same bytes with another time: hashed, found intact
        os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns - 10**9))
        assert fetch("tiny", cache_dir=tmp_path, sources=srcs) == folder
        assert len(served.hits) == 1
        data.write_text(U_DATA.replace("5", "4", 1))  # same size, new time
    else:
        damage_keeping_size_and_time(data)
    fetch("tiny", cache_dir=tmp_path, sources=srcs)
    assert len(served.hits) == 2 and data.read_text() == U_DATA


def test_file_url(ml100k_zip, tmp_path):
    url = ml100k_zip.as_uri()
    folder = fetch("tiny", cache_dir=tmp_path / "cache", sources=catalog(tiny_source(url)))
    assert (folder / "ml-100k" / "u.user").read_text() == U_USER
    assert json.loads((folder / "manifest.json").read_text())["source"] == url


def test_url_override_and_mirrors(served, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/ml-100k.zip"
    good = f"{served.url}/ml-100k.zip"
    srcs = catalog(tiny_source(dead))
    folder = fetch("tiny", cache_dir=tmp_path / "a", sources=srcs, url=good)
    assert json.loads((folder / "manifest.json").read_text())["source"] == good

    mirrored = catalog(tiny_source([dead, f"{served.url}/missing.zip", good]))
    folder = fetch("tiny", cache_dir=tmp_path / "b", sources=mirrored)
    assert json.loads((folder / "manifest.json").read_text())["source"] == good


# ---- failures ---------------------------------------------------------------------------------
def test_http_404_names_the_url_and_the_fix(server, tmp_path):
    url = f"{server.url}/nope/ml-100k.zip"
    with pytest.raises(SourceError) as err:
        fetch("tiny", cache_dir=tmp_path, sources=catalog(tiny_source(url)))
    message = str(err.value)
    assert url in message and "404" in message and "Fix:" in message
    assert not (tmp_path / "tiny").exists()
    assert leftovers(tmp_path, "tiny") == []


def test_connection_refused_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/ml-100k.zip"
    with pytest.raises(SourceError, match="refused") as err:
        fetch("tiny", cache_dir=tmp_path, sources=catalog(tiny_source(url)), timeout=2)
    assert url in str(err.value)
    assert not (tmp_path / "tiny").exists()


def test_truncated_download_is_rejected(server, tmp_path):
    url = f"{server.url}/truncated.zip"
    with pytest.raises(SourceError) as err:
        fetch("tiny", cache_dir=tmp_path, sources=catalog(tiny_source(url)), timeout=5)
    assert url in str(err.value)
    assert not (tmp_path / "tiny").exists()
    assert leftovers(tmp_path, "tiny") == []


def test_published_checksum_is_enforced(served, ml100k_zip, tmp_path):
    url = f"{served.url}/ml-100k.zip"
    wrong = catalog(tiny_source(url, md5="0" * 32))
    with pytest.raises(SourceError, match="md5"):
        fetch("tiny", cache_dir=tmp_path, sources=wrong)
    assert not (tmp_path / "tiny").exists()

    right = catalog(
        tiny_source(
            url, md5=hashlib.md5(ml100k_zip.read_bytes()).hexdigest(), sha256=sha256_of(ml100k_zip)
        )
    )
    assert verify("tiny", cache_dir=tmp_path, sources=right) is False
    fetch("tiny", cache_dir=tmp_path, sources=right)
    assert verify("tiny", cache_dir=tmp_path, sources=right)


def test_the_real_ml100k_checksum_rejects_another_archive(served, tmp_path):
    """A mirror URL for ml-100k must still deliver GroupLens's exact archive."""
    with pytest.raises(SourceError, match="0e33842e24a9c977be4e0107933c0723"):
        fetch("ml-100k", cache_dir=tmp_path, url=f"{served.url}/ml-100k.zip", origin="official")


def test_failed_refetch_keeps_the_previous_cache(served, tmp_path):
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    fetch("tiny", cache_dir=tmp_path, sources=srcs)
    broken = catalog(tiny_source(f"{served.url}/gone.zip"))
    with pytest.raises(SourceError):
        fetch("tiny", cache_dir=tmp_path, sources=broken, force=True)
    assert verify("tiny", cache_dir=tmp_path, sources=srcs)
    assert leftovers(tmp_path, "tiny") == []


def test_interrupted_fetch_leaves_nothing_that_looks_complete(wheel_source, tmp_path):
    src, _ = wheel_source
    interrupted = FakePip(error=KeyboardInterrupt())
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        fetch(
            "ml-100k",
            cache_dir=cache,
            sources=catalog(src),
            origin="wheel",
            pip_download=interrupted,
        )
    assert list(cache.iterdir()) == []


# ---- zip safety -------------------------------------------------------------------------------
def symlink_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", U_DATA)
        info = zipfile.ZipInfo("ml-100k/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../../etc/passwd")
    return path


@pytest.mark.parametrize(
    "member",
    [
        "../evil.txt",
        "ml-100k/../../evil.txt",
        "/tmp/evil.txt",
        "..\\evil.txt",
        "C:/evil.txt",
        "symlink",
    ],
)
def test_zip_path_traversal_is_rejected(tmp_path, member):
    cache = tmp_path / "deep" / "cache"
    if member == "symlink":
        archive = symlink_zip(tmp_path / "bad.zip")
    else:
        archive = write_zip(tmp_path / "bad.zip", {"ml-100k/u.data": U_DATA, member: "pwned"})
    with pytest.raises(SourceError, match="unsafe"):
        fetch("tiny", cache_dir=cache, sources=catalog(tiny_source(archive.as_uri())))
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (cache / "tiny").exists()
    assert leftovers(cache, "tiny") == []


def test_not_a_zip(tmp_path):
    bogus = tmp_path / "ml-100k.zip"
    bogus.write_bytes(b"<html>maintenance</html>")
    with pytest.raises(SourceError, match="not a valid zip"):
        fetch("tiny", cache_dir=tmp_path / "cache", sources=catalog(tiny_source(bogus.as_uri())))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(alphabet="ab./\\:", min_size=1, max_size=10))
def test_extraction_never_writes_outside_the_target(tmp_path, name):
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    dest = work / "a" / "b"
    dest.mkdir(parents=True)
    archive = write_zip(work / "x.zip", {name: "data"})
    try:
        sources._extract_zip(archive, dest, origin="test")
    except SourceError:
        pass
    outside = [
        p
        for p in work.rglob("*")
        if p.is_file() and p != archive and not p.resolve().is_relative_to(dest.resolve())
    ]
    assert outside == []


# ---- the wheel fallback -----------------------------------------------------------------------
def test_wheel_origin_copies_the_atomic_files(wheel_source, tmp_path):
    src, pip = wheel_source
    folder = fetch(
        "ml-100k", cache_dir=tmp_path, sources=catalog(src), origin="wheel", pip_download=pip
    )
    assert pip.calls == ["recbole==1.2.1"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "ml-100k.inter",
        "ml-100k.item",
        "ml-100k.user",
    ]
    assert (folder / "ml-100k.inter").read_text() == ATOMIC["inter"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["origin"] == "wheel" and manifest["root"] == "."
    assert "recbole==1.2.1" in manifest["source"]
    assert manifest["downloads"][0]["sha256"] == src.wheel.sha256
    assert fetch("ml-100k", cache_dir=tmp_path, sources=catalog(src), pip_download=pip) == folder
    assert len(pip.calls) == 1  # verified cache: no second pip run


def test_auto_falls_back_to_the_wheel_when_the_official_url_fails(wheel_source, tmp_path):
    src, pip = wheel_source
    folder = fetch("ml-100k", cache_dir=tmp_path, sources=catalog(src), pip_download=pip)
    assert pip.calls == ["recbole==1.2.1"]
    assert json.loads((folder / "manifest.json").read_text())["origin"] == "wheel"


def test_auto_prefers_the_official_download(served, wheel_source, tmp_path):
    src, pip = wheel_source
    online = Source(
        src.name,
        tiny_source(f"{served.url}/ml-100k.zip").files,
        src.loader,
        src.description,
        wheel=src.wheel,
    )
    folder = fetch("ml-100k", cache_dir=tmp_path, sources=catalog(online), pip_download=pip)
    assert pip.calls == [] and (folder / "ml-100k" / "u.data").exists()


def test_official_origin_never_runs_pip(wheel_source, tmp_path):
    src, pip = wheel_source
    with pytest.raises(SourceError):
        fetch(
            "ml-100k", cache_dir=tmp_path, sources=catalog(src), origin="official", pip_download=pip
        )
    assert pip.calls == []


def test_both_origins_failing_reports_both(wheel_source, tmp_path):
    src, _ = wheel_source
    pip = FakePip(error=SourceError("pip could not reach PyPI"))
    with pytest.raises(SourceError) as err:
        fetch("ml-100k", cache_dir=tmp_path, sources=catalog(src), pip_download=pip)
    message = str(err.value)
    assert src.urls[0] in message and "pip could not reach PyPI" in message
    assert "[official]" in message and "[wheel]" in message
    assert not (tmp_path / "ml-100k").exists()


def test_tampered_wheel_is_rejected(tmp_path):
    """The real catalog pins the recbole wheel: any other file is refused, nothing is cached."""
    pip = FakePip(fake_wheel(tmp_path / "evil.whl"))
    cache = tmp_path / "cache"
    with pytest.raises(SourceError, match=SOURCES["ml-100k"].wheel.sha256):
        fetch("ml-100k", cache_dir=cache, origin="wheel", pip_download=pip)
    assert not (cache / "ml-100k").exists() and leftovers(cache, "ml-100k") == []


def test_wheel_missing_a_member(tmp_path):
    wheel = fake_wheel(tmp_path / "w.whl", {"inter": ATOMIC["inter"]})
    fallback = WheelFallback("recbole==1.2.1", sha256_of(wheel), sources.RECBOLE_WHEEL.members)
    src = tiny_source("http://127.0.0.1:9/x.zip", name="ml-100k", wheel=fallback)
    with pytest.raises(SourceError, match="ml-100k.item"):
        fetch(
            "ml-100k",
            cache_dir=tmp_path / "c",
            sources=catalog(src),
            origin="wheel",
            pip_download=FakePip(wheel),
        )


def test_pip_download_reports_failure(tmp_path):
    # an unparsable requirement makes pip fail before it touches the network
    with pytest.raises(SourceError, match="pip download") as err:
        sources.pip_download("recbole===[not a requirement", tmp_path, timeout=60)
    assert "exit" in str(err.value) and "PyPI" in str(err.value)


@pytest.mark.slow
def test_real_recbole_wheel_from_pypi(tmp_path):
    folder = fetch("ml-100k", cache_dir=tmp_path, origin="wheel")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["manifest.json", "ml-100k.inter", "ml-100k.item", "ml-100k.user"]
    with open(folder / "ml-100k.inter") as f:
        assert sum(1 for _ in f) == 100_001  # header + 100,000 ratings
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["downloads"][0]["sha256"] == SOURCES["ml-100k"].wheel.sha256
    assert verify("ml-100k", cache_dir=tmp_path)


# ---- load -------------------------------------------------------------------------------------
@pytest.fixture
def fake_loaders(monkeypatch):
    """Stand-ins for every loader of sources.LOADERS, recording how each was called."""
    calls = []

    def make(fn_name):
        def loader(*paths):
            calls.append((fn_name, [Path(p) for p in paths]))
            return types.SimpleNamespace(name="data", paths=paths)

        return loader

    monkeypatch.setattr(sources, "LOADERS", {fn_name: make(fn_name) for fn_name in sources.LOADERS})
    return calls


def test_load_hands_the_archive_folder_to_the_loader(served, tmp_path, fake_loaders):
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    dataset = load("tiny", cache_dir=tmp_path, sources=srcs)
    assert dataset.name == "tiny"
    assert fake_loaders == [("load_movielens", [tmp_path / "tiny" / "ml-100k"])]


def test_load_rejects_a_misspelt_fetch_option(served, tmp_path, fake_loaders):
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    with pytest.raises(TypeError, match="progres"):
        load("tiny", cache_dir=tmp_path, sources=srcs, progres=True)


def test_load_hands_the_wheel_folder_to_the_loader(wheel_source, tmp_path, fake_loaders):
    src, pip = wheel_source
    dataset = load(
        "ml-100k", cache_dir=tmp_path, sources=catalog(src), origin="wheel", pip_download=pip
    )
    assert dataset.name == "ml-100k"
    assert fake_loaders == [("load_movielens", [tmp_path / "ml-100k"])]


def test_load_passes_review_and_meta_files(server, tmp_path, fake_loaders):
    (server.root / "r.json.gz").write_bytes(b"reviews")
    (server.root / "m.json.gz").write_bytes(b"meta")
    src = Source(
        "amz",
        (
            RemoteFile((f"{server.url}/r.json.gz",), "Video_Games_5.json.gz"),
            RemoteFile((f"{server.url}/m.json.gz",), "meta_Video_Games.json.gz"),
        ),
        "load_amazon_2018",
        "test",
        loader_takes="files",
    )
    dataset = load("amz", cache_dir=tmp_path, sources=catalog(src))
    folder = tmp_path / "amz"
    assert fake_loaders == [
        (
            "load_amazon_2018",
            [folder / "Video_Games_5.json.gz", folder / "meta_Video_Games.json.gz"],
        )
    ]
    assert dataset.name == "amz"
    assert json.loads((folder / "manifest.json").read_text())["root"] == "."


def test_load_real_loaders_read_both_layouts(served, wheel_source, tmp_path):
    official = load(
        "tiny", cache_dir=tmp_path, sources=catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    )
    assert official.name == "tiny" and len(official) == 4
    assert (official.n_users, official.n_items) == (3, 3)

    src, pip = wheel_source
    atomic = load(
        "ml-100k", cache_dir=tmp_path, sources=catalog(src), origin="wheel", pip_download=pip
    )
    assert atomic.name == "ml-100k" and len(atomic) == 3
    assert (atomic.n_users, atomic.n_items) == (2, 2)


# ---- catalog and arguments --------------------------------------------------------------------
def test_catalog_is_consistent():
    for key, src in SOURCES.items():
        assert src.name == key
        assert src.loader in sources.LOADERS and src.description
        for remote in src.files:
            assert all(url.startswith("https://") for url in remote.urls)
            assert remote.md5 is None or len(remote.md5) == 32
    for name in ("ml-100k", "ml-1m", "ml-20m", "ml-25m", "ml-latest-small"):
        assert SOURCES[name].urls == (f"https://files.grouplens.org/datasets/movielens/{name}.zip",)
    assert any(k.startswith("amazon2018-") for k in SOURCES)
    assert any(k.startswith("amazon2023-") for k in SOURCES)
    assert SOURCES["ml-100k"].wheel.sha256 == (
        "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
    )
    assert [w for _, w in SOURCES["ml-100k"].wheel.members] == [
        "ml-100k.inter",
        "ml-100k.item",
        "ml-100k.user",
    ]


@pytest.mark.parametrize("call", [fetch, load, verify])
def test_unknown_name_lists_the_known_names(call, tmp_path):
    with pytest.raises(ConfigError) as err:
        call("ml-99k", cache_dir=tmp_path)
    assert "ml-99k" in str(err.value) and "ml-100k" in str(err.value)
    assert "amazon2018-video-games" in str(err.value)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="origin"):
        fetch("ml-100k", cache_dir=tmp_path, origin="mirror")
    with pytest.raises(ConfigError, match="no wheel fallback"):
        fetch("ml-1m", cache_dir=tmp_path, origin="wheel")
    with pytest.raises(ConfigError, match="single-file"):
        fetch("amazon2018-video-games", cache_dir=tmp_path, url="file:///x")
    with pytest.raises(ConfigError, match="timeout"):
        fetch("ml-100k", cache_dir=tmp_path, timeout=0)
    with pytest.raises(ConfigError, match="loader"):
        Source("x", (RemoteFile(("https://x/y",), "y"),), "load_everything", "no such loader")
    assert os.listdir(tmp_path) == []


def test_default_cache_dir_ignores_the_environment(monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", "/somewhere/else")
    assert sources.default_cache_dir() == Path.home() / ".cache" / "genrec"


def test_read_manifest(served, tmp_path):
    with pytest.raises(SourceError, match="genrec data fetch tiny"):
        sources.read_manifest("tiny", cache_dir=tmp_path)
    fetch("tiny", cache_dir=tmp_path, sources=catalog(tiny_source(f"{served.url}/ml-100k.zip")))
    assert sources.read_manifest("tiny", cache_dir=tmp_path)["name"] == "tiny"


def test_progress_bar_shows_the_download(served, tmp_path, capsys):
    srcs = catalog(tiny_source(f"{served.url}/ml-100k.zip"))
    fetch("tiny", cache_dir=tmp_path, sources=srcs, progress=True)
    assert verify("tiny", cache_dir=tmp_path, sources=srcs)
    err = capsys.readouterr().err
    assert "ml-100k.zip: 1/1 MiB (100%)" in err and "\r" not in err  # plain lines off a terminal

    fetch("tiny", cache_dir=tmp_path, sources=srcs, progress=False, force=True)
    assert capsys.readouterr().err == ""
