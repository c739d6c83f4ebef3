"""Item images and pre-extracted item features in the formats a user brings.

* :func:`load_item_folder` — a plain folder: ``interactions.csv`` (columns ``user``, ``item`` and
  optionally ``rating``, ``timestamp``), ``items.csv`` (``item`` plus any columns, e.g. ``title``,
  ``description``, ``image``) and an ``images/`` folder.
* :func:`attach_images` — resolve each item's image to a local file: the catalog's ``image``
  value as a file name in the folder, the item id (``<id>.jpg``, ``.jpeg``, ``.png``, ``.webp``,
  ``.gif``), the last part of an image URL (Amazon's ``https://.../I/51abc.jpg`` ->
  ``51abc.jpg``), or the md5 / sha1 hex digest of the URL with one of those suffixes. For Amazon
  2018 / 2023 metadata (:func:`~genrec.data.amazon.load_amazon_2018`, whose catalog keeps the
  first image URL) pass the folder the images were downloaded into.
* :func:`load_mmrec` — MMRec's layout: ``<name>.inter`` (tab-separated ``userID itemID rating
  timestamp x_label``, with x_label 0/1/2 = train/valid/test) beside ``image_feat.npy`` and
  ``text_feat.npy`` whose row i describes itemID i.
* :func:`image_coverage` — how many items have an image or a feature vector.
* :func:`with_text_column` — a catalog column added to the text fields; an item folder's
  ``captions.csv`` (``item,caption``: descriptions of the images, e.g. by a vision language
  model through :mod:`genrec.multimodal.captions`) is attached this way as ``caption``.

Images live in the catalog's ``image`` column as local paths (None: no image); pre-extracted
vectors in the ``image_features`` / ``text_features`` columns as (n_items, D) float32 arrays
whose missing rows are NaN. Multimodal models read either.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np

from genrec.data.dataset import Dataset, ItemCatalog, Split
from genrec.data.splits import DROPPED, TEST, TRAIN, VALID, split_by_code
from genrec.data.tables import load_table
from genrec.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
CAPTIONS_FILE = "captions.csv"
FEATURE_COLUMNS = ("image_features", "text_features")


def with_catalog(data: Dataset, catalog: ItemCatalog) -> Dataset:
    """``data`` with another item catalog (same interactions, vocabularies and user table)."""
    return Dataset(
        data.users,
        data.items,
        data.user_idx,
        data.item_idx,
        data.value,
        data.timestamp,
        catalog=catalog,
        user_table=data.user_table,
        extras=data.extras,
        name=data.name,
        positive_threshold=data.positive_threshold,
    )


def _candidates(item_id: str, value) -> list[str]:
    """File names an item's image may have, most specific first."""
    names = []
    if isinstance(value, str) and value:
        names.append(value)
        if "://" in value:
            names.append(value.rstrip("/").rsplit("/", 1)[-1].split("?")[0])
            for digest in (
                hashlib.md5(value.encode()).hexdigest(),
                hashlib.sha1(value.encode()).hexdigest(),
            ):
                names += [digest + s for s in IMAGE_SUFFIXES]
    names += [f"{item_id}{s}" for s in IMAGE_SUFFIXES]
    return names


def attach_images(data: Dataset, images_dir: str | os.PathLike) -> Dataset:
    """``data`` whose catalog ``image`` column holds each item's local image path (None when no
    file is found; see the module docstring for the names tried). A catalog is created when
    ``data`` has none.

    Raises:
        DataError: ``images_dir`` is not a folder.
    """
    folder = Path(images_dir).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"images folder {folder} does not exist; pass the folder holding the "
            "item images (named by item id, by the URL's file name or its hash)"
        )
    present = {p.name for p in folder.iterdir() if p.is_file()}
    catalog = data.catalog
    columns = dict(catalog.columns) if catalog is not None else {}
    values = columns.get("image", [None] * data.n_items)
    paths = np.full(data.n_items, None, dtype=object)
    for i, (item_id, value) in enumerate(zip(data.items.ids, values)):
        name = next((n for n in _candidates(str(item_id), value) if n in present), None)
        paths[i] = str(folder / name) if name else None
    columns["image"] = paths
    fields = catalog.text_fields if catalog is not None else ("title", "genres", "description")
    return with_catalog(data, ItemCatalog(data.items, columns, text_fields=fields))


def load_item_folder(folder: str | os.PathLike, *, name: str | None = None) -> Dataset:
    """A dataset from ``interactions.csv`` + ``items.csv`` + ``images/`` (see the module doc).

    Raises:
        DataError: a missing file (naming the layout) or a malformed table.
    """
    folder = Path(folder).expanduser()
    for needed in ("interactions.csv", "items.csv"):
        if not (folder / needed).is_file():
            raise DataError(
                f"{folder} has no {needed}; an item folder holds interactions.csv "
                "(user,item[,rating][,timestamp]), items.csv (item,title,...) and "
                "images/"
            )
    header = (folder / "interactions.csv").read_text(errors="replace").splitlines()[0].split(",")
    header = [h.strip() for h in header]
    data = load_table(
        folder / "interactions.csv",
        user="user",
        item="item",
        rating="rating" if "rating" in header else None,
        timestamp="timestamp" if "timestamp" in header else None,
        items_path=folder / "items.csv",
        name=name or folder.name,
    )
    data = attach_images(data, folder / "images") if (folder / "images").is_dir() else data
    return attach_captions(data, folder / CAPTIONS_FILE)


def with_text_column(data: Dataset, name: str, values) -> Dataset:
    """``data`` whose catalog has the column ``name`` (one str per item, "" for none) last
    among its text fields, so every text model renders it.

    Raises:
        DataError: not one value per item.
    """
    if len(values) != data.n_items:
        raise DataError(
            f"got {len(values)} values of {name!r} for the {data.n_items} items of "
            f"{data.name!r}; give one per item in vocabulary order ('' for none)"
        )
    catalog = data.catalog
    columns = dict(catalog.columns) if catalog is not None else {}
    columns[name] = np.array([str(v) for v in values], dtype=object)
    fields = tuple(f for f in (catalog.text_fields if catalog is not None else ()) if f != name)
    return with_catalog(data, ItemCatalog(data.items, columns, text_fields=(*fields, name)))


def attach_captions(data: Dataset, file: str | os.PathLike) -> Dataset:
    """``data`` with the captions of ``file`` (``item,caption`` rows) as the ``caption`` text
    field; ``data`` itself when the file does not exist. Items without a row get "".

    Raises:
        DataError: the file lacks the ``item`` or ``caption`` column.
    """
    file = Path(file)
    if not file.is_file():
        return data
    with open(file, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"item", "caption"} <= set(rows[0]):
        raise DataError(
            f"{file} has columns {sorted(rows[0])}; it needs item,caption (delete it or "
            "write it again with genrec.multimodal.captions.write_captions)"
        )
    by_id = {r["item"]: r["caption"] or "" for r in rows}
    return with_text_column(data, "caption", [by_id.get(i, "") for i in data.items.ids])


def _feature_file(path: Path, n_items: int) -> np.ndarray:
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read {path} ({exc}); it must be a .npy array of shape "
            "(n_items, D) written by numpy.save"
        ) from None
    if features.ndim != 2 or len(features) < n_items:
        raise DataError(
            f"{path} has shape {features.shape}; MMRec features are (n_items, D) "
            f"with a row for every itemID 0..{n_items - 1}"
        )
    return np.asarray(features, np.float32)


def load_mmrec(folder: str | os.PathLike, *, name: str | None = None) -> tuple[Dataset, Split]:
    """A dataset in MMRec's layout and its split (x_label 0/1/2 = train/valid/test).

    Item ids are MMRec's integer itemIDs (as strings); ``image_features`` and ``text_features``
    catalog columns hold rows of ``image_feat.npy`` / ``text_feat.npy`` (absent files: no column).

    Raises:
        DataError: no single ``*.inter`` file, missing columns or a malformed feature file.
    """
    folder = Path(folder).expanduser()
    inters = sorted(folder.glob("*.inter"))
    if len(inters) != 1:
        raise DataError(
            f"{folder} holds {len(inters)} .inter files; MMRec's layout has exactly "
            "one <name>.inter (userID itemID rating timestamp x_label) beside "
            "image_feat.npy and text_feat.npy"
        )
    table = load_table(
        inters[0],
        user="userID",
        item="itemID",
        sep="\t",
        rating="rating",
        timestamp="timestamp",
        name=name or inters[0].stem,
    )
    labels = load_table(inters[0], user="userID", item="x_label", sep="\t")
    code = np.asarray(
        [
            {"0": TRAIN, "1": VALID, "2": TEST}.get(x, DROPPED)
            for x in labels.items.ids[labels.item_idx]
        ],
        np.int8,
    )
    ids = np.asarray(table.items.ids)
    if not all(str(x).isdigit() for x in ids):
        raise DataError(
            f"{inters[0]} has non-integer itemIDs; MMRec's feature rows are indexed "
            "by integer itemID"
        )
    rows = ids.astype(np.int64)
    columns: dict = {}
    for column, file in zip(FEATURE_COLUMNS, ("image_feat.npy", "text_feat.npy")):
        if (folder / file).is_file():
            columns[column] = _feature_file(folder / file, int(rows.max()) + 1)[rows]
    data = with_catalog(table, ItemCatalog(table.items, columns))
    return data, split_by_code(data, code, {"method": "mmrec-x_label"})


def image_coverage(catalog: ItemCatalog | None) -> dict[str, int]:
    """``{"items", "with_image", "with_image_features", "with_text_features"}`` counts."""
    n = 0 if catalog is None else len(catalog.vocab)
    counts = {"items": n, "with_image": 0, "with_image_features": 0, "with_text_features": 0}
    if catalog is None:
        return counts
    if "image" in catalog.columns:
        counts["with_image"] = int(sum(isinstance(p, str) and bool(p) for p in catalog["image"]))
    for column in FEATURE_COLUMNS:
        if column in catalog.columns:
            counts[f"with_{column}"] = int(np.isfinite(catalog[column]).all(axis=1).sum())
    return counts


__all__ = [
    "CAPTIONS_FILE",
    "attach_captions",
    "attach_images",
    "image_coverage",
    "load_item_folder",
    "load_mmrec",
    "with_catalog",
    "with_text_column",
]
