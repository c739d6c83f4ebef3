"""Opening data files the same way for every loader: compression, byte-order marks, errors.

* **Compression is told by the file's first bytes** (gzip, bz2, xz, zip, zstd), so a gzip file
  named ``ratings.csv`` is read as gzip; a file without a known magic number falls back to its
  suffix (``.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst``), so plain text under a ``.gz`` name is
  reported as not a valid compressed file.
* **A UTF-8 byte-order mark is removed** before anything is parsed: it never becomes part of
  the first id, field name or title. A file that starts with one is decoded as UTF-8 (latin-1
  only if it is not valid UTF-8).
* **Reading errors become one short DataError naming the file**: a truncated or mislabelled
  archive, undecodable text, an unreadable file. Text taken from the file or from an exception
  is cut to :data:`MAX_ECHO` characters, so a binary file never floods the terminal.

The helpers here are shared by the loader modules (:mod:`~genrec.data.movielens`,
:mod:`~genrec.data.atomic`, :mod:`~genrec.data.amazon`, :mod:`~genrec.data.tables`); they are
not part of the public API.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from genrec.errors import DataError

BOM = b"\xef\xbb\xbf"
MAX_ECHO = 120  # characters of file content or exception text a message may quote
COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst")
_BY_SUFFIX = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}

# what reading a broken, truncated or mislabelled (compressed) file raises
_READ_ERRORS = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    UnicodeDecodeError,
)
_ARCHIVE_ERRORS = (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, gzip.BadGzipFile)


def compression_of(path: Path) -> str | None:
    """ "gzip", "bz2", "xz", "zip", "zstd" or None: by the first bytes, else by the suffix."""
    with path.open("rb") as f:
        head = f.read(6)
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return _BY_SUFFIX.get(path.suffix.lower())


def open_binary(path: Path, compression: str | None = None):
    """The decompressed bytes of ``path`` as a binary stream (gzip, bz2, xz, a one-member zip)."""
    compression = compression or compression_of(path)
    if compression in _OPENERS:
        return _OPENERS[compression](path, "rb")
    if compression == "zip":
        archive = zipfile.ZipFile(path)
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            archive.close()
            raise DataError(
                f"{path}: a zip archive holding {len(names)} files; a data file may "
                "be zipped alone only (unzip it and pass the file)"
            )
        return archive.open(names[0])
    return path.open("rb")


def starts_with_bom(path: Path, compression: str | None) -> bool:
    """Whether the (decompressed) content begins with a UTF-8 byte-order mark."""
    if compression == "zstd":
        return False  # read by pandas only; zstd needs an extra package to peek
    with open_binary(path, compression) as f:
        return f.read(len(BOM)) == BOM


@contextlib.contextmanager
def open_text(path: Path) -> Iterator[io.TextIOWrapper]:
    """Lines of a (possibly compressed) UTF-8 text file without its byte-order mark; an
    unreadable or corrupt file raises :class:`DataError` naming it, also while lines are read.
    Bytes that are not UTF-8 become U+FFFD."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    with reading(path):
        raw = open_binary(path)
        with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace") as lines:
            yield lines


def decompressed_bytes(path: Path, compression: str | None) -> bytes:
    """The whole decompressed content of ``path`` without a leading byte-order mark."""
    with open_binary(path, compression) as f:
        return f.read().removeprefix(BOM)


def guess_encoding(data: bytes) -> str:
    """ "utf-8" when ``data`` decodes as UTF-8, else "latin-1" (which decodes any bytes)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


@contextlib.contextmanager
def reading(path: Path, encoding: str = "utf-8"):
    """Turn the errors of reading ``path`` into a short :class:`DataError` naming the file."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: byte {exc.start} of a chunk is not {encoding} text; re-encode "
            f"the file as {encoding}"
        ) from None
    except _READ_ERRORS as exc:
        problem = f"{type(exc).__name__}: {echo(str(exc))}"
        if not isinstance(exc, _ARCHIVE_ERRORS) or not _looks_compressed(path):
            raise DataError(
                f"{path}: cannot be read ({problem}); check that it is a complete, "
                "readable file, or download it again"
            ) from None
        raise DataError(
            f"{path}: not a valid compressed file ({problem}); it may be truncated "
            "(download it again) or plain text under a .gz/.bz2/.xz/.zip name "
            "(rename it without that suffix)"
        ) from None


def _looks_compressed(path: Path) -> bool:
    try:
        return path.suffix.lower() in COMPRESSED or compression_of(path) is not None
    except OSError:
        return False


def echo(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` as a message may quote it: its first ``limit`` characters with the
    non-printable ones escaped, then "... (N more characters)" when it is longer."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    if len(text) > limit:
        shown += f"... ({len(text) - limit:,} more characters)"
    return shown


def quote(text: str, limit: int = MAX_ECHO) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters (then "... (N more characters)")."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text) - limit:,} more characters)"


def line_number(path: Path, data_row: int) -> tuple[int, str]:
    """1-based number and text of the ``data_row``-th non-blank line (pandas skips blank lines).

    Runs only when an error is being reported, so a Python loop is fine here.
    """
    with open_text(path) as lines:
        seen = -1
        for number, line in enumerate(lines, 1):
            if line.strip():
                seen += 1
                if seen == data_row:
                    return number, line
    return data_row + 1, ""
