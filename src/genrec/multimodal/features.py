"""Per-item image and text vectors of a dataset: what a multimodal model reads at ``fit``.

Every multimodal model carries the same config fields, meaning the same thing everywhere:

* ``image_encoder``: ``"efficientnet"`` (EfficientNet-Lite0 ImageNet features, 1280-d),
  ``"pixels"`` / ``"pixels-N"`` (raw pixels, no weights) or a local CLIP folder (transformers
  or OpenCLIP, :mod:`genrec.text.clip`; the same folder as ``text_encoder`` gives the matching
  text tower); used for the catalog's ``image`` paths.
  A catalog ``image_features`` column (pre-extracted, e.g. MMRec's ``image_feat.npy``) is used
  as it is instead.
* ``image_cache``: where encoded images are kept: ``"default"`` (``~/.cache/genrec/embeddings``),
  ``"off"`` or a folder. Keyed by the file's bytes.
* the text fields of :mod:`genrec.text.items` (``text_encoder``, ``text_template``,
  ``text_cache``); a catalog ``text_features`` column is used as it is instead.

A missing modality is not an error for one item: its row is zero and ``present`` is False, and
:class:`Modalities` counts such items. A dataset where *no* item has the modality is an error
naming what the model needs.

Example:
    >>> import tempfile
    >>> from genrec.data.synthetic_multimodal import multimodal_world
    >>> world = multimodal_world(tempfile.mkdtemp(), n_users=24, n_items=48)
    >>> m = item_modalities(world.split.train, image_encoder="pixels-8", image_cache="off",
    ...                     text_encoder="hashing", text_template="", text_cache="off", model="x")
    >>> m.image.shape, m.text.shape, m.counts()["missing_image"]
    ((48, 192), (48, 256), 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.errors import DataError
from genrec.multimodal.images import encode_images_cached, get_image_encoder
from genrec.text.items import CACHE_HELP, embedding_cache, item_embeddings, unit_rows

IMAGE_ENCODER_HELP = "'efficientnet', 'pixels', 'pixels-N' or a local CLIP model folder"


@dataclass(frozen=True)
class Modalities:
    """Item vectors per modality, each (n_items, D) float32 with unit rows where present and
    zero rows where missing; ``*_present`` (n_items,) bool."""

    image: np.ndarray
    image_present: np.ndarray
    text: np.ndarray
    text_present: np.ndarray

    def counts(self) -> dict[str, int]:
        """Items with each modality missing (and with both missing)."""
        return {
            "items": len(self.image),
            "missing_image": int((~self.image_present).sum()),
            "missing_text": int((~self.text_present).sum()),
            "missing_both": int((~self.image_present & ~self.text_present).sum()),
        }


def check_image_fields(config) -> None:
    """Validate a config's ``image_encoder`` / ``image_cache``."""
    config.check(
        isinstance(config.image_encoder, str) and config.image_encoder.strip() != "",
        "image_encoder",
        IMAGE_ENCODER_HELP,
    )
    config.check(
        isinstance(config.image_cache, str) and config.image_cache.strip() != "",
        "image_cache",
        CACHE_HELP,
    )


def _given(catalog, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    if catalog is None or column not in catalog.columns:
        return None
    values = np.asarray(catalog[column], np.float32)
    present = np.isfinite(values).all(axis=1) & (np.abs(values).sum(axis=1) > 0)
    return unit_rows(np.where(present[:, None], values, 0.0)), present


def check_has_images(data, *, model: str) -> None:
    """Raise DataError unless ``data``'s catalog has an ``image`` or ``image_features`` column
    (a cheap check to run before any training or encoding)."""
    catalog = data.catalog
    if catalog is None or not {"image", "image_features"} & set(catalog.columns):
        raise DataError(
            f"the {model} model reads item images, but dataset {data.name!r} has no "
            "'image' or 'image_features' catalog column; give --dataset FOLDER holding "
            "interactions.csv, items.csv and images/ (a synthetic one: genrec data synth "
            "multimodal --output FOLDER; in Python: genrec.data.multimodal's load_item_folder, "
            "attach_images or load_mmrec)"
        )


def image_vectors(data, *, encoder: str, cache: str, model: str) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors (I, D), present (I,))`` from ``image_features`` or the ``image`` paths.

    Raises:
        DataError: the catalog has neither column, or no item has an image.
    """
    check_has_images(data, model=model)
    catalog = data.catalog
    given = _given(catalog, "image_features")
    if given is not None:
        return given
    paths = [p if isinstance(p, str) and p else None for p in catalog["image"]]
    present = np.array([p is not None for p in paths])
    if not present.any():
        raise DataError(
            f"no item of dataset {data.name!r} has an image file; check the images "
            "folder given to attach_images (names tried: item id, URL file name, "
            "URL hash)"
        )
    found = encode_images_cached(
        get_image_encoder(encoder), [p for p in paths if p], embedding_cache(cache)
    )
    vectors = np.zeros((len(paths), found.shape[1]), np.float32)
    vectors[present] = found
    return vectors, present


def text_vectors(
    data, *, encoder: str, template: str, cache: str, model: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors (I, D), present (I,))`` from ``text_features`` or the catalog's text; an item
    whose rendered text is only its id counts as missing."""
    given = _given(data.catalog, "text_features")
    if given is not None:
        return given
    vectors = item_embeddings(data, encoder=encoder, template=template, cache=cache, model=model)
    catalog = data.catalog
    present = np.ones(len(vectors), bool)
    if not template and catalog.text_fields:
        fields = [catalog.columns[f] for f in catalog.text_fields]
        present = np.array([any(_has_text(col[i]) for col in fields) for i in range(len(vectors))])
    return np.where(present[:, None], vectors, 0.0).astype(np.float32), present


def _has_text(value) -> bool:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return False
    return bool(value) if not isinstance(value, str) else bool(value.strip())


def item_modalities(
    data,
    *,
    image_encoder: str,
    image_cache: str,
    text_encoder: str,
    text_template: str,
    text_cache: str,
    model: str,
) -> Modalities:
    """Both modalities of ``data``'s items (see :func:`image_vectors`, :func:`text_vectors`)."""
    image, image_present = image_vectors(
        data, encoder=image_encoder, cache=image_cache, model=model
    )
    text, text_present = text_vectors(
        data, encoder=text_encoder, template=text_template, cache=text_cache, model=model
    )
    return Modalities(image, image_present, text, text_present)


__all__ = [
    "IMAGE_ENCODER_HELP",
    "Modalities",
    "check_image_fields",
    "image_vectors",
    "item_modalities",
    "text_vectors",
]
