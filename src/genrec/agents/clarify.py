"""Mixed initiative: which question to ask, chosen by information gain over the candidates.

An answer to "which genre?" or "which decade?" splits the candidate set by that attribute's
values; the expected information the answer gives is the entropy of the value distribution over
the candidates (the answer is deterministic given the item the user wants). The agent asks about
the attribute with the largest entropy that is neither constrained nor asked already.

Example:
    >>> from collections import Counter
    >>> round(entropy(Counter({"Drama": 2, "Comedy": 2})), 3)
    1.0
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from genrec.agents.item_table import ItemTable
from genrec.agents.session import Session

ATTRIBUTES = ("genre", "decade")
# Ask when more candidates than this remain and fewer than MAX_CONSTRAINTS are active.
MANY_CANDIDATES = 50
MAX_CONSTRAINTS = 1


def entropy(counts: Counter) -> float:
    """Shannon entropy in bits of the distribution proportional to ``counts``."""
    total = sum(counts.values())
    return (
        -sum(c / total * math.log2(c / total) for c in counts.values() if c > 0) if total else 0.0
    )


def should_ask(session: Session, n_candidates: int, *, many: int = MANY_CANDIDATES) -> bool:
    """Candidates many (more than ``many``) and constraints few (and something left to ask)."""
    open_attributes = [a for a in ATTRIBUTES if a not in session.asked]
    return (
        n_candidates > many
        and len(session.constraints) < MAX_CONSTRAINTS
        and not session.liked
        and bool(open_attributes)
    )


def best_question(
    table: ItemTable, session: Session, candidates: Sequence[int]
) -> tuple[str, list] | None:
    """``(attribute, its most common values)`` with the highest entropy over ``candidates``
    among attributes not constrained or asked; None when none is left."""
    constrained = {"decade" if c.column == "year" else c.column for c in session.constraints}
    best = None
    for attribute in ATTRIBUTES:
        if attribute in constrained or attribute in session.asked:
            continue
        counts = table.value_counts(attribute, candidates)
        gain = entropy(counts)
        if gain > 0 and (best is None or gain > best[0]):
            best = (gain, attribute, [v for v, _ in counts.most_common(3)])
    return None if best is None else (best[1], best[2])


def question_text(attribute: str, values: list) -> str:
    """The question in words, offering the most common values."""
    if attribute == "decade":
        offered = ", ".join(f"the {v}s" for v in values)
        return f"To narrow it down: which decade do you prefer, for example {offered}?"
    return (
        f"To narrow it down: which genre are you in the mood for, for example {', '.join(values)}?"
    )
