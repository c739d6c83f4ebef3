"""Seeded, deterministic splitters: a ``Dataset`` in, a :class:`~genrec.data.Split` out.

Every splitter labels each interaction with a part (train, valid, test, fold-in or dropped) in a
few vectorised numpy passes (no per-user Python loop) and builds the parts from those codes with
:func:`split_by_code` (also the way to make a split by hand), which uses ``Dataset.subset``; so
all parts share the dataset's vocabularies, catalog and user table and keep the input's
interaction order. ``split.info`` records the method, its settings and what was
dropped; :func:`describe_split` says it in one line.

==============  =========================================================================
method          what it does
==============  =========================================================================
``holdout``     per user, random order, cut by ratio with RecBole 1.2.1's rounding
``loo``         per user, time order: last = test, second last = valid, rest = train
``temporal``    one global time cut: earliest 80% train, next 10% valid, last 10% test
``cold-users``  a share of users never trained on; their history is given as fold-in
``cold-items``  a share of items never trained on; only content-aware models can rank them
==============  =========================================================================

Except in the two cold-start splits, valid and test keep only interactions whose user and item
both occur in train (``drop_unseen=True``, the default): a collaborative model has no embedding
for the others. Pass ``drop_unseen=False`` to keep them, as RecBole does.

Example:
    >>> from genrec.data import Dataset
    >>> data = Dataset.from_interactions(["a"] * 10 + ["b"] * 3, list(range(13)))
    >>> split = make_split(data, "holdout", seed=1, drop_unseen=False)
    >>> len(split.train), len(split.valid), len(split.test)
    (9, 2, 2)
    >>> describe_split(split).split("; ")  # doctest: +NORMALIZE_WHITESPACE
    ['holdout (seed 1, ratios 0.8/0.1/0.1): train 9 / valid 2 / test 2 interactions',
     'unseen users and items kept']
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np

from genrec.data.dataset import Dataset, Split, index_dtype
from genrec.errors import ConfigError, DataError

TRAIN, VALID, TEST, FOLD_IN, DROPPED = 0, 1, 2, 3, -1
_PART_CODES = {"train": TRAIN, "valid": VALID, "test": TEST}
_ALL_CODES = (TRAIN, VALID, TEST, FOLD_IN, DROPPED)
CHUNK = 1 << 20  # interactions per step of the chunked passes


# ---- the splitters -----------------------------------------------------------------------------
def holdout_split(
    data: Dataset,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 2020,
    drop_unseen: bool = True,
) -> Split:
    """Per user, shuffle the interactions (seeded) and cut them into train / valid / test.

    Part sizes follow RecBole 1.2.1 (``Dataset._calcu_split_ids``), so a user with ``n``
    interactions gets the same counts as there: after normalising the ratios by their sum,
    valid gets ``floor(r_valid * n)`` and test ``floor(r_test * n)``, train the rest; then test
    and then valid are each raised to 1 when ``0 < r * n < 1`` and train still holds more than
    one interaction (taking that one from train). With 0.8 / 0.1 / 0.1:

    n = 1, 2, 3, 4, 5, 10, 11 give 1/0/0, 1/0/1, 1/1/1, 2/1/1, 3/1/1, 8/1/1, 9/1/1
    (see :func:`ratio_counts`).

    The order within a user is a seeded permutation of our own, not RecBole's torch shuffle, so
    the counts match but not the chosen interactions.

    Args:
        data: the interactions to split (not empty).
        ratios: (train, valid, test) shares, non-negative, summing to 1, train > 0.
        seed: seed of the shuffle; the same seed gives the same split.
        drop_unseen: drop valid/test interactions whose user or item is not in train.

    Returns:
        a Split; ``info`` has method, seed, ratios, drop_unseen and dropped.

    Raises:
        ConfigError: bad ratios or seed.  DataError: an empty dataset.
    """
    _check_data(data)
    ratios = _check_ratios(ratios)
    rng = np.random.default_rng(_check_seed(seed))
    shuffled = _shuffled_positions(rng, len(data))
    counts = ratio_counts(data.user_counts, ratios)  # (n_users, 3)
    code = _code_by_rank(data, _by_user(data, shuffled), _by_counts(counts))
    info = {"method": "holdout", "seed": seed, "ratios": list(ratios)}
    return split_by_code(data, code, info, drop_unseen=drop_unseen)


def leave_one_out_split(data: Dataset, *, drop_unseen: bool = True) -> Split:
    """Per user, in time order (ties keep file order): last = test, second last = valid.

    As in RecBole 1.2.1: a user with 3 or more interactions gives one to test, one to valid and
    the rest to train; a user with 2 gives the older to train and the newer to test (no valid);
    a user with 1 stays in train only.

    Args:
        data: interactions with timestamps (not all zero).
        drop_unseen: drop valid/test interactions whose item is not in train (users always are).

    Raises:
        DataError: an empty dataset or one without timestamps (use ``holdout_split`` then).
    """
    _check_data(data)
    _check_timestamps(data, "loo")
    n = data.user_counts
    counts = np.stack([n - np.minimum(n - 1, 2), n >= 3, n >= 2], axis=1).astype(np.int64)
    code = _code_by_rank(data, _by_user(data), _by_counts(counts))  # by user, then time
    return split_by_code(data, code, {"method": "loo"}, drop_unseen=drop_unseen)


def temporal_split(
    data: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1), *, drop_unseen: bool = True
) -> Split:
    """One global time cut: the earliest interactions train, the next valid, the latest test.

    Interactions are ordered by timestamp (ties keep file order) and cut by the same rounding as
    :func:`holdout_split` applied to the total count, so ``max(train.timestamp) <=
    min(valid.timestamp)`` and ``max(valid.timestamp) <= min(test.timestamp)``. Users and items
    that first appear after the cut are dropped from valid/test (unless ``drop_unseen=False``).

    Raises:
        ConfigError: bad ratios.  DataError: empty data or no timestamps (use ``holdout_split``).
    """
    _check_data(data)
    ratios = _check_ratios(ratios)
    _check_timestamps(data, "temporal")
    order = np.argsort(data.timestamp, kind="stable")
    n_train, n_valid, _ = ratio_counts([len(data)], ratios)[0]
    code = np.empty(len(data), np.int8)
    code[order] = np.repeat(
        np.array([TRAIN, VALID, TEST], np.int8), [n_train, n_valid, len(data) - n_train - n_valid]
    )
    info = {"method": "temporal", "ratios": list(ratios)}
    return split_by_code(data, code, info, drop_unseen=drop_unseen)


def held_out_users_split(
    data: Dataset, user_share: float = 0.1, *, fold_in: float = 0.8, seed: int = 0
) -> Split:
    """Cold-start users: a share of users is never trained on; they are evaluated from a history.

    ``max(2, floor(user_share * n))`` of the ``n`` users with interactions (at most ``n - 1``)
    are held out, chosen at random; the first half of them (rounded down) are valid users, the
    rest test users. Each held-out user's interactions are shuffled; the first
    ``min(floor(fold_in * k), k - 1)`` of its ``k`` go to ``split.fold_in`` (given to the model as
    history at evaluation, never trained on; present even when empty) and the rest, at least
    one, to valid or test. Every other user's interactions are train. ``split.history("test")``
    is train + valid + fold-in, so a test user's history is exactly its fold-in part. Nothing is
    dropped: items seen only by held-out users stay in valid/test.

    Args:
        data: interactions of at least 3 users.
        user_share: share of users held out, in (0, 1).
        fold_in: share of each held-out user's interactions given as history, in [0, 1).
        seed: seed of the user choice and of the fold-in shuffle.

    Raises:
        ConfigError: a share outside its range or a bad seed.  DataError: empty data, < 3 users.
    """
    _check_data(data)
    _check_share("user_share", user_share)
    _check_share("fold_in", fold_in, low_inclusive=True)
    rng = np.random.default_rng(_check_seed(seed))
    held = _choose_held_out(rng, data.user_counts, user_share, "user")
    role = np.full(data.n_users, TRAIN, np.int8)  # (n_users,) which part a user's targets go to
    role[held[: len(held) // 2]], role[held[len(held) // 2 :]] = VALID, TEST
    k = data.user_counts
    n_fold = np.minimum(np.floor(fold_in * k).astype(np.int64), np.maximum(k - 1, 0))

    def part_of(users, rank):  # a held-out user's first n_fold shuffled rows are fold-in
        return np.where((role[users] != TRAIN) & (rank < n_fold[users]), FOLD_IN, role[users])

    code = _code_by_rank(data, _by_user(data, _shuffled_positions(rng, len(data))), part_of)
    info = {
        "method": "cold-users",
        "seed": seed,
        "user_share": user_share,
        "fold_in": fold_in,
        "held_out_users": {"valid": len(held) // 2, "test": len(held) - len(held) // 2},
    }
    return split_by_code(data, code, info, drop_unseen=False, with_fold_in=True)


def held_out_items_split(data: Dataset, item_share: float = 0.1, *, seed: int = 0) -> Split:
    """Cold-start items: a share of items is never trained on; only content can rank them.

    ``max(2, floor(item_share * n))`` of the ``n`` items with interactions (at most ``n - 1``)
    are held out at random, per item: the first half of them (rounded down) are valid items and
    every interaction with one goes to valid; the rest are test items and all their interactions
    go to test. All other interactions are train. Valid and test items are disjoint, so test
    items are unseen at validation too. Nothing is dropped, not even users whose every
    interaction is with a held-out item. The share counts items, not interactions: holding out a
    popular item moves many interactions.

    Raises:
        ConfigError: ``item_share`` outside (0, 1) or a bad seed.  DataError: empty, < 3 items.
    """
    _check_data(data)
    _check_share("item_share", item_share)
    rng = np.random.default_rng(_check_seed(seed))
    held = _choose_held_out(rng, data.item_counts, item_share, "item")
    role = np.full(data.n_items, TRAIN, np.int8)  # (n_items,)
    role[held[: len(held) // 2]], role[held[len(held) // 2 :]] = VALID, TEST
    info = {
        "method": "cold-items",
        "seed": seed,
        "item_share": item_share,
        "held_out_items": {"valid": len(held) // 2, "test": len(held) - len(held) // 2},
    }
    return split_by_code(data, role[data.item_idx], info, drop_unseen=False)


SPLITTERS: dict[str, Callable[..., Split]] = {
    "holdout": holdout_split,
    "loo": leave_one_out_split,
    "temporal": temporal_split,
    "cold-users": held_out_users_split,
    "cold-items": held_out_items_split,
}


def make_split(data: Dataset, method: str, *, seed: int | None = None, **kw) -> Split:
    """Split ``data`` with the splitter named ``method`` (a key of :data:`SPLITTERS`).

    ``seed`` is passed on to splitters that take one (``loo`` and ``temporal`` are deterministic
    and ignore it); ``None`` keeps the splitter's default. Other keywords go to the splitter.

    A dataset opened from a scan cache (``data.split_store`` set) has its splits stored there:
    the same method and settings read the stored split back instead of splitting again, and on
    either run the parts handed out are the stored files, memory-mapped.

    Raises:
        ConfigError: an unknown method or an option the splitter does not take.
    """
    splitter = SPLITTERS.get(method) if isinstance(method, str) else None
    if splitter is None:
        raise ConfigError(f"unknown split method {method!r}; known methods: {', '.join(SPLITTERS)}")
    params = list(inspect.signature(splitter).parameters)[1:]  # all but data
    unknown = sorted(set(kw) - set(params))
    if unknown:
        raise ConfigError(
            f"split method {method!r} got unknown option(s) {unknown}; "
            f"it takes: {', '.join(params)}"
        )
    if seed is not None and "seed" in params:
        kw["seed"] = seed
    store = data.split_store if isinstance(data, Dataset) else None
    key = {"method": method, **kw}
    split = None if store is None else store.load(key)
    if split is None:
        split = splitter(data, **kw)
        if store is not None and split.code is not None:
            store.remember(key, split)
    return split


def describe_split(split: Split) -> str:
    """One line: method, settings, part sizes and what was dropped (from ``split.info``)."""
    info = split.info
    settings = []
    for key, label in (
        ("seed", "seed"),
        ("ratios", "ratios"),
        ("user_share", "user share"),
        ("fold_in", "fold-in"),
        ("item_share", "item share"),
    ):
        if key in info:
            value = info[key]
            text = "/".join(f"{x:g}" for x in value) if key == "ratios" else f"{value:g}"
            settings.append(f"{label} {text}")
    head = info.get("method", "split") + (f" ({', '.join(settings)})" if settings else "")
    sizes = [
        f"train {len(split.train):,}",
        f"valid {len(split.valid):,}",
        f"test {len(split.test):,}",
    ]
    if split.fold_in is not None:
        sizes.append(f"fold-in {len(split.fold_in):,}")
    dropped, repeats = _describe_dropped(info), _describe_repeats(split)
    if "dropped as seen" in repeats:
        dropped = dropped.replace("nothing dropped", "no unseen user or item dropped")
    return f"{head}: {' / '.join(sizes)} interactions; {dropped}{repeats}"


def target_counts(split: Split, part: str = "test") -> dict:
    """What becomes of the interactions of ``part`` as evaluation targets, in rows.

    Returns ``{"interactions", "dropped_unknown", "dropped_seen", "repeated", "targets",
    "users"}``: ``interactions`` the part had before unseen users and items were dropped;
    ``dropped_unknown`` of them dropped by the split (user or item not in train);
    ``dropped_seen`` whose (user, item) pair is already in the history the model is given
    (train, plus valid for test), which full-ranking evaluation excludes; ``repeated`` rows
    repeating a pair earlier in the part (one target each); ``targets`` the distinct pairs left
    and ``users`` the users holding them.

    Example:
        >>> data = Dataset.from_interactions(["a", "a", "a", "a"], ["x", "y", "x", "z"])
        >>> split = split_by_code(data, [TRAIN, TRAIN, TEST, TEST], {"method": "by-hand"})
        >>> target_counts(split)["dropped_seen"], target_counts(split)["targets"]
        (1, 1)
    """
    target = {"valid": split.valid, "test": split.test}.get(part)
    if target is None:
        raise ConfigError(f"part must be 'valid' or 'test', got {part!r}")
    history = split.history(part)
    n_items = target.n_items
    keys = pair_keys(target)  # (n,) one int per (user, item) pair
    seen = np.isin(keys, pair_keys(history))
    left = np.unique(keys[~seen])
    unknown = split.info.get("dropped", {}).get(part, {}).get("interactions", 0)
    return {
        "interactions": len(target) + unknown,
        "dropped_unknown": unknown,
        "dropped_seen": int(seen.sum()),
        "repeated": int((~seen).sum() - left.size),
        "targets": int(left.size),
        "users": int(np.unique(left // n_items).size),
    }


# ---- the rounding rule -------------------------------------------------------------------------
def ratio_counts(n, ratios: Sequence[float]) -> np.ndarray:
    """(len(n), len(ratios)) part sizes of groups of ``n`` interactions, by RecBole's rule.

    Ratios are normalised by their (left-to-right float) sum; every part but the first gets
    ``floor(r * n)``, the first the rest; then, from the last part backwards, a part with
    ``0 < r * n < 1`` is raised to 1 (taken from the first part) while the first part holds more
    than one. Float arithmetic is RecBole's, so boundary cases such as ``0.1 * 30`` agree.

    >>> ratio_counts([1, 2, 3, 5, 10, 11], (0.8, 0.1, 0.1)).tolist()
    [[1, 0, 0], [1, 0, 1], [1, 1, 1], [3, 1, 1], [8, 1, 1], [9, 1, 1]]
    """
    n = np.asarray(n, np.int64)
    total = sum(float(r) for r in ratios)
    shares = [float(r) / total for r in ratios]
    counts = np.zeros((len(n), len(shares)), np.int64)
    for j in range(1, len(shares)):
        counts[:, j] = np.floor(shares[j] * n)  # == int() of a non-negative float
    counts[:, 0] = n - counts[:, 1:].sum(axis=1)
    for j in range(len(shares) - 1, 0, -1):  # test first, then valid
        exact = shares[j] * n
        bump = (counts[:, 0] > 1) & (exact > 0) & (exact < 1)
        counts[:, j] += bump
        counts[:, 0] -= bump
    return counts


# ---- shared steps ------------------------------------------------------------------------------
def _by_user(data: Dataset, key: np.ndarray | None = None):
    """``(start, rows)`` pieces, in order, of the interactions sorted by user, then by ``key``
    (n,) of distinct values (None: by time, ties in file order, :attr:`Dataset.time_order`):
    ``rows`` is ``np.lexsort((key, data.user_idx))[start : start + len(rows)]``.

    Where the time order is at hand (read from a scan cache), it groups the rows by user, and
    ``key`` sorts a block of whole users (about :data:`CHUNK` rows) at a time: no (n,) order is
    formed, at any size. Otherwise the order is sorted whole and handed out in pieces."""
    if key is not None and not data.has_view("time_order"):
        order = np.lexsort((key, data.user_idx))
        for start in range(0, len(order), CHUNK):
            yield start, order[start : start + CHUNK]
        return
    grouped, ends = data.time_order, np.cumsum(data.user_counts)  # (n,), (n_users,)
    start = 0
    while start < len(grouped):
        users = np.searchsorted(ends, start + CHUNK, side="right")  # users ending within reach
        users = max(users, np.searchsorted(ends, start, side="right") + 1)  # at least one more
        stop = int(ends[users - 1])
        rows = np.asarray(grouped[start:stop])
        if key is not None:
            rows = rows[np.lexsort((key[rows], data.user_idx[rows]))]
        yield start, rows
        start = stop


def _code_by_rank(data: Dataset, pieces, part_of) -> np.ndarray:
    """Part code per interaction from its user and its rank among the user's interactions in
    the order of ``pieces`` (of :func:`_by_user`): ``part_of(users, rank)`` gives the codes of a
    piece's rows. Computed a piece at a time, so its temporaries stay small at any size."""
    starts = np.cumsum(data.user_counts) - data.user_counts  # (n_users,)
    code = np.empty(len(data), np.int8)
    for start, rows in pieces:
        users = data.user_idx[rows]
        code[rows] = part_of(users, np.arange(start, start + len(rows)) - starts[users])
    return code


def _by_counts(counts: np.ndarray):
    """``part_of`` for :func:`_code_by_rank`: within each user the first ``counts[u, 0]`` are
    train, the next ``counts[u, 1]`` valid, the rest test."""

    def part_of(users, rank):
        n_train = counts[users, 0]
        return (rank >= n_train).astype(np.int8) + (rank >= n_train + counts[users, 1])

    return part_of


def _shuffled_positions(rng: np.random.Generator, n: int) -> np.ndarray:
    """``rng.permutation(n)`` (the same values, the same draws) as int32 where n fits: half the
    memory of the int64 array at twenty million interactions."""
    positions = np.arange(n, dtype=index_dtype(n))
    rng.shuffle(positions)
    return positions


def _choose_held_out(
    rng: np.random.Generator, counts: np.ndarray, share: float, kind: str
) -> np.ndarray:
    """A random ``max(2, floor(share * n))`` (at most n - 1) of the n ids with interactions."""
    present = np.flatnonzero(counts > 0)
    if len(present) < 3:
        raise DataError(
            f"a cold-{kind} split needs at least 3 {kind}s with interactions (one "
            f"for each of train, valid and test), got {len(present)}; use more data "
            "or the 'holdout' split"
        )
    n_held = min(max(2, int(share * len(present))), len(present) - 1)
    return rng.permutation(present)[:n_held]


def split_by_code(
    data: Dataset, code, info: dict, *, drop_unseen: bool = False, with_fold_in: bool = False
) -> Split:
    """The split whose parts are given per interaction by ``code``.

    Args:
        data: the dataset to split.
        code: (n,) part of each interaction: ``TRAIN`` (0), ``VALID`` (1), ``TEST`` (2),
            ``FOLD_IN`` (3) or ``DROPPED`` (-1); parts keep the input's interaction order.
        info: how the split was made (at least ``method``); ``split.info`` is this plus
            ``drop_unseen``, ``dropped`` and ``duplicates`` (rows of ``data`` that repeat an
            earlier (user, item) pair, see :attr:`Dataset.duplicate_interactions`).
        drop_unseen: also drop valid/test interactions whose user or item is not in train;
            ``info["dropped"]`` then counts, per part, the dropped interactions and the distinct
            unseen users and items (all zero when False).
        with_fold_in: give the split a fold-in part, even when it is empty.

    Example:
        >>> data = Dataset.from_interactions(["a", "a", "a"], ["x", "y", "z"])
        >>> split = split_by_code(data, [TRAIN, VALID, TEST], {"method": "by-hand"})
        >>> len(split.train), len(split.valid), len(split.test), split.info["dropped"]["test"]
        (1, 1, 1, {'interactions': 0, 'users': 0, 'items': 0})
    """
    code = np.asarray(code)
    if code.shape != (len(data),):
        raise DataError(
            f"code must hold one part code per interaction, shape ({len(data)},); "
            f"got shape {code.shape}"
        )
    for start in range(0, len(code), CHUNK):  # a chunk at a time: isin's temporaries are (n,)
        unknown = ~np.isin(code[start : start + CHUNK], _ALL_CODES)
        if unknown.any():
            j = start + int(np.argmax(unknown))
            raise DataError(
                f"code[{j}] is {code[j].item()!r}; part codes are TRAIN, VALID, TEST, "
                f"FOLD_IN, DROPPED = {', '.join(map(str, _ALL_CODES))}"
            )
    code = code.astype(np.int8, copy=True)
    dropped = {part: {"interactions": 0, "users": 0, "items": 0} for part in ("valid", "test")}
    if drop_unseen:
        dropped = _drop_unseen(data, code)
    info = {
        **info,
        "drop_unseen": bool(drop_unseen),
        "dropped": dropped,
        "duplicates": data.duplicate_interactions,
    }
    return split_from_code(data, code, info, with_fold_in=with_fold_in)


def split_from_code(data: Dataset, code: np.ndarray, info: dict, *, with_fold_in: bool) -> Split:
    """The split whose parts ``code`` (n,) gives, with ``info`` as it is (nothing dropped or
    counted here): the last step of :func:`split_by_code`. ``split.code`` is ``code``.

    A dataset opened from a scan cache has its parts written to the cache's split store and
    memory-mapped (:meth:`~genrec.data.scan.SplitStore.parts`); any other dataset's parts are
    selected in memory."""
    if data.split_store is not None:  # parts written beside the cache and mapped
        split = data.split_store.parts(code, info, with_fold_in=with_fold_in)
        if split is not None:
            return split
    # boolean masks (1 byte an interaction, one at a time), not index arrays (8 bytes)
    parts = {
        name: data.subset(code == c, name=f"{data.name}/{name}") for name, c in _PART_CODES.items()
    }
    fold_in = None
    if with_fold_in:
        fold_in = data.subset(code == FOLD_IN, name=f"{data.name}/fold-in")
    split = Split(parts["train"], parts["valid"], parts["test"], fold_in=fold_in, info=info)
    split.code = code
    return split


def _drop_unseen(data: Dataset, code: np.ndarray) -> dict:
    """Mark valid/test interactions whose user or item is not in train as DROPPED (in place).

    Returns per part the dropped interactions and the distinct unseen users and items. Runs
    :data:`CHUNK` interactions at a time, so its temporaries stay small at any size."""
    pieces = [slice(start, start + CHUNK) for start in range(0, len(code), CHUNK)]
    seen_user, seen_item = np.zeros(data.n_users, bool), np.zeros(data.n_items, bool)
    for rows in pieces:
        train = code[rows] == TRAIN
        seen_user[data.user_idx[rows][train]] = True
        seen_item[data.item_idx[rows][train]] = True
    parts = ("valid", "test")
    lost_users = {p: np.zeros(data.n_users, bool) for p in parts}
    lost_items = {p: np.zeros(data.n_items, bool) for p in parts}
    n_lost = dict.fromkeys(parts, 0)
    for rows in pieces:
        users, items, piece = data.user_idx[rows], data.item_idx[rows], code[rows]
        unseen_user, unseen_item = ~seen_user[users], ~seen_item[items]
        lost = np.zeros(len(piece), bool)
        for p in parts:
            in_part = piece == _PART_CODES[p]
            new_user, new_item = in_part & unseen_user, in_part & unseen_item
            lost_users[p][users[new_user]], lost_items[p][items[new_item]] = True, True
            n_lost[p] += int(np.count_nonzero(new_user | new_item))
            lost |= new_user | new_item
        piece[lost] = DROPPED  # a view of code
    return {
        p: {
            "interactions": n_lost[p],
            "users": int(lost_users[p].sum()),
            "items": int(lost_items[p].sum()),
        }
        for p in parts
    }


def _describe_dropped(info: dict) -> str:
    if not info.get("drop_unseen", True):
        return "unseen users and items kept"
    dropped = info.get("dropped", {})
    said = [
        f"{part} {d['interactions']:,} interaction(s) ({d['users']:,} unseen user(s), "
        f"{d['items']:,} unseen item(s))"
        for part, d in dropped.items()
        if d["interactions"]
    ]
    return "dropped from " + ", from ".join(said) if said else "nothing dropped"


def _describe_repeats(split: Split) -> str:
    """ "" without repeated (user, item) rows; else their number and what they do to the test."""
    duplicates = split.info.get("duplicates", 0)
    if not duplicates:
        return ""
    seen = target_counts(split)["dropped_seen"]
    effect = (
        f"{seen:,} test interaction(s) repeat a pair of the history a model is given and "
        "will be dropped as seen at evaluation"
        if seen
        else "no test interaction repeats a pair of the history"
    )
    return (
        f"; {duplicates:,} repeated (user, item) row(s) in the data: {effect} (keep one row "
        "per pair: filters.drop_duplicates, CLI --dedup)"
    )


# ---- input checks ------------------------------------------------------------------------------
def _check_data(data) -> None:
    if not isinstance(data, Dataset):
        raise DataError(
            f"expected a genrec Dataset to split, got {type(data).__name__}; build "
            "one with Dataset.from_interactions(...)"
        )
    if len(data) == 0:
        raise DataError(
            f"dataset {data.name!r} has no interactions to split; check the file "
            "and the filters applied before splitting"
        )


def _check_ratios(ratios) -> tuple[float, float, float]:
    fix = "give three non-negative shares (train, valid, test) summing to 1, e.g. (0.8, 0.1, 0.1)"
    try:
        values = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        raise ConfigError(f"ratios must be numbers, got {ratios!r}; {fix}") from None
    if len(values) != 3:
        raise ConfigError(f"ratios must have 3 entries (train, valid, test), got {ratios!r}; {fix}")
    if not all(math.isfinite(r) and r >= 0 for r in values) or values[0] <= 0:
        raise ConfigError(
            f"ratios must be non-negative with a positive train share, got {ratios!r}; {fix}"
        )
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"ratios must sum to 1, got {ratios!r} (sum {sum(values):g}); {fix}")
    return values


def _check_share(name: str, value, *, low_inclusive: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (0 <= value if low_inclusive else 0 < value) and value < 1
    if not ok:
        interval = "[0, 1)" if low_inclusive else "(0, 1)"
        example = "fold_in=0.8" if name == "fold_in" else f"{name}=0.1"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}; e.g. {example}")


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}; e.g. seed=0")
    return int(seed)


def _check_timestamps(data: Dataset, method: str) -> None:
    if not data.has_timestamps:
        raise DataError(
            f"the {method!r} split orders interactions by time, but dataset "
            f"{data.name!r} has no timestamps (all zero); load a source with "
            "timestamps or use the random split: make_split(data, 'holdout')"
        )


def pair_keys(data: Dataset) -> np.ndarray:
    """(n,) int64 ``user * n_items + item`` of each interaction (the indices widened first:
    they may be int32, the keys need not fit)."""
    return data.user_idx.astype(np.int64) * data.n_items + data.item_idx
