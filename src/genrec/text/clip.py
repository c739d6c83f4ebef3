"""CLIP-family models in a local folder, for users who have the weights on disk: which kind a
folder holds, loading it once, and its text tower behind the text-encoder protocol.

Two folder layouts are recognised (:func:`clip_kind`):

* ``"transformers"`` — a Hugging Face ``CLIPModel`` written by ``save_pretrained``
  (``config.json`` with ``"model_type": "clip"``, the weights, and the tokenizer files written by
  ``CLIPTokenizer.save_pretrained``). Needs the ``llm`` extra (transformers).
* ``"open_clip"`` — an OpenCLIP model folder (``open_clip_config.json`` beside the weights, as on
  the model hubs), loaded with ``open_clip.create_model_from_pretrained("local-dir:FOLDER")``.
  Needs the ``openclip`` extra (``pip install 'genrec[openclip]'``; OpenCLIP imports
  torchvision).

:class:`CLIPTextEncoder` is the text tower: ``text_projection(text_model(tokens).pooler_output)``
(transformers) or ``encode_text(tokens)`` (OpenCLIP), rows of unit length. The image tower of the
same folder is :class:`genrec.multimodal.images.CLIPImageEncoder`; both share one loaded model
(:func:`load_clip`). Give the folder as ``text_encoder`` and ``image_encoder`` of a multimodal
model to use CLIP in place of MiniLM and EfficientNet-Lite0. No CLIP weights ship with genrec.

Example:
    >>> import tempfile
    >>> clip_kind(tempfile.mkdtemp()) is None  # an empty folder holds no CLIP model
    True
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genrec.errors import ConfigError, require

KINDS = ("transformers", "open_clip")


def clip_kind(folder: str | os.PathLike) -> str | None:
    """``"transformers"``, ``"open_clip"`` or None: the CLIP layout ``folder`` holds."""
    folder = Path(folder).expanduser()
    if (folder / "open_clip_config.json").is_file():
        return "open_clip"
    try:
        config = json.loads((folder / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return (
        "transformers" if isinstance(config, dict) and config.get("model_type") == "clip" else None
    )


def clip_fingerprint(folder: str | os.PathLike) -> str:
    """12 hex digits identifying a CLIP folder's model (what the embedding caches are keyed by):
    a hash of each file's name and size and of its first and last MiB (two folders of one
    name but different weights get different keys; nothing is read in full)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).expanduser().iterdir() if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as f:
            digest.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                digest.update(f.read())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class LoadedCLIP:
    """A loaded CLIP folder: ``kind``, the model (eval mode), its tokenizer, and for OpenCLIP its
    image ``preprocess`` (a callable on a Pillow image)."""

    kind: str
    model: Any
    tokenizer: Any
    preprocess: Any = None


@functools.lru_cache(maxsize=4)
def load_clip(folder: str) -> LoadedCLIP:
    """The CLIP model in ``folder`` (an absolute path), loaded once per process.

    Raises:
        ConfigError: the folder holds no CLIP model, or it cannot be read (names the folder).
        MissingExtraError: transformers (``llm``) or OpenCLIP (``openclip``) is not installed.
    """
    kind = clip_kind(folder)
    if kind == "open_clip":
        open_clip = require("open_clip", "openclip")
        try:
            model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{folder}")
            tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ConfigError(
                f"{folder} is not a readable OpenCLIP folder ({str(exc)[:200]})"
            ) from None
        return LoadedCLIP(kind, model.eval(), tokenizer, preprocess)
    if kind == "transformers":
        transformers = require("transformers", "llm")
        try:
            model = transformers.CLIPModel.from_pretrained(folder).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{folder} is not a CLIP model folder ({str(exc)[:200]})") from None
        return LoadedCLIP(kind, model, None)
    raise ConfigError(
        f"{folder} holds no CLIP model; pass a folder written by transformers' "
        "CLIPModel.save_pretrained (config.json with model_type 'clip') or an OpenCLIP folder "
        "(open_clip_config.json beside the weights)"
    )


@functools.lru_cache(maxsize=4)
def _hf_tokenizer(folder: str):
    transformers = require("transformers", "llm")
    try:
        return transformers.AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the CLIP folder {folder} has no readable tokenizer ({str(exc)[:120]}); save the "
            "model's tokenizer beside it with CLIPTokenizer.save_pretrained(folder)"
        ) from None


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class CLIPTextEncoder:
    """The text tower of a local CLIP folder (either layout), on the CPU.

    Raises:
        ConfigError: ``folder`` holds no CLIP model.
    """

    def __init__(self, folder: str | os.PathLike, *, batch_size: int = 64):
        self.folder, self.batch_size = str(Path(folder).expanduser().resolve()), batch_size
        self.kind = clip_kind(self.folder)
        if self.kind is None:
            load_clip(self.folder)  # raises the ConfigError that says what a CLIP folder is
        self.name = f"clip-text:{Path(self.folder).name}:{clip_fingerprint(self.folder)}"

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), projection dim) float32 unit rows."""
        import torch

        loaded = load_clip(self.folder)
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = [str(t) for t in texts[start : start + self.batch_size]]
                out.append(self._batch(loaded, batch))
            if not out:  # the width, from one empty text
                return np.zeros((0, self._batch(loaded, [""]).shape[1]), np.float32)
        return _unit(np.concatenate(out))

    def _batch(self, loaded: LoadedCLIP, texts: list[str]) -> np.ndarray:
        model = loaded.model
        if loaded.kind == "open_clip":
            return model.encode_text(loaded.tokenizer(texts)).float().numpy()
        limit = int(model.config.text_config.max_position_embeddings)
        tokens = _hf_tokenizer(self.folder)(
            texts, padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        pooled = model.text_model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output  # (B, hidden)
        return model.text_projection(pooled).numpy()


__all__ = ["KINDS", "CLIPTextEncoder", "LoadedCLIP", "clip_fingerprint", "clip_kind", "load_clip"]
