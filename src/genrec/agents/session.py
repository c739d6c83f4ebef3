"""The state of one conversation: its turns, candidate set, active constraints and memory.

A :class:`Session` is plain data (JSON round-trip with :meth:`Session.to_dict` /
:meth:`Session.from_dict`) so a store can persist it and a process restart resumes it. Items are
item indices of the dataset the agent serves.

Memory follows one rule: ``liked`` and ``unwanted`` stay disjoint. Liking an item removes it
from ``unwanted`` and the other way round, so the latest word of the user wins.

Example:
    >>> s = Session("s1", history=[3])
    >>> s.remember(like=[5], unwanted=[7])
    >>> s.remember(unwanted=[5])
    >>> s.liked, s.unwanted
    ([], [7, 5])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Condition:
    """One active constraint on catalog attributes, e.g. ``Condition("genre", "has", "Comedy")``
    or ``Condition("year", "between", [1980, 1989])``. Which columns and operators exist is
    decided by :class:`~genrec.agents.item_table.ItemTable`."""

    column: str
    op: str
    value: Any

    def to_dict(self) -> dict:
        return {"column": self.column, "op": self.op, "value": self.value}

    @classmethod
    def from_dict(cls, values: dict) -> Condition:
        value = values["value"]
        return cls(
            str(values["column"]),
            str(values["op"]),
            list(value) if isinstance(value, (list, tuple)) else value,
        )


@dataclass
class Turn:
    """One utterance: ``role`` is "user" or "agent"; an agent turn lists the item indices it
    showed and the tool trace that produced them."""

    role: str
    text: str
    items: list[int] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)


@dataclass
class Session:
    """One conversation.

    Attributes:
        session_id: the caller's key for it.
        history: item indices the user interacted with before the conversation (seen items).
        turns: every utterance, oldest first.
        constraints: the active attribute constraints.
        liked, unwanted: items the user said they like / do not want (disjoint).
        shown: every item shown so far, in order (repeats are not shown again unless asked).
        last_shown: the items of the latest list ("the second" refers to ``last_shown[1]``).
        candidates: the current candidate set after the constraints (None: all items).
        asked: attributes the agent already asked about.
    """

    session_id: str
    history: list[int] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    constraints: list[Condition] = field(default_factory=list)
    liked: list[int] = field(default_factory=list)
    unwanted: list[int] = field(default_factory=list)
    shown: list[int] = field(default_factory=list)
    last_shown: list[int] = field(default_factory=list)
    candidates: list[int] | None = None
    asked: list[str] = field(default_factory=list)

    def remember(self, *, like: Sequence[int] = (), unwanted: Sequence[int] = ()) -> None:
        """Add to ``liked`` and ``unwanted``, keeping them disjoint (the newest word wins)."""
        for item in map(int, like):
            if item in self.unwanted:
                self.unwanted.remove(item)
            if item not in self.liked:
                self.liked.append(item)
        for item in map(int, unwanted):
            if item in self.liked:
                self.liked.remove(item)
            if item not in self.unwanted:
                self.unwanted.append(item)

    def set_constraint(self, condition: Condition) -> None:
        """Add ``condition``; one on the same column and operator family replaces the old one
        (a new year range replaces the old range; genres accumulate)."""
        if condition.column == "genre":
            opposite = "lacks" if condition.op == "has" else "has"
            self.constraints = [
                c
                for c in self.constraints
                if not (c.column == "genre" and c.value == condition.value and c.op == opposite)
            ]
        else:
            self.constraints = [c for c in self.constraints if c.column != condition.column]
        if condition not in self.constraints:
            self.constraints.append(condition)

    def drop_constraints(self, column: str | None = None) -> None:
        """Forget the constraints on ``column`` (all of them when None)."""
        self.constraints = [
            c for c in self.constraints if column is not None and c.column != column
        ]

    def show(self, items: Sequence[int]) -> None:
        """Record a list shown; an empty one (an answer without a list) keeps the latest list,
        so "the second" still refers to it."""
        if not len(items):
            return
        self.last_shown = [int(i) for i in items]
        self.shown += [i for i in self.last_shown if i not in self.shown]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["constraints"] = [c.to_dict() for c in self.constraints]
        return out

    @classmethod
    def from_dict(cls, values: dict) -> Session:
        values = dict(values)
        values["turns"] = [Turn(**t) for t in values.get("turns", [])]
        values["constraints"] = [Condition.from_dict(c) for c in values.get("constraints", [])]
        return cls(**values)
