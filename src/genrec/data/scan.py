"""Interactions too large for a pandas frame: scanned with DuckDB, cached as memory-mapped arrays.

:func:`scan_dataset` reads Parquet, CSV or ``::``-separated files with DuckDB and never holds a
frame of the raw file. Filtering (minimum rating, one row per repeated pair, the iterative
k-core) and the dense re-numbering of ids run in SQL, spilling to disk beyond
``memory_limit`` (by default 64 MB per DuckDB thread, 32 MB while sorting). Two sorted
streams, one in file order and one by user and time, are written a chunk at a time to the ends
of ``.npy`` files (plain writes: the pages go to the page cache, not to the process) that are
then opened with ``np.load(mmap_mode="r")``. The user x item CSR matrix comes from the second
stream (``indptr`` from per-user counts, ``indices`` a block of whole users at a time), so
:attr:`Dataset.user_items` of twenty million interactions costs no copy. Splits made of the
opened dataset are stored in the cache too, their parts mapped like the cache
(:class:`SplitStore`), so a second run neither scans nor splits again.

The result equals the in-memory path on the same files: the same interaction order (the files
in the order given, rows in file order), vocabularies in first-seen order over the unfiltered
rows (what ``Dataset.from_interactions`` followed by :mod:`~genrec.data.filters` gives), the same
values, timestamps and catalog. Every splitter of :mod:`~genrec.data.splits` therefore gives the
same split on either.

Cache layout (``cache_dir/scans/<name>-<key>/``)::

    manifest.json        written last: the key, the sizes, every array's dtype, shape and size
    user_ids.npy ...     vocabularies (int64, or fixed-width text), in index order
    user_idx.npy ...     (n,) user_idx, item_idx (int32 where they fit, else int64), int64
                         timestamp, float32 value
    time_order.npy       (n,) int64: by user, then time, ties in file order
    csr_indptr.npy ...   the binary user x item CSR: indptr, indices (int32 or int64) and
                         data (float32 ones)
    splits/parts-<sha>/  a split's parts, by the sha of its part codes: code.npy (int8 part of
                         each interaction), each part's columns (train.user_idx.npy ...),
                         lengths.json
    splits/<sha>.json    the settings a split was made with, its info and its parts' folder

The key is a sha256 of every source file's path, size and modification time and of the filter
settings, so an edited file or another filter builds a new folder. A folder is written in a
staging folder and renamed into place (:func:`genrec.io.atomic_folder`); a folder whose
manifest is unreadable or whose arrays do not match it (missing, another size or shape,
another sha256 for arrays up to ``HASH_ALWAYS_BYTES``, an index outside its vocabulary or a
value that is not finite) is rebuilt with a warning, never used. Those checks read the files a
chunk at a time rather than through the map, so opening a cache leaves its arrays on disk until
a model reads them: a process holds in memory only what it uses.

Example:
    >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
    >>> from pathlib import Path
    >>> tmp = Path(tempfile.mkdtemp())
    >>> pq.write_table(pa.table({"u": [1, 1, 2], "i": [5, 6, 5]}), tmp / "log.parquet")
    >>> source = ScanSource((tmp / "log.parquet",), user="u", item="i", name="log")
    >>> scan_dataset(source, cache_dir=tmp / "cache")
    Dataset('log', users=2, items=2, interactions=3)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from genrec.data.dataset import (
    STARS_LIKED,
    Dataset,
    ItemCatalog,
    Split,
    Table,
    check_columns,
    first_rows,
    index_dtype,
    object_array,
)
from genrec.data.splits import FOLD_IN, TEST, TRAIN, VALID
from genrec.data.vocabulary import Vocabulary
from genrec.errors import ConfigError, DataError, require
from genrec.io import atomic_folder, atomic_write

__all__ = [
    "AUTO_ROWS",
    "ENGINES",
    "ScanSource",
    "SplitStore",
    "cache_problem",
    "choose_engine",
    "is_parquet_folder",
    "open_scan",
    "parquet_folder",
    "parquet_item_table",
    "read_in_memory",
    "scan_dataset",
]

log = logging.getLogger(__name__)

ENGINES = ("auto", "pandas", "duckdb")
# engine="auto" scans with DuckDB above this many interactions (Parquet metadata) or, for text
# files, above AUTO_TEXT_BYTES.
AUTO_ROWS = 2_000_000
AUTO_TEXT_BYTES = 64 * 2**20
CACHE_FORMAT = 3  # 2: user_idx and item_idx stored as int32 where they fit; 3: csr_data
HASH_ALWAYS_BYTES = 64 * 2**20  # arrays up to this size are hashed on every open
FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger values would not survive as float32
CHUNK_ROWS = 1 << 20  # rows per batch streamed from DuckDB into the arrays
# The default DuckDB memory limit of a build (memory_limit=None), per DuckDB thread, while it
# filters and numbers (joins, aggregates) and while it sorts the two output streams; DuckDB
# holds about 80 MB beyond its limit besides, so a 2-thread build of 20M interactions peaks near
# 400 MB. A build that runs out of memory under them runs again under RETRY_MEMORY_LIMIT.
MEMORY_PER_THREAD_MB = 64
SORT_MEMORY_PER_THREAD_MB = 32
RETRY_MEMORY_LIMIT = "1GB"
MANIFEST = "manifest.json"
SPLITS = "splits"  # the folder of stored splits inside a scan cache
ARRAYS = (
    "user_ids",
    "item_ids",
    "user_idx",
    "item_idx",
    "value",
    "timestamp",
    "time_order",
    "user_counts",
    "item_counts",
    "csr_indptr",
    "csr_indices",
    "csr_data",
)


@dataclass(frozen=True)
class ScanSource:
    """Interaction files and the names of their columns.

    Args:
        files: Parquet files (``.parquet``/``.pq``) or delimited text files, read in this order.
        user, item: the id columns (integers or strings).
        rating: the value column; None means implicit feedback (1.0).
        timestamp: the column of seconds since the epoch; None gives zeros.
        sep: the field separator of text files (``","``, ``"\\t"``, ``"::"``); None for Parquet.
        header: text files start with a header line naming the columns; without one, ``names``
            gives them.
        names: column names of header-less text files.
        tables: a function returning ``(items, users)``, each ``(ids, columns)`` of an item or
            user table or ``(None, None)`` (see :meth:`Dataset.from_interactions`); read on
            every open (tables are small), not cached. E.g. :func:`parquet_item_table`.
        name: the dataset label.
        positive_threshold: see :class:`Dataset`.
        text_fields: the catalog columns a text encoder renders.
    """

    files: tuple[Path, ...]
    user: str
    item: str
    rating: str | None = None
    timestamp: str | None = None
    sep: str | None = None
    header: bool = True
    names: tuple[str, ...] = ()
    tables: Callable[[], tuple[tuple, tuple]] | None = None
    name: str = "data"
    positive_threshold: float | None = None
    text_fields: tuple[str, ...] = field(default=("title", "genres", "description"))

    @property
    def columns(self) -> dict[str, str]:
        """Role -> column name for the columns given (user, item, rating, timestamp)."""
        roles = {"user": self.user, "item": self.item, "rating": self.rating}
        roles["timestamp"] = self.timestamp
        return {role: col for role, col in roles.items() if col is not None}


def parquet_folder(folder, *, name: str | None = None) -> ScanSource:
    """The source of a folder laid out as ``interactions/part-*.parquet`` (``user_id``,
    ``item_id``, ``rating``, ``timestamp``) beside an optional ``items.parquet`` (``item_id``,
    ``title``, ``genres`` separated by ``|``, ``description``); parts are read in name order.

    Raises:
        DataError: no ``interactions/*.parquet`` in ``folder``.
    """
    folder = Path(folder)
    parts = tuple(sorted((folder / "interactions").glob("*.parquet")))
    if not parts:
        raise DataError(
            f"{folder} holds no interactions/*.parquet; expected the layout "
            "interactions/part-*.parquet (+ items.parquet) written by `genrec data synth`"
        )
    items = folder / "items.parquet"
    return ScanSource(
        parts,
        user="user_id",
        item="item_id",
        rating="rating",
        timestamp="timestamp",
        tables=partial(parquet_item_table, items, key="item_id") if items.is_file() else None,
        name=name or folder.name,
        positive_threshold=STARS_LIKED,
    )


def is_parquet_folder(folder) -> bool:
    """True when ``folder`` has the layout :func:`parquet_folder` reads."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / "interactions").glob("*.parquet"))


def choose_engine(source: ScanSource, engine: str = "auto") -> str:
    """``"pandas"`` or ``"duckdb"``: ``engine`` itself, or for ``"auto"`` DuckDB when the source
    holds more than :data:`AUTO_ROWS` interactions (Parquet) or :data:`AUTO_TEXT_BYTES` (text).

    Raises:
        ConfigError: ``engine`` is not one of :data:`ENGINES`.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine != "auto":
        return engine
    if source.sep is None:
        return "duckdb" if _parquet_rows(source.files) > AUTO_ROWS else "pandas"
    size = sum(p.stat().st_size for p in source.files if p.is_file())
    return "duckdb" if size > AUTO_TEXT_BYTES else "pandas"


# ---- the in-memory path (the reference the scan must equal) -----------------------------------
def read_in_memory(source: ScanSource) -> Dataset:
    """The same data through pandas and ``Dataset.from_interactions`` (all rows in memory).

    Raises:
        DataError: as :func:`scan_dataset` (unreadable file, missing column, missing id).
    """
    import pandas as pd

    _check_files(source)
    frames = []
    for path in source.files:
        if source.sep is None:
            frame = pd.read_parquet(path, columns=list(source.columns.values()))
        else:
            frame = pd.read_csv(
                path,
                sep=source.sep,
                header=0 if source.header else None,
                names=None if source.header else list(source.names),
                dtype={source.user: str, source.item: str},
                engine="python" if len(source.sep) > 1 else "c",
            )
        _check_frame(frame, source, path)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    (item_ids, item_rows), (user_ids, user_rows) = _tables(source)
    return Dataset.from_interactions(
        frame[source.user].to_numpy(),
        frame[source.item].to_numpy(),
        frame[source.rating].to_numpy() if source.rating else None,
        frame[source.timestamp].to_numpy() if source.timestamp else None,
        item_rows=item_rows,
        item_row_ids=item_ids,
        user_rows=user_rows,
        user_row_ids=user_ids,
        text_fields=source.text_fields,
        name=source.name,
        positive_threshold=source.positive_threshold,
    )


def _check_frame(frame, source: ScanSource, path: Path) -> None:
    for role, column in source.columns.items():
        missing = frame[column].isna().to_numpy()
        if missing.any():
            raise DataError(
                f"{path}: column {column!r} ({role}) is empty or NaN in {int(missing.sum())} "
                f"row(s) (first at row {int(np.argmax(missing))}); drop or fill those rows"
            )


# ---- the out-of-core path ---------------------------------------------------------------------
def scan_dataset(
    source: ScanSource,
    *,
    cache_dir,
    min_rating: float | None = None,
    dedup: bool = False,
    k_core: int | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> Dataset:
    """The filtered dataset of ``source``, built once with DuckDB and opened from its cache.

    Filters apply in the order of :func:`~genrec.data.sources.load_dataset`: ``min_rating``
    (keep values >= it), ``dedup`` (the latest row of a repeated pair), ``k_core`` (users and
    items with at least that many interactions). The result equals
    ``read_in_memory(source)`` filtered by :mod:`~genrec.data.filters` the same way.

    Args:
        source: the files and their columns.
        cache_dir: the cache root; the dataset goes to ``cache_dir/scans/<name>-<key>/``.
        min_rating, dedup, k_core: the filters.
        memory_limit: DuckDB's memory limit while building (it spills to disk beyond it), e.g.
            ``"1GB"``. None: :data:`MEMORY_PER_THREAD_MB` per DuckDB thread (while sorting,
            :data:`SORT_MEMORY_PER_THREAD_MB`), and should DuckDB run out of memory, the build
            again under :data:`RETRY_MEMORY_LIMIT` (logged).
        threads: DuckDB threads while building (default: DuckDB's own choice).

    Raises:
        DataError: an unreadable file, a missing column, a missing (NULL or NaN) id, value or
            timestamp (naming the file and column), or filters that leave nothing.
        MissingExtraError: DuckDB is not installed (``pip install 'genrec[scale]'``).
    """
    settings = _settings(min_rating=min_rating, dedup=dedup, k_core=k_core)
    folder = cache_folder(source, settings, cache_dir=cache_dir)
    tables = _tables(source)  # small; read first so that a bad table fails before the build
    if folder.exists():
        problem = cache_problem(folder)
        if problem is None:
            return _opened(folder, source, tables=tables)
        log.warning("the scan cache %s is damaged (%s); building it again", folder, problem)
    del tables  # not held through the build (80 MB of item text at 20M): read again after it
    _check_files(source)
    _build(folder, source, settings, memory_limit=memory_limit, threads=threads)
    return _opened(folder, source, tables=None)  # built from checked rows just now


def _settings(*, min_rating, dedup: bool, k_core) -> dict:
    if min_rating is not None and not np.isfinite(float(min_rating)):
        raise ConfigError(f"min_rating must be a finite number, got {min_rating!r}")
    if k_core is not None and (
        isinstance(k_core, bool) or not isinstance(k_core, (int, np.integer)) or k_core < 1
    ):
        raise ConfigError(f"k_core: k must be an int >= 1, got {k_core!r}")
    return {
        "min_rating": None if min_rating is None else float(min_rating),
        "dedup": bool(dedup),
        "k_core": None if k_core is None else int(k_core),
    }


def cache_folder(source: ScanSource, settings: dict, *, cache_dir) -> Path:
    """``cache_dir/scans/<name>-<key>``: the key hashes the files' paths, sizes and times, the
    columns and ``settings``; any change to them names another folder."""
    stamp = []
    for path in source.files:
        try:
            st = Path(path).stat()
        except OSError:
            raise DataError(f"{path}: no such file; check the path") from None
        stamp.append([str(Path(path).resolve()), st.st_size, st.st_mtime_ns])
    key = {
        "format": CACHE_FORMAT,
        "files": stamp,
        "columns": source.columns,
        "sep": source.sep,
        "header": source.header,
        "names": list(source.names),
        "settings": settings,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.name)
    return Path(cache_dir) / "scans" / f"{safe}-{digest}"


# ---- checks of the source files ---------------------------------------------------------------
def _check_files(source: ScanSource) -> None:
    """Every file exists; Parquet files are readable and have every column, of a usable type.
    Raises DataError naming the file and the column."""
    if not source.files:
        raise DataError("no interaction files given; pass at least one file")
    for path in source.files:
        if not Path(path).is_file():
            raise DataError(f"{path}: no such file; check the path")
        if source.sep is None:
            _check_schema(_parquet_schema(path), source, shown=path)


def _check_schema(schema, source: ScanSource, *, shown: Path) -> None:
    """DataError naming ``shown`` when ``schema`` lacks a column of ``source`` or holds ids
    that are neither integers nor strings, or values and times that are not numbers."""
    import pyarrow as pa

    for role, column in source.columns.items():
        if column not in schema.names:
            raise DataError(
                f"{shown}: no column {column!r} ({role}); its columns are "
                f"{', '.join(schema.names)}; pass {role}=<one of them>"
            )
        kind = schema.field(column).type
        if role in ("user", "item"):
            ok, want = pa.types.is_integer(kind) or _is_text(kind), "integers or strings"
        else:
            ok, want = pa.types.is_integer(kind) or pa.types.is_floating(kind), "numbers"
        if not ok:
            fix = "seconds since the epoch" if role == "timestamp" else want
            raise DataError(
                f"{shown}: column {column!r} ({role}) holds {kind}; it must hold {want}: "
                f"convert it to {fix} before scanning"
            )


def _parquet_schema(path: Path):
    pq = require("pyarrow.parquet", "parquet")
    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises its own exception types
        raise DataError(f"{path}: not a readable Parquet file ({exc}); re-export it") from None


def _is_text(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_float(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_floating(kind)


def _parquet_rows(files: Sequence[Path]) -> int:
    pq = require("pyarrow.parquet", "parquet")
    total = 0
    for path in files:
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc}); re-export it") from None
    return total


def _tables(source: ScanSource) -> tuple[tuple, tuple]:
    """``(items, users)`` of ``source.tables``, each ``(ids, columns)`` or ``(None, None)``."""
    return ((None, None), (None, None)) if source.tables is None else source.tables()


def parquet_item_table(path, *, key: str = "item_id") -> tuple[tuple, tuple]:
    """``((ids, columns), (None, None))`` of a Parquet item table: every column but ``key``
    under its own name, ``genres`` split on ``|`` into tuples.

    Raises:
        DataError: an unreadable file or no ``key`` column.
    """
    pq = require("pyarrow.parquet", "parquet")
    schema = _parquet_schema(path)
    if key not in schema.names:
        raise DataError(
            f"{path}: no column {key!r} (item ids); its columns are "
            f"{', '.join(schema.names)}; name the id column {key!r}"
        )
    table = pq.read_table(path)
    ids = np.asarray([str(x) for x in table.column(key).to_pylist()], dtype=object)
    columns = {}
    for name in table.column_names:
        if name == key:
            continue
        values = table.column(name).to_pylist()
        if name == "genres":
            values = [() if v is None else tuple(g for g in str(v).split("|") if g) for v in values]
        columns[name] = object_array(values)
    return (ids, columns), (None, None)


# ---- building ---------------------------------------------------------------------------------
def _build(folder: Path, source: ScanSource, settings: dict, *, memory_limit, threads) -> None:
    """Scan, filter and re-number with DuckDB; stream the arrays into a staged folder. Under the
    default ``memory_limit`` (None), a build that runs out of memory runs again under
    :data:`RETRY_MEMORY_LIMIT`.

    Raises:
        ConfigError: ``memory_limit`` is not a size DuckDB reads, or too small for this data.
    """
    duckdb = require("duckdb", "scale")
    limits = [memory_limit] if memory_limit is not None else [None, RETRY_MEMORY_LIMIT]
    for k, limit in enumerate(limits):
        try:
            return _build_under(
                duckdb, folder, source, settings, memory_limit=limit, threads=threads
            )
        except duckdb.OutOfMemoryException as exc:
            shown = "the default" if limit is None else repr(limit)
            if k + 1 < len(limits):
                log.warning(
                    "DuckDB ran out of memory building the scan of %r under %s memory limit "
                    "(%s); building it again under %s",
                    source.name,
                    shown,
                    _first_line(exc),
                    limits[k + 1],
                )
                continue
            raise ConfigError(
                f"DuckDB ran out of memory building the scan of {source.name!r} under "
                f"memory_limit={limit!r} ({_first_line(exc)}); pass a larger memory_limit to "
                "scan_dataset, e.g. memory_limit='4GB'"
            ) from None


def _build_under(
    duckdb, folder: Path, source: ScanSource, settings: dict, *, memory_limit, threads
):
    """One build (see :func:`_build`); DuckDB's OutOfMemoryException passes through, leaving
    neither the staged folder nor the spill files behind."""
    started = time.perf_counter()
    folder.parent.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix=".spill-", dir=folder.parent))
    try:
        con = _connect(duckdb, spill, memory_limit=memory_limit, threads=threads)
        try:
            with atomic_folder(folder, owned=_owned(), what="scan cache") as stage:
                scanned = source
                if source.sep is not None:
                    scanned = _text_to_parquet(con, source, spill)
                _raw_view(con, scanned)
                _check_missing(con, source)
                counts = _filter(con, settings, source.name)
                _number(con, settings)
                if memory_limit is None:  # the sorts spill well; the joins less so
                    _limit_per_thread(con, SORT_MEMORY_PER_THREAD_MB)
                meta = _write_arrays(con, stage, counts)
                meta.update(
                    format=CACHE_FORMAT,
                    name=source.name,
                    settings=settings,
                    build_seconds=round(time.perf_counter() - started, 2),
                )
                _write_manifest(stage, meta)
        finally:
            con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _connect(duckdb, spill: Path, *, memory_limit, threads):
    """A DuckDB connection spilling to ``spill`` beyond ``memory_limit`` (None:
    :data:`MEMORY_PER_THREAD_MB` per thread); ConfigError when DuckDB cannot read
    ``memory_limit`` as a size or ``threads`` as a thread count."""
    config = {"temp_directory": str(spill)} | ({"threads": threads} if threads else {})
    try:
        con = duckdb.connect(
            config=config | ({} if memory_limit is None else {"memory_limit": memory_limit})
        )
    except duckdb.Error as exc:
        raise ConfigError(
            f"memory_limit={memory_limit!r} or threads={threads!r} is not accepted by DuckDB "
            f"({_first_line(exc)}); pass a size such as '128MB' or '1GB' and a thread count >= 1"
        ) from None
    try:
        if memory_limit is None:
            _limit_per_thread(con, MEMORY_PER_THREAD_MB)
        con.execute("SET enable_progress_bar = false")
    except BaseException:
        con.close()
        raise
    return con


def _limit_per_thread(con, megabytes: int) -> None:
    """Set DuckDB's memory limit to ``megabytes`` per DuckDB thread."""
    n_threads = int(_one(con, "SELECT current_setting('threads')")[0])
    con.execute(f"SET memory_limit = '{megabytes * n_threads}MB'")


def _owned() -> list[str]:
    return [f"{name}.npy" for name in ARRAYS] + [MANIFEST, SPLITS]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _text_to_parquet(con, source: ScanSource, spill: Path) -> ScanSource:
    """Delimited files copied into Parquet files in file order (ids kept as text, values and
    times as numbers), so that rows can be numbered by ``file_row_number``."""
    files = []
    types = {source.user: "VARCHAR", source.item: "VARCHAR"}
    types |= {c: "DOUBLE" for c in (source.rating, source.timestamp) if c is not None}
    typed = "{" + ", ".join(f"{_literal(c)}: {_literal(t)}" for c, t in types.items()) + "}"
    for k, path in enumerate(source.files):
        out = spill / f"text-{k}.parquet"
        csv = f"read_csv({_literal(str(path))}, sep={_literal(source.sep)}, "
        csv += f"header={'true' if source.header else 'false'}"
        if not source.header:
            csv += ", names=[" + ", ".join(_literal(n) for n in source.names) + "]"
        described = _text_query(con, f"DESCRIBE SELECT * FROM {csv})", path, source.sep)
        names = [row[0] for row in described]
        for role, column in source.columns.items():
            if column not in names:
                raise DataError(
                    f"{path}: no column {column!r} ({role}); its columns are "
                    f"{', '.join(names)}; pass {role}=<one of them>"
                )
        copy = (
            f"COPY (SELECT * FROM {csv}, types={typed})) TO {_literal(str(out))} (FORMAT parquet)"
        )
        _text_query(con, copy, path, source.sep)
        _check_schema(_parquet_schema(out), source, shown=path)
        files.append(out)
    return replace(source, files=tuple(files), sep=None)


def _text_query(con, query: str, path: Path, sep: str) -> list:
    """The rows of ``query`` over the text file ``path``; DataError naming it on failure."""
    try:
        return con.sql(query).fetchall() if query.startswith("DESCRIBE") else con.execute(query)
    except Exception as exc:  # duckdb raises its own exception types
        raise DataError(
            f"{path}: cannot be read as {sep!r}-separated ({_first_line(exc)})"
        ) from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _raw_view(con, source: ScanSource) -> None:
    """View ``raw(pos, file, row, u, i, r, t)``: every row; ``pos`` is its place in the files'
    order, ``row`` its place in its file."""
    rows = [_parquet_rows([p]) for p in source.files]
    offsets = np.r_[0, np.cumsum(rows)[:-1]]
    values = ", ".join(
        f"({_literal(str(p))}, {int(o)}, {k})"
        for k, (p, o) in enumerate(zip(source.files, offsets))
    )
    con.execute("CREATE TEMP TABLE offsets(filename VARCHAR, start BIGINT, k INTEGER)")
    con.execute(f"INSERT INTO offsets VALUES {values}")
    files = "[" + ", ".join(_literal(str(p)) for p in source.files) + "]"
    r = _quote(source.rating) if source.rating else "1.0"
    t = "0"
    if source.timestamp:
        t = _quote(source.timestamp)
        if _is_float(_parquet_schema(source.files[0]).field(source.timestamp).type):
            # floored like the in-memory path; NaN, infinite or beyond int64 become NULL
            t = f"CASE WHEN isfinite({t}) AND abs({t}) < 9.2e18 THEN floor({t}) END"
    con.execute(
        f"""CREATE TEMP VIEW raw AS
        SELECT o.start + s.file_row_number AS pos, o.k AS file, s.file_row_number AS row,
               s.{_quote(source.user)} AS u, s.{_quote(source.item)} AS i,
               CAST({r} AS DOUBLE) AS r, CAST({t} AS BIGINT) AS t
        FROM read_parquet({files}, file_row_number=true, filename=true) s
        JOIN offsets o ON s.filename = o.filename"""
    )


def _check_missing(con, source: ScanSource) -> None:
    """DataError naming the first file and column with a NULL (or NaN) id, value or time, or a
    value a float32 cannot hold (``Dataset.value`` is float32); one pass over the files counts
    every column's missing values per file."""
    checks = {"user": "u IS NULL", "item": "i IS NULL", "timestamp": "t IS NULL"}
    checks["rating"] = f"r IS NULL OR isnan(r) OR isinf(r) OR abs(r) > {FLOAT32_MAX!r}"
    roles = list(source.columns)
    counted = ", ".join(
        f"count(*) FILTER (WHERE {checks[role]}), min(row) FILTER (WHERE {checks[role]})"
        for role in roles
    )
    per_file = con.sql(f"SELECT file, {counted} FROM raw GROUP BY file ORDER BY file").fetchall()
    for file, *found in per_file:
        for k, role in enumerate(roles):
            count, first = found[2 * k], found[2 * k + 1]
            if count:
                raise DataError(
                    f"{source.files[file]}: column {source.columns[role]!r} ({role}) is empty, "
                    f"NaN or infinite (or beyond float32's {FLOAT32_MAX:.4g}) in {count} "
                    f"row(s) (first at row {first}); drop or fill those rows"
                )


def _filter(con, settings: dict, name: str) -> dict:
    """Table ``cur`` of the rows that pass the filters; returns the rows before and after."""
    where = ""
    if settings["min_rating"] is not None:  # in float32, as Dataset.value >= min_rating compares
        where = f"WHERE CAST(r AS FLOAT) >= CAST({settings['min_rating']!r} AS FLOAT)"
    qualify = (
        "QUALIFY row_number() OVER (PARTITION BY u, i ORDER BY t DESC, pos DESC) = 1"
        if settings["dedup"]
        else ""
    )
    kind = _kind_of_cur(settings)
    con.execute(f"CREATE TEMP {kind} cur AS SELECT pos, u, i, r, t FROM raw {where} {qualify}")
    before = _one(con, "SELECT count(*) FROM raw")[0]
    k = settings["k_core"]
    while k is not None:  # the k-core: drop users and items below k until none is
        dropped = con.execute(
            f"""DELETE FROM cur WHERE
            u IN (SELECT u FROM cur GROUP BY u HAVING count(*) < {k}) OR
            i IN (SELECT i FROM cur GROUP BY i HAVING count(*) < {k})"""
        ).fetchall()[0][0]
        if not dropped:
            break
    after = _one(con, "SELECT count(*) FROM cur")[0]
    if not after:
        used = ", ".join(f"{key}={v!r}" for key, v in settings.items() if v not in (None, False))
        raise DataError(
            f"the filters ({used}) removed every interaction of dataset {name!r} "
            f"({before} before); loosen them"
        )
    return {"rows_read": int(before), "interactions": int(after)}


def _kind_of_cur(settings: dict) -> str:
    """``cur`` is a view of the files unless a filter must see all of it (dedup, k-core): the
    view is read again on each use, which costs less than storing and spilling a copy."""
    return "TABLE" if settings["dedup"] or settings["k_core"] is not None else "VIEW"


def _number(con, settings: dict) -> None:
    """Dense indices in first-seen order over the unfiltered rows (what the in-memory path's
    vocabularies keep after filtering); table ``fin(pos, uidx, iidx, r, t)``."""
    for key, table in (("u", "umap"), ("i", "imap")):
        con.execute(
            f"""CREATE TEMP TABLE {table} AS
            SELECT {key} AS id, row_number() OVER (ORDER BY first) - 1 AS idx FROM (
                SELECT {key}, min(pos) AS first FROM raw
                WHERE {key} IN (SELECT DISTINCT {key} FROM cur) GROUP BY {key})"""
        )
    con.execute(
        """CREATE TEMP TABLE fin AS
        SELECT c.pos AS pos, um.idx AS uidx, im.idx AS iidx, c.r AS r, c.t AS t
        FROM cur c JOIN umap um ON c.u = um.id JOIN imap im ON c.i = im.id"""
    )
    con.execute(f"DROP {_kind_of_cur(settings)} cur")


def _write_arrays(con, stage: Path, counts: dict) -> dict:
    """Stream vocabularies, interactions, time order and CSR from DuckDB into ``stage``.

    DuckDB sorts twice and every array is written front to back with plain file writes (no
    mapped output array, whose written pages would stay in the process's memory): the
    interactions in file order, then the time order (by user, time, file order) and, from the
    same stream, the CSR."""
    n = counts["interactions"]
    n_users = _one(con, "SELECT count(*) FROM umap")[0]
    n_items = _one(con, "SELECT count(*) FROM imap")[0]
    _write_ids(con, "umap", stage / "user_ids.npy", n_users)
    _write_ids(con, "imap", stage / "item_ids.npy", n_items)
    item_counts, rows = _write_interactions(con, stage, counts, n_users=n_users, n_items=n_items)
    np.save(stage / "item_counts.npy", item_counts, allow_pickle=False)
    nnz = _write_time_order_and_csr(con, stage, rows, n=n, n_users=n_users, n_items=n_items)
    _write_ones(stage / "csr_data.npy", nnz)
    return {**counts, "users": int(n_users), "items": int(n_items), "pairs": int(nnz)}


def _write_ids(con, table: str, path: Path, n: int) -> None:
    """The ids of ``table`` (``umap``, ``imap``) in index order, a chunk at a time, as int64 or
    as text as wide as the widest id (:func:`_storable_ids`; a first pass finds the width)."""
    query = f"SELECT id FROM {table}"
    dtype = _storable_ids(next(_batches(con, f"{query} LIMIT 1"))[1]["id"]).dtype
    if dtype.kind == "U":
        width = max(_storable_ids(batch["id"]).dtype.itemsize for _, batch in _batches(con, query))
        dtype = np.dtype((np.str_, width // 4))  # 4 bytes a character
    with _NpyFile(path, dtype, n) as out:
        for _, batch in _batches(con, f"{query} ORDER BY idx"):
            out.write(_storable_ids(batch["id"]))


def _write_interactions(con, stage: Path, counts: dict, *, n_users: int, n_items: int):
    """``user_idx``, ``item_idx``, ``value`` and ``timestamp`` in file order; returns the item
    counts and the row of each kept file position (None when every row was kept: the position
    is the row)."""
    n, n_read = counts["interactions"], counts["rows_read"]
    columns = {
        "uidx": ("user_idx", index_dtype(n_users)),
        "iidx": ("item_idx", index_dtype(n_items)),
        "r": ("value", np.float32),
        "t": ("timestamp", np.int64),
    }
    item_counts = np.zeros(n_items, np.int64)
    kept = None if n == n_read else np.zeros(-(-n_read // _Rows.BLOCK) * _Rows.BLOCK, np.uint8)
    query = "SELECT pos, uidx, iidx, CAST(r AS FLOAT) AS r, t FROM fin ORDER BY pos"
    with ExitStack() as files:
        out = {
            column: files.enter_context(_NpyFile(stage / f"{name}.npy", dtype, n))
            for column, (name, dtype) in columns.items()
        }
        for _, batch in _batches(con, query):
            for column, file in out.items():
                file.write(batch[column])
            item_counts += np.bincount(batch["iidx"], minlength=n_items)
            if kept is not None:
                kept[batch["pos"]] = 1
    return item_counts, None if kept is None else _Rows(kept)


class _Rows:
    """The row in the result of each kept file position, in about one byte per position read:
    the kept positions before each block of :attr:`BLOCK` (int64) plus those before it within
    its block (uint8). ``rows(pos)`` maps an array of kept positions to their rows."""

    BLOCK = 256
    SHIFT = 8  # log2(BLOCK)

    def __init__(self, kept: np.ndarray):
        """``kept``: (positions read, padded to a multiple of BLOCK) uint8, 1 where kept;
        turned into the counts within each block in place."""
        blocks = kept.reshape(-1, self.BLOCK)
        totals = np.zeros(len(blocks), np.int64)
        step = max(1, CHUNK_ROWS // self.BLOCK)
        for start in range(0, len(blocks), step):
            part = blocks[start : start + step]
            totals[start : start + step] = part.sum(axis=1)
            inclusive = np.cumsum(part, axis=1, dtype=np.uint8)  # 256 wraps to 0: modulo 256
            np.subtract(inclusive, part, out=part)  # exclusive counts (< 256), exact
        self.base = np.zeros(len(blocks), np.int64)
        np.cumsum(totals[:-1], out=self.base[1:])
        self.within = kept

    def __call__(self, pos: np.ndarray) -> np.ndarray:
        return self.base[pos >> self.SHIFT] + self.within[pos]


def _write_time_order_and_csr(con, stage: Path, rows, *, n: int, n_users: int, n_items: int):
    """``time_order``, ``user_counts`` and the binary user x item CSR from one stream sorted by
    user, time and file order: the whole users of each chunk have their (user, item) pairs made
    unique, sorted and appended to the CSR's indices (the chunk's last user waits for the next
    chunk). Returns the number of pairs."""
    user_counts, per_user = np.zeros(n_users, np.int64), np.zeros(n_users, np.int64)
    scratch = stage / "csr_indices.part"
    held = np.zeros(0, np.int64)  # (user, item) keys of a user the next chunk may continue
    query = "SELECT pos, uidx, iidx FROM fin ORDER BY uidx, t, pos"
    with _NpyFile(stage / "time_order.npy", np.int64, n) as order, open(scratch, "wb") as pairs:
        for _, batch in _batches(con, query):
            order.write(batch["pos"] if rows is None else rows(batch["pos"]))
            chunk_users = batch["uidx"].astype(np.int64)  # ascending
            user_counts[chunk_users[0] : chunk_users[-1] + 1] += np.bincount(
                chunk_users - chunk_users[0]
            )
            keys = np.concatenate([held, chunk_users * n_items + batch["iidx"]])
            users = keys // n_items
            last = int(np.searchsorted(users, users[-1]))  # the first row of the last user
            _append_pairs(keys[:last], pairs, per_user, n_items=n_items)
            held = keys[last:].copy()
        _append_pairs(held, pairs, per_user, n_items=n_items)
    np.save(stage / "user_counts.npy", user_counts, allow_pickle=False)
    return _write_csr(stage, scratch, per_user, n_items=n_items)


def _write_csr(stage: Path, scratch: Path, per_user: np.ndarray, *, n_items: int) -> int:
    """``csr_indices`` (int32 where they fit) from the int64 indices in ``scratch``, which is
    then removed, and ``csr_indptr`` from the pairs of each user; returns the number of pairs."""
    nnz = int(per_user.sum())
    index_type = np.int32 if nnz < 2**31 and n_items < 2**31 else np.int64
    with open(scratch, "rb") as src, _NpyFile(stage / "csr_indices.npy", index_type, nnz) as out:
        for _ in range(0, nnz, CHUNK_ROWS):
            out.write(np.fromfile(src, np.int64, CHUNK_ROWS))
    scratch.unlink()
    indptr = np.zeros(len(per_user) + 1, index_type)
    np.cumsum(per_user, out=indptr[1:])
    np.save(stage / "csr_indptr.npy", indptr, allow_pickle=False)
    return nnz


def _append_pairs(keys: np.ndarray, file, per_user: np.ndarray, *, n_items: int) -> None:
    """Append the sorted unique items of whole users' ``user * n_items + item`` keys to
    ``file`` (int64) and count them into ``per_user``."""
    if not len(keys):
        return
    keys = np.sort(keys)
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # np.unique, 100x faster here
    users = keys // n_items
    per_user[users[0] : users[-1] + 1] += np.bincount(users - users[0])
    file.write((keys - users * n_items).data)


class _NpyFile:
    """A 1-D ``.npy`` file of ``n`` values written front to back (a context manager): its pages
    go to the page cache, not to the process's memory as a mapped array's would."""

    def __init__(self, path: Path, dtype, n: int):
        self.dtype, self.n, self.written = np.dtype(dtype), n, 0
        self.file = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(self.file, header | {"shape": (n,)})

    def write(self, values: np.ndarray) -> None:
        chunk = np.ascontiguousarray(values, dtype=self.dtype)
        self.file.write(chunk.data)
        self.written += len(chunk)

    def __enter__(self) -> _NpyFile:
        return self

    def __exit__(self, kind, *_) -> None:
        self.file.close()
        if kind is None and self.written != self.n:
            raise RuntimeError(f"{self.file.name}: wrote {self.written} values of {self.n}")


def _write_ones(path: Path, n: int) -> None:
    """The CSR's (n,) float32 values, all 1, written a block at a time: the opened matrix maps
    them instead of holding n ones in memory."""
    block = np.ones(min(n, CHUNK_ROWS), np.float32)
    with _NpyFile(path, np.float32, n) as out:
        for start in range(0, n, CHUNK_ROWS):
            out.write(block[: min(CHUNK_ROWS, n - start)])


def _one(con, query: str) -> tuple:
    """The first row of ``query``'s result, the result read to its end."""
    rows = con.sql(query).fetchall()
    return rows[0] if rows else None


def _batches(con, query: str):
    """``(start row, {column: array})`` of ``query``'s result, :data:`CHUNK_ROWS` at a time."""
    reader = con.sql(query).to_arrow_reader(CHUNK_ROWS)
    start = 0
    for batch in reader:
        columns = {
            name: batch.column(name).to_numpy(zero_copy_only=False) for name in batch.schema.names
        }
        yield start, columns
        start += batch.num_rows


def _storable_ids(ids: np.ndarray) -> np.ndarray:
    """Ids as int64 or as fixed-width text: arrays ``np.load`` reads without pickle."""
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return np.asarray([str(x) for x in ids], dtype=str)


def _write_manifest(stage: Path, meta: dict) -> None:
    from genrec import __version__

    arrays = {}
    for name in ARRAYS:
        path = stage / f"{name}.npy"
        arr = np.load(path, mmap_mode="r")
        st = path.stat()
        entry = {"dtype": arr.dtype.str, "shape": list(arr.shape), "bytes": st.st_size}
        if st.st_size <= HASH_ALWAYS_BYTES:
            entry["sha256"] = _sha256(path)
        arrays[name] = entry
        del arr
    meta = {**meta, "arrays": arrays, "genrec_version": __version__}
    atomic_write(stage / MANIFEST, json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- opening ----------------------------------------------------------------------------------
def cache_problem(folder) -> str | None:
    """None when the scan cache ``folder`` matches its manifest, else what is wrong: no readable
    manifest, an array missing, of another size, dtype or shape, or (arrays up to
    :data:`HASH_ALWAYS_BYTES`) another sha256."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        arrays = meta["arrays"]
        if meta.get("format") != CACHE_FORMAT or set(arrays) != set(ARRAYS):
            return f"{MANIFEST} is of another format"
    except (OSError, ValueError, KeyError, TypeError):
        return f"no readable {MANIFEST}"
    for name, want in arrays.items():
        path = folder / f"{name}.npy"
        try:
            if path.stat().st_size != want["bytes"]:
                return f"{path.name} has {path.stat().st_size} bytes, the manifest says {want['bytes']}"
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.dtype.str != want["dtype"] or list(arr.shape) != want["shape"]:
                return f"{path.name} is {arr.dtype.str} {arr.shape}, the manifest says otherwise"
            if "sha256" in want and _sha256(path) != want["sha256"]:
                return f"{path.name} differs from its recorded sha256"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{path.name} cannot be read ({type(exc).__name__}: {exc})"
    n_users, n_items = arrays["user_ids"]["shape"][0], arrays["item_ids"]["shape"][0]
    return columns_problem(folder, "", n_users=n_users, n_items=n_items)


def columns_problem(folder: Path, prefix: str, *, n_users: int, n_items: int) -> str | None:
    """None when the interaction columns ``{prefix}user_idx.npy``, ``item_idx`` and ``value``
    in ``folder`` hold indices within their vocabularies and finite values, else what is wrong
    (:func:`~genrec.data.dataset.check_columns`). Read a chunk at a time with plain file reads,
    so the check leaves nothing resident."""
    names = [folder / f"{prefix}{name}.npy" for name in ("user_idx", "item_idx", "value")]
    try:
        for start, (users, items, values) in _npy_chunks(*names):
            check_columns(users, items, values, n_users=n_users, n_items=n_items, start=start)
    except DataError as exc:
        return f"{prefix}{exc}"
    except (OSError, ValueError) as exc:
        return f"the columns cannot be read ({type(exc).__name__}: {exc})"
    return None


def _npy_chunks(*paths: Path):
    """``(start, (chunk of each file))`` of 1-D ``.npy`` files of one length, read in blocks of
    :data:`CHUNK_ROWS` rows through plain reads (not memory-mapped)."""
    with ExitStack() as stack:
        files, dtypes, lengths = [], [], set()
        for path in paths:
            f = stack.enter_context(open(path, "rb"))
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
            if len(shape) != 1:
                raise ValueError(f"{path.name} has shape {shape}, expected one dimension")
            files.append(f)
            dtypes.append(dtype)
            lengths.add(shape[0])
        if len(lengths) != 1:
            raise ValueError(f"{', '.join(p.name for p in paths)} differ in length")
        (n,) = lengths
        for start in range(0, n, CHUNK_ROWS):
            count = min(CHUNK_ROWS, n - start)
            chunks = tuple(np.fromfile(f, dtype, count=count) for f, dtype in zip(files, dtypes))
            if any(len(c) != count for c in chunks):
                raise ValueError("a file ends early")
            yield start, chunks


def open_scan(folder, source: ScanSource | None = None, *, tables=None) -> Dataset:
    """The Dataset of a built scan cache, its arrays memory-mapped read-only.

    The CSR, counts and time order are taken from the cache rather than computed; ``source``
    (when given) supplies the label, the threshold and the item and user tables (``tables``,
    when given, is what ``source.tables()`` returns, read already).

    Raises:
        DataError: the folder is not a sound cache (:func:`cache_problem` says why).
    """
    problem = cache_problem(folder)
    if problem is not None:
        raise DataError(f"{folder} is not a usable scan cache: {problem}; delete it to rebuild")
    return _opened(Path(folder), source, tables=tables)


def _opened(folder: Path, source: ScanSource | None, *, tables) -> Dataset:
    """:func:`open_scan` of a folder :func:`cache_problem` found sound."""
    meta = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    arr = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
    users = Vocabulary.from_distinct(arr["user_ids"], kind="user")  # str when first needed
    items = Vocabulary.from_distinct(arr["item_ids"], kind="item")
    catalog = user_table = None
    if source is not None:
        (item_ids, item_rows), (user_ids, user_rows) = tables or _tables(source)
        if item_rows is not None:
            catalog = ItemCatalog.from_rows(
                items, *first_rows(item_ids, item_rows, "item"), text_fields=source.text_fields
            )
        if user_rows is not None:
            user_table = Table.from_rows(users, *first_rows(user_ids, user_rows, "user"))
    data = Dataset.from_checked(  # cache_problem checked the columns, reading them in chunks
        users,
        items,
        arr["user_idx"],
        arr["item_idx"],
        arr["value"],
        arr["timestamp"],
        catalog=catalog,
        user_table=user_table,
        name=source.name if source is not None else meta["name"],
        positive_threshold=None if source is None else source.positive_threshold,
    )
    user_items = sp.csr_matrix(
        (arr["csr_data"], arr["csr_indices"], arr["csr_indptr"]), shape=(len(users), len(items))
    )
    data.split_store = SplitStore(folder / SPLITS, data)
    data.preset(
        user_items=user_items,
        user_counts=arr["user_counts"],
        item_counts=arr["item_counts"],
        time_order=arr["time_order"],
    )
    return data


class SplitStore:
    """Splits of one scan cache, kept in its ``splits/`` folder so a second run need not split
    twenty million interactions again, and so no run holds a split's parts in memory.

    Parts are stored by content: ``parts-<sha of the part codes>/`` holds the code of every
    interaction (``code.npy``, int8), each part's columns (``train.user_idx.npy``,
    ``train.item_idx.npy``, ``train.value.npy``, ``train.timestamp.npy``, the same for
    ``valid``, ``test`` and ``fold_in``) and ``lengths.json``. They are written a chunk of
    interactions at a time straight from the mapped dataset (:meth:`parts`, which
    :func:`~genrec.data.splits.split_from_code` calls) and opened memory-mapped, like the cache
    itself: a part costs no memory until a model reads it. A split made with given settings is
    remembered in ``<sha of the settings>.json`` (the settings, the split's info, its parts'
    folder), so :func:`~genrec.data.splits.make_split` reads it back instead of splitting.

    Folders and files are written whole or not at all; a stored split that does not read back
    cleanly (checked as the cache is, a chunk at a time) is ignored with a warning and made
    again.
    """

    COLUMNS = ("user_idx", "item_idx", "value", "timestamp")
    PARTS = {"train": TRAIN, "valid": VALID, "test": TEST, "fold_in": FOLD_IN}  # name -> code

    def __init__(self, root, data: Dataset):
        self.root, self.data = Path(root), data

    def load(self, key: dict) -> Split | None:
        """The stored split made with settings ``key``, parts mapped; None if there is none."""
        path = self.root / f"{_digest(json.dumps(key, sort_keys=True, default=list))}.json"
        if not path.is_file():
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            if meta["key"] != json.loads(json.dumps(key, sort_keys=True, default=list)):
                raise ValueError("another split")
            code, parts = self._open(self.root / meta["parts"])
        except (OSError, ValueError, KeyError, TypeError, DataError) as exc:
            log.warning("ignoring the stored split in %s (%s); splitting again", path, exc)
            return None
        return self._split(code, parts, meta["info"])

    def remember(self, key: dict, split: Split) -> None:
        """Record that settings ``key`` made ``split`` (whose parts this store wrote); a cache
        that cannot be written is left as it is (logged)."""
        from genrec.io import json_default

        text = json.dumps(key, sort_keys=True, default=list)
        meta = {"key": json.loads(text), "info": split.info, "parts": self._name(split.code)}
        try:
            atomic_write(
                self.root / f"{_digest(text)}.json", json.dumps(meta, default=json_default)
            )
        except OSError as exc:
            log.info("could not store the split in %s: %s", self.root, exc)

    def parts(self, code: np.ndarray, info: dict, *, with_fold_in: bool) -> Split | None:
        """The split of the dataset by part ``code`` (n,), its parts written here (unless they
        already are) and opened mapped; None when they cannot be written (the caller then
        makes the parts in memory)."""
        folder = self.root / self._name(code)
        names = [p for p, c in self.PARTS.items() if c != FOLD_IN or with_fold_in]
        try:
            if folder.is_dir():
                opened = self._open(folder)
                if set(opened[1]) == set(names):
                    return self._split(*opened, info)
        except (OSError, ValueError, KeyError, TypeError, DataError) as exc:
            log.warning("rewriting the stored parts in %s (%s)", folder, exc)
        try:
            self._write(folder, code, names)
            return self._split(*self._open(folder, checked=True), info)
        except OSError as exc:
            log.info("could not store the split's parts in %s: %s", folder, exc)
            return None

    def _name(self, code: np.ndarray) -> str:
        return "parts-" + _digest(np.ascontiguousarray(code, np.int8))

    def _write(self, folder: Path, code: np.ndarray, names: list[str]) -> None:
        """Every part's columns, selected from the dataset a chunk of rows at a time."""
        data, code = self.data, np.asarray(code, np.int8)
        lengths = {p: int(np.count_nonzero(code == self.PARTS[p])) for p in names}
        files = [f"{p}.{c}.npy" for p in names for c in self.COLUMNS]
        with atomic_folder(folder, owned=("code.npy", "lengths.json", *files)) as stage:
            np.save(stage / "code.npy", code, allow_pickle=False)
            with ExitStack() as stack:
                out = {
                    (p, c): stack.enter_context(
                        _NpyFile(stage / f"{p}.{c}.npy", getattr(data, c).dtype, lengths[p])
                    )
                    for p in names
                    for c in self.COLUMNS
                }
                for start in range(0, len(code), CHUNK_ROWS):
                    rows = slice(start, start + CHUNK_ROWS)
                    masks = {p: code[rows] == self.PARTS[p] for p in names}
                    for c in self.COLUMNS:
                        chunk = np.asarray(getattr(data, c)[rows])
                        for p in names:
                            out[p, c].write(chunk[masks[p]])
            (stage / "lengths.json").write_text(json.dumps(lengths), encoding="utf-8")

    def _open(self, folder: Path, *, checked: bool = False) -> tuple[np.ndarray, dict]:
        """``(code, parts)`` of a parts folder, mapped, after checking it (the columns' values
        not again when ``checked``: just written from the checked dataset); raises ValueError,
        OSError or DataError (another dtype) when it does not read back cleanly."""
        data = self.data
        code = np.load(folder / "code.npy", mmap_mode="r", allow_pickle=False)
        if code.shape != (len(data),) or code.dtype != np.int8:
            raise ValueError("part codes of another size")
        parts = {}
        for part, length in json.loads((folder / "lengths.json").read_text("utf-8")).items():
            if part not in self.PARTS:
                raise ValueError(f"unknown part {part!r}")
            shape = {"n_users": data.n_users, "n_items": data.n_items}
            if not checked and (problem := columns_problem(folder, f"{part}.", **shape)):
                raise ValueError(problem)
            columns = [
                np.load(folder / f"{part}.{c}.npy", mmap_mode="r", allow_pickle=False)
                for c in self.COLUMNS
            ]
            if len(columns[0]) != length or len(columns[3]) != length:
                raise ValueError(f"the {part} part has another length")
            name = f"{data.name}/{part.replace('_', '-')}"  # as in-memory parts are named
            parts[part] = Dataset.from_checked(
                data.users, data.items, *columns, like=data, name=name
            )
        return code, parts

    @staticmethod
    def _split(code: np.ndarray, parts: dict, info: dict) -> Split:
        split = Split(
            parts["train"], parts["valid"], parts["test"], fold_in=parts.get("fold_in"), info=info
        )
        split.code = code
        return split


def _digest(content) -> str:
    """The first 20 hex digits of the sha256 of str or an array's bytes."""
    raw = content.encode() if isinstance(content, str) else memoryview(content).cast("B")
    return hashlib.sha256(raw).hexdigest()[:20]
