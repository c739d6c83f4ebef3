"""Large synthetic interaction logs, written in chunks, in genrec's Parquet layout or in the native
file layouts of MovieLens and Amazon Reviews 2023.

This is a load generator, not a world with a known answer (those are in
:mod:`genrec.data.synthetic`): it produces data with the marginal shapes of real logs at the sizes
users bring, so that loaders, splitters and models can be measured at 1M, 4M or 20M interactions.

What the data looks like (:class:`InteractionWorld` holds every knob):

- **Item popularity** follows a power law: the item of popularity rank r (a random permutation of
  the ids) has weight ``r ** -item_exponent`` (Zipf). Each item has a primary genre (one of the 18
  MovieLens genres); a share ``taste`` of each user's interactions is drawn from their favourite
  genre, the rest from the whole catalogue, so collaborative models have something to learn.
- **User activity** is log-normal (``activity_sigma``) on top of ``min_per_user`` interactions
  each: every user appears, a few users are very active.
- **No repeated (user, item) pairs** unless ``repeats=True``; a user never has more interactions
  than there are items.
- **Timestamps** (unix seconds) come in sessions: within a session consecutive interactions are
  10 s to 30 min apart; sessions are at least an hour apart (so the usual 30-minute rule
  recovers them), and each user's timeline fits in five years from 2015-01-01. Each user's rows
  are written in time order, strictly increasing.
- **Ratings** 1-5 (whole stars) skewed high as in MovieLens (mean about 3.6, 4 the most common),
  from an item quality, a user bias and noise.
- **Item text**: a title, genres (the primary one first) and a one-sentence description whose
  words depend on the genres, so text models have something to read.

Rows are generated in blocks of about :data:`BLOCK_ROWS` rows of consecutive users, each block
from its own random stream, so memory stays bounded (a few hundred MB at 20M rows and 1M users)
and the rows do not depend on how they are cut into files: the same parameters and seed give
byte-identical files, and another ``chunk_rows`` gives the same rows in other part files.

Layouts (:data:`FORMATS`), ids ``1..n_users`` and ``1..n_items`` in all of them:

- ``parquet``: ``interactions/part-00000.parquet, ...`` (``user_id`` int64, ``item_id`` int64,
  ``rating`` float32, ``timestamp`` int64; ``chunk_rows`` rows a part, rows grouped by user and
  in time order within a user), ``items.parquet`` (``item_id`` int64, ``title``, ``genres``
  pipe-separated, ``description``).
- ``ml-1m``: ``ratings.dat``, ``movies.dat``, ``users.dat`` (``::``-separated);
  ``ml-10m``: ``ratings.dat``, ``movies.dat``; ``ml-20m``/``ml-25m``: ``ratings.csv``,
  ``movies.csv`` with headers. All read by :func:`genrec.data.movielens.load_movielens`.
- ``amazon``: ``Synthetic.jsonl`` (reviews) and ``meta_Synthetic.jsonl`` in the Amazon Reviews
  2023 layout, read by :func:`genrec.data.amazon.load_amazon_2023`.

Every layout also gets ``manifest.json``: the parameters, the seed, row counts, the files, the
loader that reads them and the genrec version (no clock time, so reruns are byte-identical). The
folder is written beside its target and moved into place at the end: an interrupted run leaves
no half dataset.

Example:
    >>> import tempfile
    >>> from genrec.data.movielens import load_movielens
    >>> world = InteractionWorld(n_users=50, n_items=40, n_interactions=600, seed=1)
    >>> folder = write_interactions(tempfile.mkdtemp() + "/ml", world, format="ml-1m")
    >>> load_movielens(folder)
    Dataset('ml', users=50, items=40, interactions=600)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genrec.data.movielens import ML_100K_GENRES
from genrec.errors import ConfigError, require
from genrec.io import atomic_folder, check_writable_folder
from genrec.options import progress_bar

__all__ = [
    "BLOCK_ROWS",
    "FORMATS",
    "Block",
    "InteractionWorld",
    "ItemTable",
    "interaction_blocks",
    "item_table",
    "item_text",
    "user_counts",
    "write_interactions",
]

FORMATS = ("parquet", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "amazon")
BLOCK_ROWS = 1 << 18  # rows generated at once (plus at most one user); fixed, so files do not
# depend on chunk_rows
ITEM_BLOCK = 1 << 16  # items whose text is built at once
GENRES = tuple(g for g in ML_100K_GENRES if g != "unknown")  # the 18 MovieLens genres
EPOCH_START = 1_420_070_400  # 2015-01-01 00:00:00 UTC
SPAN = 5 * 365 * 86_400  # seconds: each user's timeline fits in five years from EPOCH_START
SESSION_MEAN = 4.0  # mean interactions a session (geometric)
WITHIN_GAP = (10, 120.0, 1_800)  # seconds: floor, mean of the exponential part, cap
SESSION_GAP = (3_600, 86_400.0, 1.5)  # seconds: floor, median and log-sigma of the raw gap
RATING_MEAN = 3.6
AMAZON_CATEGORY = "Synthetic"

# random streams: every draw comes from default_rng([seed, stream, index])
_USERS, _ITEMS, _BLOCK, _TEXT, _PROFILE = range(5)


@dataclass(frozen=True)
class InteractionWorld:
    """The parameters of a synthetic log; validated on construction.

    Raises:
        ConfigError: a count below 1, more interactions than users x items without repeats,
            fewer than users x min_per_user, or a shape parameter out of range (the message
            names the argument, its CLI flag and the fix).
    """

    n_users: int
    n_items: int
    n_interactions: int
    seed: int = 0
    item_exponent: float = 1.0  # Zipf exponent of item popularity (0 = uniform)
    activity_sigma: float = 1.0  # sigma of the log-normal user activity (0 = equal activity)
    min_per_user: int = 5  # every user has at least this many interactions
    taste: float = 0.5  # share of each user's interactions drawn from their favourite genre
    repeats: bool = False  # allow repeated (user, item) pairs

    def __post_init__(self):
        for name, flag in (("n_users", "--users"), ("n_items", "--items")):
            _positive(name, flag, getattr(self, name))
        _positive("n_interactions", "--interactions", self.n_interactions)
        _positive("min_per_user", "--min-per-user", self.min_per_user)
        if not self.repeats and self.min_per_user > self.n_items:
            raise ConfigError(
                f"min_per_user={self.min_per_user} (--min-per-user) exceeds n_items="
                f"{self.n_items} (--items): without repeated pairs a user has at most one "
                "interaction per item; lower --min-per-user or raise --items"
            )
        least = self.n_users * self.min_per_user
        if self.n_interactions < least:
            raise ConfigError(
                f"n_interactions={self.n_interactions:,} (--interactions) is below n_users x "
                f"min_per_user = {least:,}: every user needs {self.min_per_user}; raise "
                "--interactions or lower --users or --min-per-user"
            )
        most = self.n_users * self.n_items
        if not self.repeats and self.n_interactions > most:
            raise ConfigError(
                f"n_interactions={self.n_interactions:,} (--interactions) exceeds n_users x "
                f"n_items = {most:,}, the number of distinct (user, item) pairs; lower "
                "--interactions, raise --users or --items, or allow repeated pairs (--repeats)"
            )
        _in_range("item_exponent", "--item-exponent", self.item_exponent, 0.0, 5.0)
        _in_range("activity_sigma", "--activity-sigma", self.activity_sigma, 0.0, 5.0)
        _in_range("taste", "--taste", self.taste, 0.0, 1.0)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} (--seed) must be an integer >= 0")


def _positive(name: str, flag: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r} ({flag}) must be a whole number >= 1; pass e.g. 1000")


def _in_range(name: str, flag: str, value, low: float, high: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{name}={value!r} ({flag}) must be a number in [{low:g}, {high:g}]")


def _rng(world: InteractionWorld, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([world.seed, stream, index])


# ---- the numbers -----------------------------------------------------------------------------
def user_counts(world: InteractionWorld) -> np.ndarray:
    """(n_users,) int64 interactions per user: ``min_per_user`` plus a log-normal share of the
    rest; sums to ``n_interactions``; at most ``n_items`` each unless ``repeats``."""
    rng = _rng(world, _USERS)
    weight = rng.lognormal(0.0, world.activity_sigma, world.n_users)
    counts = np.full(world.n_users, world.min_per_user, np.int64)
    counts += _allocate(rng, world.n_interactions - int(counts.sum()), weight)
    if world.repeats:
        return counts
    while (over := counts > world.n_items).any():  # move the excess to users with room
        excess = int((counts[over] - world.n_items).sum())
        counts[over] = world.n_items
        counts += _allocate(rng, excess, np.where(counts < world.n_items, weight, 0.0))
    return counts


def _allocate(rng: np.random.Generator, total: int, weight: np.ndarray) -> np.ndarray:
    """(len(weight),) int64 counts summing to ``total``, multinomial with ``weight``."""
    if total == 0:
        return np.zeros(len(weight), np.int64)
    p = weight / (weight.sum() * (1 + 1e-9))  # the last cell takes the rounding leftover
    return rng.multinomial(total, p).astype(np.int64)


@dataclass(frozen=True)
class ItemTable:
    """Per-item numbers, ``(n_items,)`` each, index = item id - 1."""

    weight: np.ndarray  # popularity weight, rank ** -item_exponent
    genre: np.ndarray  # primary genre (index into GENRES)
    quality: np.ndarray  # added to the mean rating
    year: np.ndarray  # release year
    cdf: np.ndarray  # cumulative weight over items
    genre_items: tuple[np.ndarray, ...]  # item indices of each primary genre
    genre_cdf: tuple[np.ndarray, ...]  # cumulative weight within each genre


def item_table(world: InteractionWorld) -> ItemTable:
    """The items' popularity, genre, quality and year (deterministic in the seed)."""
    rng = _rng(world, _ITEMS)
    rank = np.empty(world.n_items, np.float64)
    rank[rng.permutation(world.n_items)] = np.arange(1, world.n_items + 1)
    weight = rank**-world.item_exponent
    share = np.arange(1, len(GENRES) + 1, dtype=np.float64) ** -0.7  # Drama-like genres lead
    genre = rng.choice(len(GENRES), world.n_items, p=share / share.sum())
    quality = rng.normal(0.0, 0.5, world.n_items)
    year = np.clip(2020 - rng.exponential(15.0, world.n_items).astype(np.int64), 1920, 2020)
    members = tuple(np.flatnonzero(genre == g) for g in range(len(GENRES)))
    return ItemTable(
        weight=weight,
        genre=genre,
        quality=quality,
        year=year,
        cdf=np.cumsum(weight),
        genre_items=members,
        genre_cdf=tuple(np.cumsum(weight[m]) for m in members),
    )


@dataclass(frozen=True)
class Block:
    """Consecutive users' rows, grouped by user, in time order within each user."""

    user_id: np.ndarray  # (n,) int64, 1-based
    item_id: np.ndarray  # (n,) int64, 1-based
    rating: np.ndarray  # (n,) float32, 1..5
    timestamp: np.ndarray  # (n,) int64, unix seconds

    def __len__(self) -> int:
        return len(self.user_id)


def interaction_blocks(world: InteractionWorld, items: ItemTable | None = None) -> Iterator[Block]:
    """The whole log as blocks of about :data:`BLOCK_ROWS` rows (a block never splits a user).

    Example:
        >>> world = InteractionWorld(n_users=30, n_items=20, n_interactions=300, seed=0)
        >>> sum(len(b) for b in interaction_blocks(world))
        300
    """
    items = item_table(world) if items is None else items
    counts, bounds = _user_blocks(world)
    for index, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        yield _block(world, items, counts[lo:hi], first_user=int(lo), index=index)


def _user_blocks(world: InteractionWorld) -> tuple[np.ndarray, np.ndarray]:
    """Each user's count and the user bounds of the blocks: block b holds users
    ``bounds[b]..bounds[b+1]-1``, about :data:`BLOCK_ROWS` rows."""
    counts = user_counts(world)
    block_of_user = (np.cumsum(counts) - 1) // BLOCK_ROWS
    return counts, np.r_[0, np.flatnonzero(np.diff(block_of_user)) + 1, world.n_users]


def _block(
    world: InteractionWorld, items: ItemTable, counts: np.ndarray, *, first_user: int, index: int
) -> Block:
    rng = _rng(world, _BLOCK, index)
    user = np.repeat(np.arange(len(counts)), counts)  # (n,) local user of each row
    favourite = _favourite_genres(rng, items, len(counts))
    taste = rng.random(len(user)) < world.taste
    item = _draw_items(rng, items, favourite[user], taste)
    if not world.repeats:
        _dense_users(rng, items, item, counts)
        _redraw_repeats(rng, items, item, user, favourite[user], taste)
    bias = rng.normal(0.0, 0.4, len(counts))
    noise = rng.normal(0.0, 0.9, len(user))
    rating = np.clip(np.rint(RATING_MEAN + items.quality[item] + bias[user] + noise), 1, 5)
    return Block(
        user_id=user + first_user + 1,
        item_id=item + 1,
        rating=rating.astype(np.float32),
        timestamp=_timestamps(rng, counts, user),
    )


def _favourite_genres(rng: np.random.Generator, items: ItemTable, n_users: int) -> np.ndarray:
    """(n_users,) favourite genre, drawn by the genres' share of popularity."""
    mass = np.array([c[-1] if len(c) else 0.0 for c in items.genre_cdf])
    return rng.choice(len(mass), n_users, p=mass / mass.sum())


def _draw_items(
    rng: np.random.Generator, items: ItemTable, genre: np.ndarray, taste: np.ndarray
) -> np.ndarray:
    """(n,) item index per row: by popularity within ``genre`` where ``taste``, else overall."""
    u = rng.random(len(genre))
    item = np.searchsorted(items.cdf, u * items.cdf[-1], side="right")
    for g, (members, cdf) in enumerate(zip(items.genre_items, items.genre_cdf)):
        rows = np.flatnonzero(taste & (genre == g))
        if len(rows) and len(members):
            item[rows] = members[np.searchsorted(cdf, u[rows] * cdf[-1], side="right")]
    return np.minimum(item, len(items.cdf) - 1)  # u * total may round onto the last edge


def _dense_users(
    rng: np.random.Generator, items: ItemTable, item: np.ndarray, counts: np.ndarray
) -> None:
    """Users with more than half the catalogue get distinct items by weighted sampling without
    replacement (Efraimidis-Spirakis keys), in place; O(n_items) each, and there are at most
    2 x rows / n_items of them."""
    n_items = len(items.weight)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    for u in np.flatnonzero(counts > n_items // 2):
        keys = np.log(rng.random(n_items)) / items.weight  # larger is likelier
        top = np.argpartition(-keys, counts[u] - 1)[: counts[u]]
        item[starts[u] : starts[u] + counts[u]] = rng.permutation(top)


def _redraw_repeats(
    rng: np.random.Generator,
    items: ItemTable,
    item: np.ndarray,
    user: np.ndarray,
    genre: np.ndarray,
    taste: np.ndarray,
) -> None:
    """Redraw each repeated (user, item) row, in place, until none is left: by popularity for
    a few rounds, then uniformly (which ends fast: repeats only remain for users with at most
    half the catalogue)."""
    n_items = len(items.weight)
    for attempt in range(10_000):
        key = user * n_items + item
        order = np.argsort(key, kind="stable")  # the first row of a pair stays
        ordered = key[order]
        again = order[1:][ordered[1:] == ordered[:-1]]
        if not len(again):
            return
        if attempt < 8:
            item[again] = _draw_items(rng, items, genre[again], taste[again])
        else:
            item[again] = rng.integers(0, n_items, len(again))
    raise RuntimeError("repeated pairs left after 10,000 rounds")  # unreachable in practice


def _timestamps(rng: np.random.Generator, counts: np.ndarray, user: np.ndarray) -> np.ndarray:
    """(n,) int64 unix seconds: sessions of geometric length, short gaps within a session, long
    ones between sessions, each user's timeline squeezed into ``SPAN`` where it can be."""
    n = len(user)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    first = np.zeros(n, bool)
    first[starts] = True
    new_session = (rng.random(n) < 1 / SESSION_MEAN) & ~first
    floor, mean, cap = WITHIN_GAP
    within = np.minimum(floor + rng.exponential(mean, n), cap)
    floor, median, sigma = SESSION_GAP
    between = np.where(new_session, rng.lognormal(math.log(median), sigma, n), 0.0)
    total = np.add.reduceat(between, starts)  # (n_users,) raw time between sessions
    life = SPAN * rng.uniform(0.02, 1.0, len(counts))
    scale = np.minimum(1.0, life / np.maximum(total, 1.0))
    between = np.maximum(floor, between * scale[user])
    gap = np.where(first, 0.0, np.where(new_session, between, within))
    elapsed = np.cumsum(np.rint(gap).astype(np.int64))
    elapsed -= elapsed[starts][user]  # (n,) seconds since the user's first interaction
    used = elapsed[np.cumsum(counts) - 1]
    offset = (rng.random(len(counts)) * np.maximum(SPAN - used, 0)).astype(np.int64)
    return EPOCH_START + offset[user] + elapsed


# ---- item and user text ----------------------------------------------------------------------
_ADJECTIVES = (
    "silent last hidden broken golden lost little wild dark bright secret distant final "
    "crimson quiet endless frozen burning hollow gentle savage electric restless iron"
).split()
_NOUNS = (
    "river city garden machine winter summer road kingdom letter island mirror shadow "
    "harbor mountain signal promise stranger voyage empire station forest tower echo storm"
).split()
_GENRE_WORDS = {
    "Action": "chase explosion mission rescue fight escape",
    "Adventure": "journey treasure quest expedition map discovery",
    "Animation": "cartoon animated colorful magical creatures drawn",
    "Children's": "family kids friendship lesson playful school",
    "Comedy": "funny hilarious awkward witty prank laughs",
    "Crime": "heist detective gang murder police alibi",
    "Documentary": "real interviews archive history footage investigation",
    "Drama": "family loss struggle emotional grief redemption",
    "Fantasy": "wizard dragon spell enchanted realm prophecy",
    "Film-Noir": "femme fatale shadowy cynical smoky betrayal",
    "Horror": "haunted terror blood monster nightmare curse",
    "Musical": "songs dance stage singer melody chorus",
    "Mystery": "clue puzzle disappearance suspect riddle secret",
    "Romance": "love couple wedding passion heartbreak romance",
    "Sci-Fi": "space robot alien future galaxy android",
    "Thriller": "suspense conspiracy hostage danger pursuit tension",
    "War": "soldier battle army front siege platoon",
    "Western": "cowboy frontier sheriff outlaw ranch saloon",
}
_GENRE_VOCAB = tuple(np.array(_GENRE_WORDS[g].split(), dtype=object) for g in GENRES)
_REVIEW_WORDS = {
    1: "disappointing boring waste broken poor",
    2: "weak dull mediocre flawed slow",
    3: "okay decent average fine uneven",
    4: "good enjoyable solid fun recommended",
    5: "excellent brilliant wonderful perfect favorite",
}


def item_text(world: InteractionWorld, items: ItemTable, lo: int, hi: int) -> dict[str, list]:
    """Titles, genres (pipe-separated, primary first) and descriptions of items ``lo..hi-1``
    (indices), from their own random stream per :data:`ITEM_BLOCK` items."""
    rng = _rng(world, _TEXT, lo // ITEM_BLOCK)
    n = hi - lo
    adjective = rng.choice(np.array(_ADJECTIVES, dtype=object), (n, 2))
    noun = rng.choice(np.array(_NOUNS, dtype=object), (n, 3))
    extra = rng.integers(0, len(GENRES), (n, 2))
    n_extra = rng.integers(0, 3, n)
    picks = rng.integers(0, 1 << 30, (n, 3))
    titles, genres, descriptions = [], [], []
    for k in range(n):
        g = int(items.genre[lo + k])
        titles.append(f"The {adjective[k, 0].title()} {noun[k, 0].title()}")
        names = dict.fromkeys([GENRES[g], *(GENRES[e] for e in extra[k, : n_extra[k]])])
        genres.append("|".join(names))
        words = _GENRE_VOCAB[g][picks[k] % len(_GENRE_VOCAB[g])]
        adj, place, thing = adjective[k, 1], noun[k, 1], noun[k, 2]
        descriptions.append(
            f"{_a(adj).capitalize()} {GENRES[g].lower()} story of {words[0]} and {words[1]} "
            f"set around {_a(place)}, where {_a(thing)} brings {words[2]}."
        )
    # titles repeat across a large catalogue; the id makes each one distinct
    titles = [f"{t} {lo + k + 1}" for k, t in enumerate(titles)]
    return {"title": titles, "genres": genres, "description": descriptions}


def _a(word: str) -> str:
    """ "a river", "an echo"."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _item_text_blocks(world: InteractionWorld, items: ItemTable) -> Iterator[tuple[int, dict]]:
    for lo in range(0, world.n_items, ITEM_BLOCK):
        yield lo, item_text(world, items, lo, min(lo + ITEM_BLOCK, world.n_items))


# ---- writers ---------------------------------------------------------------------------------
class _Writer:
    """One layout: ``add(block)`` for each block in order, ``items(lo, text)`` for each item
    block, then ``close()`` -> ``{"files": [...], "loader": ...}``."""

    loader = ""

    def __init__(self, folder: Path, world: InteractionWorld, items: ItemTable, chunk_rows: int):
        self.folder, self.world, self.item_numbers = folder, world, items
        self.chunk_rows = chunk_rows
        self.files: list[str] = []

    def _open(self, name: str):
        self.files.append(name)
        return open(self.folder / name, "w", encoding="utf-8", newline="\n")

    def close(self) -> dict:
        return {"files": self.files, "loader": self.loader}


class _ParquetWriter(_Writer):
    loader = "parquet"

    def __init__(self, folder, world, items, chunk_rows):
        super().__init__(folder, world, items, chunk_rows)
        self.pa, self.pq = require("pyarrow", "parquet"), require("pyarrow.parquet", "parquet")
        pa = self.pa
        self.schema = pa.schema(
            [("user_id", pa.int64()), ("item_id", pa.int64()), ("rating", pa.float32())]
            + [("timestamp", pa.int64())]
        )
        (folder / "interactions").mkdir()
        self.part, self.part_rows, self.parts = None, 0, []
        self.item_writer = None

    def add(self, block: Block) -> None:
        table = self.pa.table(
            [block.user_id, block.item_id, block.rating, block.timestamp], schema=self.schema
        )
        while len(table):
            if self.part is None:
                name = f"interactions/part-{len(self.parts):05d}.parquet"
                self.files.append(name)
                self.part = self.pq.ParquetWriter(self.folder / name, self.schema)
                self.parts.append(0)
            take = min(len(table), self.chunk_rows - self.parts[-1])
            self.part.write_table(table.slice(0, take))
            self.parts[-1] += take
            table = table.slice(take)
            if self.parts[-1] == self.chunk_rows:
                self.part.close()
                self.part = None

    def items(self, lo: int, text: dict) -> None:
        pa = self.pa
        table = pa.table(
            {"item_id": pa.array(np.arange(lo + 1, lo + 1 + len(text["title"])), pa.int64())}
            | {k: pa.array(v, pa.string()) for k, v in text.items()}
        )
        if self.item_writer is None:
            self.files.append("items.parquet")
            self.item_writer = self.pq.ParquetWriter(self.folder / "items.parquet", table.schema)
        self.item_writer.write_table(table)

    def close(self) -> dict:
        for writer in (self.part, self.item_writer):
            if writer is not None:
                writer.close()
        return super().close() | {"parts": self.parts}


class _MovieLensWriter(_Writer):
    """ML-1M/10M (``::``, no header) or ML-20M/25M (CSV with a header)."""

    loader = "load_movielens"

    def __init__(self, folder, world, items, chunk_rows, *, csv: bool, users: bool):
        super().__init__(folder, world, items, chunk_rows)
        self.csv, self.sep = csv, "," if csv else "::"
        ext = "csv" if csv else "dat"
        self.ratings = self._open(f"ratings.{ext}")
        self.movies = self._open(f"movies.{ext}")
        if csv:
            self.ratings.write("userId,movieId,rating,timestamp\n")
            self.movies.write("movieId,title,genres\n")
        self.with_users = users

    def add(self, block: Block) -> None:
        s = self.sep
        stars = [f"{r:.1f}" if self.csv else str(r) for r in range(6)]
        rating = block.rating.astype(np.int64).tolist()
        self.ratings.write(
            "".join(
                f"{u}{s}{i}{s}{stars[r]}{s}{t}\n"
                for u, i, r, t in zip(
                    block.user_id.tolist(), block.item_id.tolist(), rating, block.timestamp.tolist()
                )
            )
        )

    def items(self, lo: int, text: dict) -> None:
        s, year = self.sep, self.item_numbers.year
        self.movies.write(
            "".join(
                f"{lo + k + 1}{s}{title} ({year[lo + k]}){s}{genres}\n"
                for k, (title, genres) in enumerate(zip(text["title"], text["genres"]))
            )
        )

    def close(self) -> dict:
        self.ratings.close()
        self.movies.close()
        if self.with_users:
            _write_ml_users(self._open("users.dat"), self.world)
        return super().close()


_AGE_CODES = np.array([1, 18, 25, 35, 45, 50, 56])


def _write_ml_users(out, world: InteractionWorld) -> None:
    """ML-1M users.dat: UserID::Gender::Age::Occupation::Zip-code, in blocks of users."""
    with out:
        for lo in range(0, world.n_users, ITEM_BLOCK):
            hi = min(lo + ITEM_BLOCK, world.n_users)
            rng = _rng(world, _PROFILE, lo // ITEM_BLOCK)
            gender = np.where(rng.random(hi - lo) < 0.72, "M", "F").tolist()
            age = _AGE_CODES[rng.integers(0, len(_AGE_CODES), hi - lo)].tolist()
            job = rng.integers(0, 21, hi - lo).tolist()
            zips = rng.integers(0, 100_000, hi - lo).tolist()
            out.write(
                "".join(
                    f"{lo + k + 1}::{g}::{a}::{j}::{z:05d}\n"
                    for k, (g, a, j, z) in enumerate(zip(gender, age, job, zips))
                )
            )


class _AmazonWriter(_Writer):
    """Amazon Reviews 2023: a reviews JSONL file and a meta JSONL file (vocabulary text holds no
    quote or backslash, so lines are formatted directly as JSON)."""

    loader = "load_amazon_2023"

    def __init__(self, folder, world, items, chunk_rows):
        super().__init__(folder, world, items, chunk_rows)
        self.reviews = self._open(f"{AMAZON_CATEGORY}.jsonl")
        self.meta = self._open(f"meta_{AMAZON_CATEGORY}.jsonl")
        self.words = {r: w.split() for r, w in _REVIEW_WORDS.items()}
        self.block = 0

    def add(self, block: Block) -> None:
        rng = _rng(self.world, _PROFILE, 1_000_000 + self.block)
        self.block += 1
        pick = rng.integers(0, 5, (len(block), 2)).tolist()
        lines = []
        for (u, i, r, t), (a, b) in zip(
            zip(
                block.user_id.tolist(),
                block.item_id.tolist(),
                block.rating.astype(np.int64).tolist(),
                block.timestamp.tolist(),
            ),
            pick,
        ):
            w = self.words[r]
            lines.append(
                f'{{"rating": {r}.0, "title": "{w[a].capitalize()}", "text": "A {w[a]} and '
                f'{w[b]} item.", "images": [], "asin": "B{i:09d}", "parent_asin": "B{i:09d}", '
                f'"user_id": "AG{u:026d}", "timestamp": {t * 1000}, "helpful_vote": 0, '
                f'"verified_purchase": true}}\n'
            )
        self.reviews.write("".join(lines))

    def items(self, lo: int, text: dict) -> None:
        rng = _rng(self.world, _PROFILE, 2_000_000 + lo // ITEM_BLOCK)
        price = np.round(rng.lognormal(3.0, 0.8, len(text["title"])), 2).tolist()
        lines = []
        for k, (title, genres, description) in enumerate(
            zip(text["title"], text["genres"], text["description"])
        ):
            categories = ", ".join(f'"{g}"' for g in genres.split("|"))
            lines.append(
                f'{{"main_category": "{AMAZON_CATEGORY}", "title": "{title}", "features": [], '
                f'"description": ["{description}"], "price": {price[k]}, "images": [], '
                f'"videos": [], "store": "Store {(lo + k) % 97}", "categories": [{categories}], '
                f'"details": {{}}, "parent_asin": "B{lo + k + 1:09d}", "bought_together": null}}\n'
            )
        self.meta.write("".join(lines))

    def close(self) -> dict:
        self.reviews.close()
        self.meta.close()
        return super().close()


def _writer(fmt: str, folder: Path, world, items, chunk_rows: int) -> _Writer:
    if fmt == "parquet":
        return _ParquetWriter(folder, world, items, chunk_rows)
    if fmt == "amazon":
        return _AmazonWriter(folder, world, items, chunk_rows)
    csv = fmt in ("ml-20m", "ml-25m")
    return _MovieLensWriter(folder, world, items, chunk_rows, csv=csv, users=fmt == "ml-1m")


# ---- the entry point -------------------------------------------------------------------------
def write_interactions(
    output,
    world: InteractionWorld,
    *,
    format: str = "parquet",
    chunk_rows: int = 1_000_000,
    progress: bool = False,
) -> Path:
    """Write ``world`` into the new or empty folder ``output`` in layout ``format``.

    Args:
        output: the folder; created, or replaced when it exists and is empty.
        world: the parameters and seed.
        format: one of :data:`FORMATS`.
        chunk_rows: interactions per Parquet part file (the other layouts write one file).
        progress: show a progress bar over the generated blocks.

    Returns:
        The folder written.

    Raises:
        ConfigError: an unknown format, ``chunk_rows`` < 1, or an ``output`` that is a file,
            holds files, or sits in a folder that cannot be written.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r} (--format); allowed: {', '.join(FORMATS)}")
    _positive("chunk_rows", "--chunk-rows", chunk_rows)
    what = "output folder (--output)"
    check_writable_folder(output, what=what, owned=())
    items = item_table(world)
    n_blocks = len(_user_blocks(world)[1]) - 1
    blocks = interaction_blocks(world, items)
    with atomic_folder(output, owned=(), what=what) as stage:
        writer = _writer(format, stage, world, items, chunk_rows)
        seen = np.zeros(world.n_items, bool)
        low, high = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        bar = progress_bar(blocks, enabled=progress, total=n_blocks, desc="synth", unit="block")
        for block in bar:
            writer.add(block)
            seen[block.item_id - 1] = True
            low, high = min(low, int(block.timestamp.min())), max(high, int(block.timestamp.max()))
        for lo, text in _item_text_blocks(world, items):
            writer.items(lo, text)
        written = writer.close()
        manifest = _manifest(world, format, chunk_rows, written, int(seen.sum()), (low, high))
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(output)


def _manifest(world, fmt, chunk_rows, written: dict, items_used: int, times) -> dict:
    from genrec import __version__

    rows = {
        "interactions": world.n_interactions,
        "users": world.n_users,
        "items": world.n_items,
        "items_with_interactions": items_used,
    }
    if "parts" in written:
        rows["parts"] = written["parts"]
    return {
        "generator": "genrec.data.generator",
        "format": fmt,
        "parameters": asdict(world) | {"chunk_rows": chunk_rows},
        "seed": world.seed,
        "rows": rows,
        "ids": "user_id 1..users, item_id 1..items",
        "timestamps": {"min": times[0], "max": times[1]},
        "files": written["files"],
        "loader": written["loader"],
        "genrec_version": __version__,
    }
