"""One user's history: the items they interacted with, oldest first, and which of them they liked.

Explanations cite the user's history ("Because you liked Heat") and their faithfulness is checked
against it, so both need more than item ids: what the user thought of each item. A
:class:`UserHistory` carries the items, their values (ratings) and the dataset's
``positive_threshold``. An item is *liked* when its value is at or above the threshold; with no
threshold (implicit feedback) every interaction counts as positive, the usual convention, but the
data says only that the user interacted, not that they liked it.

Example:
    >>> from genrec.data import Dataset
    >>> data = Dataset.from_interactions(["u", "u", "u"], ["a", "b", "c"], [5, 2, 4],
    ...                                  [30, 10, 20], positive_threshold=4.0)
    >>> history = UserHistory.of(data, 0)
    >>> history.items, history.liked
    ((1, 2, 0), (2, 0))
    >>> history.likes(1), history.has(1)
    (False, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genrec.data.dataset import Dataset, check_positive_threshold
from genrec.errors import DataError


@dataclass(frozen=True)
class UserHistory:
    """What one user did.

    Attributes:
        items: item indices, oldest first (each item once, at its latest position).
        values: the user's value (rating) of each item, aligned with ``items``; None when unknown.
        positive_threshold: the value at or above which an item is liked (the dataset's
            ``positive_threshold``); None for implicit feedback: then every item is a positive.
    """

    items: tuple[int, ...]
    values: tuple[float, ...] | None = None
    positive_threshold: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "items", tuple(int(i) for i in self.items))
        if self.values is not None:
            object.__setattr__(self, "values", tuple(float(v) for v in self.values))
            if len(self.values) != len(self.items):
                raise DataError(
                    f"a history has {len(self.items)} items but {len(self.values)} "
                    "values; pass one value per item"
                )
        threshold = check_positive_threshold(self.positive_threshold)
        if threshold is not None and self.values is None:
            raise DataError(
                f"positive_threshold={threshold} needs the user's values (ratings) "
                "to tell liked items apart; pass values=, or no threshold"
            )
        object.__setattr__(self, "positive_threshold", threshold)

    @classmethod
    def of(cls, data: Dataset, user: int) -> UserHistory:
        """User ``user``'s (an index) history in ``data``: the latest value of a repeated item,
        and ``data.positive_threshold``."""
        if not 0 <= int(user) < data.n_users:
            raise DataError(f"user index {user} is outside 0..{data.n_users - 1}")
        order = data.user_item_order[int(user)]
        items = order.indices[np.argsort(order.data)]  # oldest first
        ratings = data.ratings[int(user)]
        value_of = dict(zip(ratings.indices.tolist(), ratings.data.tolist()))
        return cls(
            tuple(items.tolist()),
            tuple(value_of[i] for i in items.tolist()),
            data.positive_threshold,
        )

    @classmethod
    def coerce(cls, history: UserHistory | Sequence[int]) -> UserHistory:
        """``history`` itself, or a plain sequence of item ids as an implicit-feedback history."""
        return history if isinstance(history, UserHistory) else cls(tuple(history))

    @property
    def rated(self) -> bool:
        """Whether liking can be told apart from interacting (values and a threshold known)."""
        return self.positive_threshold is not None

    @property
    def liked(self) -> tuple[int, ...]:
        """The items the user liked, oldest first (all of them for implicit feedback)."""
        if not self.rated:
            return self.items
        return tuple(i for i, v in zip(self.items, self.values) if v >= self.positive_threshold)

    def has(self, item: int) -> bool:
        """Whether the user interacted with ``item``."""
        return int(item) in self.items

    def likes(self, item: int) -> bool:
        """Whether the user liked ``item`` (interacted, and for rated data at the threshold)."""
        return int(item) in self.liked


__all__ = ["UserHistory"]
