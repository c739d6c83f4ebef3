"""ReDial conversations (raw jsonl) mapped onto a movie catalog: real dialogue contexts.

ReDial (Li et al., NeurIPS 2018) has about 11k English movie-recommendation dialogues between a
seeker (the initiator) and a recommender. It is not downloaded by genrec: get
``redial_dataset.zip`` from https://redialdata.github.io/website/ (CC BY 4.0), unzip it, and
pass ``train_data.jsonl`` or ``test_data.jsonl``. Each line is one conversation::

    {"conversationId": "391", "initiatorWorkerId": 0, "respondentWorkerId": 1,
     "movieMentions": {"203371": "Final Fantasy: The Spirits Within (2001)", ...},
     "messages": [{"messageId": 1021, "senderWorkerId": 0, "timeOffset": 0,
                   "text": "I loved @203371 !"}, ...],
     "initiatorQuestions": {"203371": {"suggested": 1, "seen": 0, "liked": 1}, ...},
     "respondentQuestions": {...}}

A movie is mentioned in text as ``@ID``. Questions: ``suggested`` 1 when the recommender
brought it up, ``seen`` and ``liked`` 0 (no), 1 (yes) or 2 (did not say); either side's
answers may be missing (an empty list).

:func:`map_mentions` maps mentions onto a catalog by title and year: the title normalised
(lower case, no punctuation, a trailing ", The" moved to the front), exact first, else the best
rapidfuzz ``WRatio`` of at least ``cutoff``, among catalog items within a year of the mention's
year when it has one. :func:`dialogue_contexts` turns mapped conversations into
:class:`DialogueContext` s: the seeker's turns up to the first recommender message that names a
target, where targets are the mapped movies the recommender suggested and the seeker liked,
and the history is the mapped movies the seeker liked and brought up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz, process

from genrec.errors import DataError

REQUIRED = ("conversationId", "messages", "movieMentions", "initiatorWorkerId")
MENTION = re.compile(r"@(\d+)")
YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
ARTICLE = re.compile(r"^(.*), (the|a|an)$")
MATCH_CUTOFF = 90.0
URL = "https://redialdata.github.io/website/"


@dataclass(frozen=True)
class Message:
    sender: int
    text: str
    message_id: int


@dataclass(frozen=True)
class Conversation:
    """One ReDial dialogue; ``seeker_answers``/``recommender_answers`` map a movie id to its
    ``{"suggested", "seen", "liked"}`` answers ({} when that side did not answer)."""

    id: str
    messages: tuple[Message, ...]
    mentions: dict[str, str]
    seeker: int
    recommender: int
    seeker_answers: dict[str, dict]
    recommender_answers: dict[str, dict]

    def answers(self) -> dict[str, dict]:
        """The seeker's answers, else the recommender's (ReDial's usual fallback)."""
        return self.seeker_answers or self.recommender_answers


@dataclass(frozen=True)
class MentionMap:
    """Movie id -> catalog item index for the mentions that matched, and the counts."""

    items: dict[str, int]
    mentions: int

    @property
    def mapped_share(self) -> float:
        return len(self.items) / self.mentions if self.mentions else 0.0


@dataclass(frozen=True)
class DialogueContext:
    """What an agent is evaluated from: the seeker's recorded turns (mentions written as
    titles), the liked suggested movies (targets) and the seeker's liked movies (history)."""

    conversation_id: str
    seeker_turns: tuple[str, ...]
    targets: tuple[int, ...]
    history: tuple[int, ...]


def read_redial(path: str | Path) -> list[Conversation]:
    """The conversations of a ReDial jsonl file.

    Raises:
        DataError: a missing file (the message says where ReDial comes from), a line that is
            not JSON, or a conversation without the ReDial fields (the line number named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"no ReDial file at {str(path)!r}; download redial_dataset.zip from {URL}, unzip it "
            "and pass train_data.jsonl or test_data.jsonl"
        )
    out = []
    with path.open(encoding="utf-8") as lines:
        for n, raw in enumerate(lines, start=1):
            if raw.strip():
                out.append(_conversation(raw, n, path))
    return out


def _conversation(raw: str, n: int, path: Path) -> Conversation:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {n} is not JSON ({exc.msg})") from None
    missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
    if missing:
        raise DataError(f"{path}: line {n} lacks the ReDial fields {missing}; is it ReDial jsonl?")
    try:
        messages = tuple(
            Message(int(m["senderWorkerId"]), str(m["text"]), int(m.get("messageId", k)))
            for k, m in enumerate(row["messages"])
        )
        return Conversation(
            str(row["conversationId"]),
            messages,
            {str(k): str(v) for k, v in (row["movieMentions"] or {}).items() if v},
            int(row["initiatorWorkerId"]),
            int(row.get("respondentWorkerId", -1)),
            _answers(row.get("initiatorQuestions")),
            _answers(row.get("respondentQuestions")),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: line {n} has a malformed message or mention ({exc})") from None


def _answers(value) -> dict[str, dict]:
    return {str(k): dict(v) for k, v in value.items()} if isinstance(value, dict) else {}


def split_title(text: str) -> tuple[str, int | None]:
    """``"Heat (1995)"`` -> ``("Heat", 1995)``; no year -> ``(text, None)``.

    >>> split_title("The Shining  (1980)")
    ('The Shining', 1980)
    """
    match = YEAR.search(text)
    if not match:
        return text.strip(), None
    return text[: match.start()].strip(), int(match.group(1))


def normal_title(text: str) -> str:
    """Lower case, punctuation to spaces, a trailing ", The" moved to the front.

    >>> normal_title("Godfather, The")
    'the godfather'
    """
    text = " ".join(str(text).lower().split())
    match = ARTICLE.match(text)
    if match:
        text = f"{match.group(2)} {match.group(1)}"
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def map_mentions(
    conversations: Iterable[Conversation], catalog, *, cutoff: float = MATCH_CUTOFF
) -> MentionMap:
    """Map every mentioned movie onto ``catalog`` (an ItemCatalog with ``title``, and ``year``
    when known) by title and year; see the module doc."""
    mentions: dict[str, str] = {}
    for conversation in conversations:
        mentions.update(conversation.mentions)
    n = len(catalog.vocab)
    titles = [normal_title(split_title(catalog.title(i))[0]) for i in range(n)]
    years = [catalog.year(i) or split_title(catalog.title(i))[1] for i in range(n)]
    exact: dict[tuple[str, int | None], int] = {}
    for i in range(n):
        exact.setdefault((titles[i], years[i]), i)
        exact.setdefault((titles[i], None), i)
    items = {}
    for movie, text in mentions.items():
        title, year = split_title(text)
        key = normal_title(title)
        hit = exact.get((key, year))
        if hit is None and year is not None:
            hit = next((exact[(key, y)] for y in (year - 1, year + 1) if (key, y) in exact), None)
        if hit is None:
            hit = _fuzzy(key, year, titles, years, cutoff)
        if hit is not None:
            items[movie] = hit
    return MentionMap(items, len(mentions))


def _fuzzy(key: str, year, titles: Sequence[str], years: Sequence, cutoff: float) -> int | None:
    if not key:
        return None
    for _, _, index in process.extract(
        key, titles, scorer=fuzz.WRatio, limit=5, score_cutoff=cutoff
    ):
        if year is None or years[index] is None or abs(years[index] - year) <= 1:
            return int(index)
    return None


def dialogue_contexts(
    conversations: Iterable[Conversation], mapping: MentionMap
) -> list[DialogueContext]:
    """One context per conversation with a mapped target and a seeker turn before it (see the
    module doc); consecutive messages of one side are one turn."""
    out = []
    for c in conversations:
        answers = c.answers()
        liked = {m for m, a in answers.items() if a.get("liked") == 1 and m in mapping.items}
        targets = [m for m in liked if answers[m].get("suggested") == 1]
        if not targets:
            continue
        turns, current, sender = [], [], None
        for message in c.messages:
            if message.sender != c.seeker and set(MENTION.findall(message.text)) & set(targets):
                break
            if message.sender != sender and current:
                turns.append((sender, " ".join(current)))
                current = []
            sender = message.sender
            current.append(_with_titles(message.text, c.mentions))
        else:
            continue  # no recommender message names a target: no context
        if current:
            turns.append((sender, " ".join(current)))
        said = tuple(text for who, text in turns if who == c.seeker and text.strip())
        if said:
            out.append(
                DialogueContext(
                    c.id,
                    said,
                    tuple(mapping.items[m] for m in sorted(targets, key=int)),
                    tuple(mapping.items[m] for m in sorted(liked - set(targets), key=int)),
                )
            )
    return out


def _with_titles(text: str, mentions: dict[str, str]) -> str:
    """ReDial's ``@ID`` mentions written as their titles (no year); unknown ids kept."""
    return MENTION.sub(
        lambda m: split_title(mentions[m.group(1)])[0] if m.group(1) in mentions else m.group(0),
        text,
    )


__all__ = [
    "Conversation",
    "DialogueContext",
    "MentionMap",
    "Message",
    "dialogue_contexts",
    "map_mentions",
    "normal_title",
    "read_redial",
    "split_title",
]
