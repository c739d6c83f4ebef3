"""Small file helpers shared by artifacts, results and reports."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object] | bytes | str) -> Path:
    """Write ``path`` via a temp file in the same folder and a rename, so an interrupted write
    never leaves a half file under the final name. ``write`` is the content or a function that
    writes to a binary file object. Creates missing parent folders; the file gets mode 0644."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write.encode() if isinstance(write, str) else write)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | os.PathLike, *, what: str) -> Path:
    """Fail early (before hours of work) if ``path`` cannot be written as a file."""
    from genrec.errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give a file path")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(f"{what} {path} cannot be written ({parent} is not a writable folder); "
                          "choose another path")
    return path
