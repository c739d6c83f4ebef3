"""Simulated users: a seeker who wants one held-out item and talks about its attributes only.

:class:`RuleSimulator` is deterministic and needs no language model. It is built from a
:class:`TargetProfile` (the target's genres and decade) and never receives the title, so it
cannot say it. Each turn it reveals at most two attributes it has not revealed yet (the one the
agent asked about first), and once all are out it critiques the list: "something older" /
"newer" when the list sits in the wrong decades, "more like the N-th one" for the shown item
closest to the target, else a plain refusal. Accepting is not the simulator's call: the episode
runner checks the target's id against the shown list.

Example:
    >>> sim = RuleSimulator(TargetProfile(genres=("Comedy", "Romance"), year=1994))
    >>> sim.opening()
    'I am looking for a comedy and romance movie.'
    >>> sim.reply([], question=None)
    'Not these. Something from the 1990s.'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

ORDINAL_WORDS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
]
MAX_REVEALED_PER_TURN = 2


@dataclass(frozen=True)
class TargetProfile:
    """What the simulated user knows about the item they want: no title, no id."""

    genres: tuple[str, ...]
    year: int | None

    @property
    def decade(self) -> int | None:
        return None if self.year is None else self.year // 10 * 10

    @classmethod
    def of(cls, catalog, item: int) -> TargetProfile:
        return cls(tuple(catalog.genres(item)), catalog.year(item))


@dataclass
class RuleSimulator:
    """The attribute-revealing seeker (see the module doc).

    Args:
        target: the wanted item's profile.
        describe_item: item index -> (genres, year) of an item the agent showed (for critiques).
    """

    target: TargetProfile
    describe_item: Callable[[int], tuple[tuple[str, ...], int | None]] | None = None
    revealed: list[tuple[str, object]] = field(default_factory=list)
    revealed_per_turn: list[list[tuple[str, object]]] = field(default_factory=list)

    name = "rule"

    def attributes(self) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = [("genre", g) for g in self.target.genres]
        return out + ([("decade", self.target.decade)] if self.target.decade is not None else [])

    def _reveal(self, question: str | None) -> list[tuple[str, object]]:
        hidden = [a for a in self.attributes() if a not in self.revealed]
        if question:
            wanted = "decade" if "decade" in question else "genre" if "genre" in question else None
            hidden.sort(key=lambda a: a[0] != wanted)  # the asked attribute first
        told = hidden[:MAX_REVEALED_PER_TURN]
        self.revealed += told
        self.revealed_per_turn.append(told)
        return told

    def opening(self) -> str:
        """The first utterance: up to two attributes."""
        told = self._reveal(None)
        genres = [str(v).lower() for a, v in told if a == "genre"]
        decade = [v for a, v in told if a == "decade"]
        what = f"a {' and '.join(genres)} movie" if genres else "a movie"
        when = f" from the {decade[0]}s" if decade else ""
        return f"I am looking for {what}{when}."

    def reply(self, shown: Sequence[int], *, question: str | None) -> str:
        """The answer to a list that missed the target (and to the agent's question, if any)."""
        told = self._reveal(question)
        if told:
            parts = [
                f"It should be a {str(v).lower()} movie."
                if a == "genre"
                else f"Something from the {v}s."
                for a, v in told
            ]
            return "Not these. " + " ".join(parts)
        return self._critique(shown)

    def _critique(self, shown: Sequence[int]) -> str:
        if not shown or self.describe_item is None:
            return "None of these, sorry. Something else?"
        described = [self.describe_item(i) for i in shown[: len(ORDINAL_WORDS)]]
        decade = self.target.decade
        years = [y for _, y in described if y is not None]
        if decade is not None and years:
            newer = sum(y >= decade + 10 for y in years)
            older = sum(y < decade for y in years)
            if newer > len(years) / 2:
                return "Something older."
            if older > len(years) / 2:
                return "Something newer."
        overlap = [len(set(g) & set(self.target.genres)) for g, _ in described]
        best = max(range(len(overlap)), key=lambda n: overlap[n])
        if overlap[best]:
            return f"More like the {ORDINAL_WORDS[best]} one."
        return "None of these, sorry. Something else?"
