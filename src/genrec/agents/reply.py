"""The agent's reply: written from tool results only, naming only catalog items it shows.

The text is assembled from templates and catalog titles; every title in it belongs to an item
the reply lists in ``mentions``, which holds only items shown now, items of an earlier list the
user referred to, and the user's own items an explanation cites (their history, and items they
said they like). No language model writes reply text, so nothing outside the catalog can be
named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genrec.text.prompts import natural_title


@dataclass
class Reply:
    """One agent turn.

    Attributes:
        text: what the user reads.
        items: catalog item indices shown, best first (at most ``k``).
        item_ids: their external ids.
        ranking: the full ranked list behind ``items`` (up to 50 indices; for recall@k).
        trace: one entry per tool call: ``{"tool", "args", "output" | "error"}``.
        mentions: every item whose title ``text`` names.
        question: the clarifying question asked, if any.
        plan: planner information (``valid``, ``repaired``, ``fallback``, LM calls, tokens).
    """

    text: str
    items: list[int] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    ranking: list[int] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)
    mentions: list[int] = field(default_factory=list)
    question: str | None = None
    plan: dict = field(default_factory=dict)


def compose(
    catalog,
    *,
    items: list[int],
    answers: list[tuple[str, list[int]]],
    notes: list[str],
    question: str | None,
    pinned: bool = False,
) -> tuple[str, list[int]]:
    """``(text, mentions)`` of a reply showing ``items`` after ``answers`` and ``notes``."""
    lines = list(notes) + [text for text, _ in answers]
    mentions = [i for _, named in answers for i in named]
    if items:
        lines.append("Here is what I found:" if pinned else "Here are my suggestions:")
        for n, item in enumerate(items, start=1):
            year = catalog.year(item)
            lines.append(
                f"{n}. {natural_title(catalog.title(item))}"
                + (f" ({year})" if year is not None else "")
            )
        mentions += list(items)
    elif not answers:
        lines.append("I have nothing left to suggest with these wishes; try changing one.")
    if question:
        lines.append(question)
    return "\n".join(lines), list(dict.fromkeys(mentions))
