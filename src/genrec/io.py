"""Small file helpers shared by artifacts, results and reports.

Every file genrec writes goes through :func:`atomic_write` (one file) or :func:`atomic_folder`
(a folder of files that belong together, such as a saved model). Both write aside and rename,
so an interrupted write never leaves a half file or a half folder under the final name, and
both follow a symlink to its target and refuse a target that is not a regular file (a FIFO, a
device node, a socket): renaming over those would replace them with a regular file.

Trained artifacts (models, the image generator) are a folder of ``config.json`` (metadata) and
``weights.npz`` (plain arrays, no pickle), written by :func:`write_artifact` and read back by
:func:`read_artifact`, which refuses files of two different saves and non-finite weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from genrec.errors import ArtifactError, ConfigError

try:  # POSIX advisory locks; elsewhere folder swaps are serialised by nothing but the rename
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


ARTIFACT_FILES = ("config.json", "weights.npz")
SAVE_ID_KEY = "_genrec_save_id"  # the array in weights.npz matching config.json's "save_id"


def json_default(x):
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays as Python numbers and
    lists (their ``tolist``), anything else as its ``str``.

    >>> import json, numpy as np
    >>> json.dumps({"n": np.int64(3), "v": np.array([0.5])}, default=json_default)
    '{"n": 3, "v": [0.5]}'
    """
    return x.tolist() if hasattr(x, "tolist") else str(x)


def output_target(path: str | os.PathLike, *, what: str = "output", folder: bool = False) -> Path:
    """The path a write to ``path`` should replace: ``path`` itself, or the file (or folder) a
    symlink at ``path`` points to, followed to the end of the chain.

    Raises:
        ConfigError: the target exists and is not a regular file (``folder=False``) or not a
            folder (``folder=True``): a FIFO, a device node or a socket is never replaced.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return target  # a new path (or a dangling symlink: the write creates its target)
    via = f" (the symlink {path} points to it)" if os.path.islink(path) else ""
    if folder and not stat.S_ISDIR(mode):
        raise ConfigError(
            f"{what} {target}{via} is {_kind(mode)}, not a folder; give a new or existing folder"
        )
    if not folder and not stat.S_ISREG(mode):
        fix = "give a file path" if stat.S_ISDIR(mode) else "give a regular file or a new path"
        raise ConfigError(
            f"{what} {target}{via} is {_kind(mode)}; genrec only writes regular "
            f"files, which would replace it: {fix}"
        )
    return target


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a regular file"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[bytes]], object] | bytes | str
) -> Path:
    """Write ``path`` via a temp file in the same folder and a rename, so an interrupted write
    never leaves a half file under the final name. ``write`` is the content or a function that
    writes to a binary file object. Creates missing parent folders; the file gets mode 0644.

    A symlink at ``path`` is kept and its target written (see :func:`output_target`).

    Returns:
        The path written (the symlink's target for a symlink).

    Raises:
        ConfigError: ``path`` is (or points to) a folder, FIFO, device node or socket.
    """
    path = output_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write.encode() if isinstance(write, str) else write)
        os.chmod(tmp, 0o644)
        output_target(path)  # still a regular file or absent: never rename over a special file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: str | os.PathLike, *, what: str) -> Path:
    """Fail early (before hours of work) if ``path`` cannot be written as a file.

    Raises:
        ConfigError: ``path`` is (or points to) a folder or a special file, or its nearest
            existing parent folder is not writable.
    """
    target = output_target(path, what=what)
    _check_parent_writable(target, shown=Path(path), what=what)
    return target


def check_writable_folder(path: str | os.PathLike, *, what: str, owned: Collection[str]) -> Path:
    """Fail early if :func:`atomic_folder` could not replace the folder ``path``.

    Raises:
        ConfigError: ``path`` is a file or a special file, holds files other than ``owned``
            (the names a previous save wrote), or its parent cannot be written.
    """
    target = output_target(path, what=what, folder=True)
    _check_replaceable(target, owned=owned, what=what)
    _check_parent_writable(target, shown=Path(path), what=what)
    return target


def _check_parent_writable(target: Path, *, shown: Path, what: str) -> None:
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(
            f"{what} {shown} cannot be written ({parent} is not a writable folder); "
            "choose another path"
        )


def _check_replaceable(target: Path, *, owned: Collection[str], what: str) -> None:
    """A folder may be replaced as a unit only when it holds nothing but ``owned`` files."""
    if not target.is_dir():
        return
    leftovers = tuple(f".{name}." for name in owned)  # temp files of an interrupted write
    foreign = sorted(
        p.name for p in target.iterdir() if p.name not in owned and not p.name.startswith(leftovers)
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ConfigError(
            f"{what} {target} holds other files ({shown}); saving replaces the whole "
            "folder, so give a new or empty folder"
        )


@contextlib.contextmanager
def atomic_folder(
    path: str | os.PathLike, *, owned: Collection[str], what: str = "output folder"
) -> Iterator[Path]:
    """Write a folder of files as one unit: yields an empty staging folder beside ``path``; when
    the block ends without an error the staging folder replaces ``path`` whole.

    Two writers racing into one ``path`` each leave a complete folder of their own files, never
    a mix: the swap holds an exclusive lock (``.NAME.lock`` beside the folder, POSIX only) that
    :func:`folder_read_lock` shares. A symlink at ``path`` is kept and its target replaced. An
    interrupted write leaves ``path`` as it was (and a hidden ``.NAME.new-*`` folder at worst).

    Args:
        path: the folder to (re)place.
        owned: file names the folder may already hold; a folder holding anything else is not
            replaced (so saving into a folder of other work never deletes that work).

    Raises:
        ConfigError: ``path`` is a file or special file, or holds files other than ``owned``.
    """
    target = output_target(path, what=what, folder=True)
    _check_replaceable(target, owned=owned, what=what)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    try:
        yield stage
        os.chmod(stage, 0o755)
        with _lock(target, exclusive=True):
            _swap_in(stage, target, owned=owned, what=what)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, target: Path, *, owned: Collection[str], what: str) -> None:
    """Rename ``stage`` to ``target``, moving an existing ``target`` aside first (caller locks)."""
    output_target(target, what=what, folder=True)
    _check_replaceable(target, owned=owned, what=what)
    if not target.exists():
        os.rename(stage, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
    os.rename(target, old)
    try:
        os.rename(stage, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def folder_read_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold a shared lock on the folder ``path`` while reading its files, so that a concurrent
    :func:`atomic_folder` swap cannot hand the reader files of two different writes. A folder
    never written by :func:`atomic_folder` (no lock file) is read without a lock."""
    with _lock(Path(os.path.realpath(path)), exclusive=False):
        yield


@contextlib.contextmanager
def _lock(target: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target``; a shared lock on a missing lock file is no lock."""
    lock_path = target.with_name(f".{target.name}.lock")
    if fcntl is None or (not exclusive and not lock_path.is_file()):
        yield
        return
    with open(lock_path, "a" if exclusive else "r") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_artifact(
    path: str | os.PathLike,
    meta: dict[str, Any],
    state: dict[str, Any],
    *,
    what: str = "model folder",
) -> Path:
    """Write ``meta`` as ``config.json`` and the arrays ``state`` as ``weights.npz`` into the
    folder ``path`` as one unit (:func:`atomic_folder`). Both files carry one fresh save id, so
    :func:`read_artifact` refuses a config and weights of two different saves.

    Raises:
        ArtifactError: ``path`` is a file, or a folder holding files other than an artifact's.
    """
    save_id = uuid.uuid4().hex
    arrays = {k: np.asarray(v) for k, v in state.items()} | {SAVE_ID_KEY: np.array(save_id)}
    try:
        with atomic_folder(path, owned=ARTIFACT_FILES, what=what) as stage:
            with open(stage / "weights.npz", "wb") as f:
                np.savez(f, **arrays)
            text = json.dumps({**meta, "save_id": save_id}, indent=2, default=str)
            (stage / "config.json").write_text(text)
    except ConfigError as exc:
        raise ArtifactError(str(exc)) from None
    return Path(path)


def read_artifact_json(path: str | os.PathLike, *, what: str = "model") -> dict[str, Any]:
    """The ``config.json`` object of the artifact folder ``path`` (``what`` names it in errors).

    Raises:
        ArtifactError: the file is missing, unreadable or not a JSON object.
    """
    file = Path(path) / "config.json"
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError:
        raise ArtifactError(
            f"no saved {what} at {path} (missing config.json); train one first"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {file} ({exc}); delete it and retrain") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{file} is not a JSON object; it was not written by genrec: retrain")
    return meta


def read_artifact(
    path: str | os.PathLike,
    *,
    what: str = "model",
    check: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, weight arrays) of the artifact :func:`write_artifact` saved in ``path``, read
    under the folder's shared lock (a concurrent save cannot hand over files of two saves).
    ``check`` vets the metadata before the weights are read (it raises ArtifactError).

    Raises:
        ArtifactError: unreadable files, files of two different saves, non-finite weights.
    """
    with folder_read_lock(path):
        meta = read_artifact_json(path, what=what)
        if check is not None:
            check(meta)
        try:
            with np.load(Path(path) / "weights.npz", allow_pickle=False) as npz:
                state = {k: npz[k] for k in npz.files}
        except Exception as exc:  # zip, EOF, pickle refusal: any unreadable file
            raise ArtifactError(
                f"cannot read {path}/weights.npz ({type(exc).__name__}: {exc}); retrain the {what}"
            ) from None
    save_id = state.pop(SAVE_ID_KEY, None)
    if "save_id" in meta and (save_id is None or str(save_id) != meta["save_id"]):
        raise ArtifactError(
            f"{path}/config.json and weights.npz come from two different saves "
            f"(copied or written by hand?); save the {what} again or retrain it"
        )
    for name, array in state.items():
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
            bad = int(array.size - np.isfinite(array).sum())
            raise ArtifactError(
                f"{path}/weights.npz: array {name!r} holds {bad} NaN or infinite "
                f"value(s) of {array.size}; the file is damaged: retrain the {what}"
            )
    return meta, state
