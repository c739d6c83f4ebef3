"""A procedural multimodal world with a known answer: items are drawn pictures with a text
description that leaves some visual traits out, and users prefer traits.

Every item has four traits: ``shape`` (circle, square, triangle), ``colour`` (red, green, blue,
yellow), ``pattern`` (plain, striped) and ``background`` (white, grey); item i has trait
combination ``i % 48`` (so ``n_items`` = 48 has each combination once) and its shape sits at a
random offset. The picture shows all four traits. The description always names the shape, names
the colour and the pattern each with probability ``mention`` and never names the background:
colour is visual-only for about half the items, background for all of them.

Users fall into 12 groups, one per (colour, shape); a user interacted with every item of their
group's colour and shape (8 items at ``n_items`` = 96), in a random order: the last one is the
test item, the one before the validation item. A text-only model sees the shape of every item but
the colour of only some; an image model sees both.

:func:`write_multimodal_world` writes the ordinary item-folder layout (``interactions.csv``,
``items.csv``, ``images/``, plus ``traits.csv`` with the ground truth), so everything runs
through :func:`genrec.data.multimodal.load_item_folder`. Needs Pillow (the ``multimodal`` extra).

Example:
    >>> import tempfile
    >>> world = multimodal_world(tempfile.mkdtemp(), n_users=24, n_items=48, seed=0)
    >>> world.data.n_items, sum(p is not None for p in world.data.catalog["image"])
    (48, 48)
    >>> i1 = list(world.data.items.ids).index("i1")  # vocabulary order is first appearance
    >>> str(world.traits["colour"][i1]), str(world.traits["shape"][i1])
    ('green', 'circle')
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.data.multimodal import load_item_folder
from genrec.data.splits import TEST, TRAIN, VALID, split_by_code
from genrec.data.synthetic import World
from genrec.errors import ConfigError, require

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 210, 30),
}
PATTERNS = ("plain", "striped")
BACKGROUNDS = {"white": (250, 250, 250), "grey": (120, 120, 120)}
N_COMBOS = len(SHAPES) * len(COLOURS) * len(PATTERNS) * len(BACKGROUNDS)  # 48
IMAGE_SIDE = 64


@dataclass
class MultimodalWorld(World):
    """A :class:`World` plus each item's traits (``shape``, ``colour``, ``pattern``,
    ``background``: (n_items,) str arrays) and the folder it was written to."""

    traits: dict[str, np.ndarray] = None
    folder: Path = None


def item_traits(n_items: int) -> dict[str, np.ndarray]:
    """(n_items,) trait names per trait; item i has combination ``i % 48``, colour varying
    fastest, then shape, pattern and background."""
    i = np.arange(n_items) % N_COMBOS
    colours, backgrounds = list(COLOURS), list(BACKGROUNDS)
    return {
        "colour": np.array([colours[x % 4] for x in i]),
        "shape": np.array([SHAPES[(x // 4) % 3] for x in i]),
        "pattern": np.array([PATTERNS[(x // 12) % 2] for x in i]),
        "background": np.array([backgrounds[(x // 24) % 2] for x in i]),
    }


def render_item(
    traits: dict[str, str], *, offset: tuple[int, int] = (0, 0), side: int = IMAGE_SIDE
):
    """A Pillow RGB picture of one item: its shape in its colour (striped or plain) on its
    background, shifted by ``offset`` pixels."""
    image_mod, draw_mod = require("PIL.Image", "multimodal"), require("PIL.ImageDraw", "multimodal")
    image = image_mod.new("RGB", (side, side), BACKGROUNDS[traits["background"]])
    fill = image_mod.new("RGB", (side, side), COLOURS[traits["colour"]])
    if traits["pattern"] == "striped":
        stripes = draw_mod.Draw(fill)
        for y in range(0, side, side // 8):
            stripes.rectangle([0, y, side, y + side // 16], fill=(20, 20, 20))
    mask = image_mod.new("L", (side, side), 0)
    draw = draw_mod.Draw(mask)
    lo, hi = side // 5 + offset[0], side - side // 5 + offset[0]
    top, bottom = side // 5 + offset[1], side - side // 5 + offset[1]
    if traits["shape"] == "circle":
        draw.ellipse([lo, top, hi, bottom], fill=255)
    elif traits["shape"] == "square":
        draw.rectangle([lo, top, hi, bottom], fill=255)
    else:
        draw.polygon([((lo + hi) // 2, top), (hi, bottom), (lo, bottom)], fill=255)
    image.paste(fill, (0, 0), mask)
    return image


def describe_item(traits: dict[str, str], rng: np.random.Generator, mention: float) -> str:
    """The item's text: always the shape; the colour and the pattern each with probability
    ``mention``; never the background."""
    words = []
    if rng.random() < mention:
        words.append(traits["colour"])
    words.append(traits["shape"])
    text = "A " + " ".join(words)
    if rng.random() < mention:
        text += " with stripes" if traits["pattern"] == "striped" else ", plain"
    return text


def write_multimodal_world(
    folder: str | os.PathLike,
    *,
    n_users: int = 120,
    n_items: int = 96,
    mention: float = 0.5,
    seed: int = 0,
) -> Path:
    """Write the world's item folder (layout in the module docstring); returns the folder.

    Raises:
        ConfigError: fewer than 48 items (every trait combination once), fewer than 12 users
            (one per group) or ``mention`` outside [0, 1].
    """
    if n_items < N_COMBOS or n_users < 12 or not 0.0 <= mention <= 1.0:
        raise ConfigError(
            f"the multimodal world needs n_items >= {N_COMBOS}, n_users >= 12 and "
            f"0 <= mention <= 1, got n_items={n_items}, n_users={n_users}, "
            f"mention={mention}; raise n_items / n_users"
        )
    rng = np.random.default_rng(seed)
    folder = Path(folder).expanduser()
    (folder / "images").mkdir(parents=True, exist_ok=True)
    traits = item_traits(n_items)
    names = list(traits)
    with (
        open(folder / "items.csv", "w", newline="") as items,
        open(folder / "traits.csv", "w", newline="") as truth,
    ):
        item_rows, truth_rows = csv.writer(items), csv.writer(truth)
        item_rows.writerow(["item", "description", "image"])
        truth_rows.writerow(["item", *names])
        for i in range(n_items):
            row = {t: traits[t][i] for t in names}
            offset = tuple(int(x) for x in rng.integers(-IMAGE_SIDE // 10, IMAGE_SIDE // 10 + 1, 2))
            render_item(row, offset=offset).save(folder / "images" / f"i{i}.png")
            item_rows.writerow([f"i{i}", describe_item(row, rng, mention), f"i{i}.png"])
            truth_rows.writerow([f"i{i}", *row.values()])
    _write_interactions(folder, traits, n_users, rng)
    return folder


def _write_interactions(folder: Path, traits, n_users: int, rng: np.random.Generator) -> None:
    """Each user's group items in a random order; timestamps give that order."""
    colours = list(COLOURS)
    with open(folder / "interactions.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["user", "item", "timestamp"])
        for u in range(n_users):
            g = u % 12
            liked = np.flatnonzero(
                (traits["colour"] == colours[g % 4]) & (traits["shape"] == SHAPES[g // 4])
            )
            for t, i in enumerate(rng.permutation(liked)):
                rows.writerow([f"u{u}", f"i{i}", t + 1])


def composed_queries(
    traits: dict[str, np.ndarray], *, trait: str = "colour", per_item: int = 1, seed: int = 0
) -> tuple[np.ndarray, list[str], list[np.ndarray]]:
    """Composed queries with known answers: reference item r, the modifier text naming another
    value v of ``trait`` (e.g. "blue"), and the targets: the items whose traits equal r's except
    ``trait`` = v. ``per_item`` queries per item, values drawn at random.

    Returns ``(references (Q,), texts, targets)``; every query has at least one target.
    """
    rng = np.random.default_rng(seed)
    names = list(traits)
    values = sorted(set(traits[trait]))
    refs, texts, targets = [], [], []
    for r in range(len(traits[trait])):
        others = [v for v in values if v != traits[trait][r]]
        for v in rng.choice(others, size=min(per_item, len(others)), replace=False):
            match = np.ones(len(traits[trait]), bool)
            for name in names:
                match &= traits[name] == (v if name == trait else traits[name][r])
            if match.any():
                refs.append(r)
                texts.append(str(v))
                targets.append(np.flatnonzero(match))
    return np.asarray(refs, np.int64), texts, targets


def multimodal_world(
    folder: str | os.PathLike,
    *,
    n_users: int = 120,
    n_items: int = 96,
    mention: float = 0.5,
    seed: int = 0,
) -> MultimodalWorld:
    """Write the world into ``folder``, read it back through the item-folder loader and split it
    per user by time (last = test, second last = valid); ``answer`` is each user's test item."""
    write_multimodal_world(folder, n_users=n_users, n_items=n_items, mention=mention, seed=seed)
    data = load_item_folder(folder, name="multimodal-world")
    order = np.lexsort((data.timestamp, data.user_idx))
    rank_from_end = np.empty(len(data), np.int64)
    counts = np.bincount(data.user_idx, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(data)) - np.repeat(starts, counts)
    rank_from_end[order] = np.repeat(counts, counts) - 1 - position
    code = np.where(rank_from_end == 0, TEST, np.where(rank_from_end == 1, VALID, TRAIN))
    split = split_by_code(data, code.astype(np.int8), {"method": "multimodal-world", "seed": seed})
    answer = np.full(data.n_users, -1, np.int64)
    answer[data.user_idx[code == TEST]] = data.item_idx[code == TEST]
    item_rows = np.asarray([int(x[1:]) for x in data.items.ids])  # vocabulary order -> item number
    ordered = {k: v[item_rows] for k, v in item_traits(n_items).items()}
    return MultimodalWorld(data, split, answer, traits=ordered, folder=Path(folder))


__all__ = [
    "MultimodalWorld",
    "composed_queries",
    "describe_item",
    "item_traits",
    "multimodal_world",
    "render_item",
    "write_multimodal_world",
]
