"""Faithfulness of an explanation: are the facts it states about the item and the user true?

:func:`faithfulness` extracts the checkable claims of an explanation of recommending ``item``
and checks each one:

* **about the item** — years ("1995") and decades ("'90s", "1990s") against the item's year;
  genre names of the catalog's genre vocabulary (with plurals and a few aliases such as
  "romantic" or "science fiction") against its genres. A year or genre claim is also true when
  it holds for a history item named in the same sentence ("you liked Heat, a 1995 thriller").
* **about the user** — titles of other catalog items, checked against the user's history
  (:class:`~genrec.data.UserHistory`):

  - ``liked``: the title follows "you liked / love / enjoyed ...", "this fan is a fan of ..." or
    precedes "which / that you liked ...": true only when the user liked the item, i.e. rated it
    at or above the dataset's ``positive_threshold`` (for implicit feedback, interacted with
    it);
  - ``seen``: "you watched / saw / have seen / rated / bought / read ..." the title: true when
    the user interacted with the item, whatever the rating;
  - ``title``: any other mention of another item: true when the user interacted with it (an
    explanation has no reason to name an item outside the user's history).

Explanations with no checkable claim are reported as such, never as faithful.

Limits of the claim extractor: titles are matched case-sensitively as written in the catalog or
with a trailing article moved to the front ("Godfather, The" -> "The Godfather"); a one-word
title counts only when it does not start a sentence; the user is "you", "this fan", "the fan",
"the user" or "they" (``USER_SUBJECTS``), and a user claim's verb is the last of
``LIKE_VERBS`` / ``SEEN_VERBS`` after the last such subject before the title in its sentence
(so "you liked X, and Y is ..." also counts Y as liked); negations ("you did not like X") count
as a mention; paraphrased facts ("a film about a heist", "your favourite heist film") are not
checked.

Example:
    >>> from genrec.data import ItemCatalog, UserHistory, Vocabulary
    >>> catalog = ItemCatalog(Vocabulary(["1", "2", "3"], kind="item"), {
    ...     "title": ["Toy Story", "Heat", "Casper"], "year": [1995.0, 1995.0, 1995.0],
    ...     "genres": [("Animation", "Comedy"), ("Action", "Thriller"), ("Comedy",)]})
    >>> report = faithfulness("Casper is a 1987 action comedy.", 2, catalog)
    >>> [(c.kind, c.value, c.true) for c in report.claims]
    [('year', '1987', False), ('genre', 'Action', False), ('genre', 'Comedy', True)]
    >>> rated = UserHistory(items=(0, 1), values=(5.0, 2.0), positive_threshold=4.0)
    >>> report = faithfulness("Because you liked Toy Story and Heat, try Casper.", 2, catalog,
    ...                       history=rated)
    >>> [(c.kind, c.text, c.true) for c in report.claims]
    [('liked', 'Toy Story', True), ('liked', 'Heat', False)]
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genrec.data.history import UserHistory
from genrec.errors import ConfigError
from genrec.text.prompts import natural_title

CLAIM_KINDS = ("year", "decade", "genre", "liked", "seen", "title")
# Extra surface forms of MovieLens genres (plurals are added for every genre automatically).
GENRE_ALIASES = {
    "Sci-Fi": ("science fiction", "sci fi", "scifi"),
    "Children's": ("children",),
    "Romance": ("romantic", "romances"),
    "Animation": ("animated",),
    "Comedy": ("comedic",),
    "Drama": ("dramatic",),
    "Film-Noir": ("film noir", "noir"),
    "Mystery": ("mysteries",),
    "Documentary": ("documentaries",),
}
# Who the user is in an explanation, and the verbs of a claim about them: liking (including
# "is a fan of"), or only having interacted. Present forms count ("you love X" claims a liking).
USER_SUBJECTS = ("you", "this fan", "the fan", "the user", "they")
LIKE_VERBS = (
    "liked",
    "loved",
    "enjoyed",
    "adored",
    "appreciated",
    "likes",
    "loves",
    "enjoys",
    "adores",
    "like",
    "love",
    "enjoy",
    "fan of",
    "fans of",
)
SEEN_VERBS = (
    "watched",
    "watches",
    "watch",
    "saw",
    "seen",
    "rated",
    "reviewed",
    "bought",
    "purchased",
    "ordered",
    "read",
    "played",
    "listened to",
    "chose",
    "picked",
    "tried",
    "visited",
)
_SUBJECT = "|".join(s.replace(" ", r"\s+") for s in USER_SUBJECTS)
_ADVERBS = (
    r"(?:\s+(?:have|had|has|did|do|does|also|really|recently|once|previously|already|"
    r"both|all|just|truly|particularly|especially|clearly|certainly|definitely|greatly|"
    r"so|much))*"
)
_VERB = "|".join(
    re.escape(v).replace(r"\ ", r"\s+")
    for v in sorted(LIKE_VERBS + SEEN_VERBS, key=len, reverse=True)
)
_FAN = r"(?:\s+(?:are|is)|['\u2019]re)(?:\s+a)?(?:\s+(?:big|huge|great|real))?\s+fans?\s+of"
_USER_VERB = rf"(?:{_SUBJECT})(?:['\u2019](?:ve|d))?{_ADVERBS}(?:\s+(?:{_VERB})\b|{_FAN}\b)"
_USER_VERB_BEFORE = re.compile(rf"^{_USER_VERB}", re.I)
_USER_VERB_AFTER = re.compile(
    rf"^[\"'\u201d\u2019]?\s*(?:\([^)]*\)\s*)?,?\s*(?:which|that)\s+"
    rf"{_USER_VERB}",
    re.I,
)
_ANY_VERB = re.compile(rf"\b(?:{_VERB})\b", re.I)
_SUBJECTS = re.compile(rf"\b(?:{_SUBJECT})\b", re.I)
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(s?)(?![\d\w])")
_SHORT_DECADE = re.compile(r"(?<![\w\d])['\u2019]?(\d)0s\b")


@dataclass(frozen=True)
class Claim:
    """A checkable statement found in an explanation.

    Attributes:
        kind: one of ``CLAIM_KINDS``: "year", "decade", "genre" (about the item), "liked",
            "seen", "title" (about the user; see the module doc).
        text: the words as written.
        value: the normalised claim: "1995", "1990s", a catalog genre, or the named item's index.
        true: whether it holds.
    """

    kind: str
    text: str
    value: str
    true: bool


@dataclass(frozen=True)
class Faithfulness:
    """The claims of one explanation, each checked."""

    claims: tuple[Claim, ...]

    @property
    def n_claims(self) -> int:
        return len(self.claims)

    @property
    def n_true(self) -> int:
        return sum(c.true for c in self.claims)

    @property
    def share(self) -> float | None:
        """Share of claims that are true; None when the explanation states no checkable fact."""
        return self.n_true / self.n_claims if self.claims else None


class _ClaimPatterns:
    """Title variants and genre patterns of one catalog (built once per catalog)."""

    def __init__(self, catalog):
        self.titles: dict[str, list[int]] = {}
        for i in range(len(catalog.vocab)):
            raw = str(catalog.title(i)).strip()
            for variant in {raw, natural_title(raw), re.sub(r"\s*\(.*\)$", "", raw)}:
                if len(variant) >= 3:
                    self.titles.setdefault(variant, []).append(i)
        vocabulary = sorted({g for i in range(len(catalog.vocab)) for g in catalog.genres(i)})
        self.genres: list[tuple[str, re.Pattern]] = []
        for g in vocabulary:
            forms = {
                g,
                g + "s",
                g[:-1] + "ies" if g.endswith("y") else g + "s",
                *GENRE_ALIASES.get(g, ()),
            }
            alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
            self.genres.append((g, re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.I)))


_PATTERNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _patterns(catalog) -> _ClaimPatterns:
    if catalog not in _PATTERNS:
        _PATTERNS[catalog] = _ClaimPatterns(catalog)
    return _PATTERNS[catalog]


def _title_spans(text: str, patterns: _ClaimPatterns) -> list[tuple[int, int, list[int]]]:
    """Non-overlapping (start, end, items) of catalog titles in ``text``, longest first."""
    found = []
    for variant, items in patterns.titles.items():
        start = text.find(variant)
        while start >= 0:
            end = start + len(variant)
            bounded = (start == 0 or not text[start - 1].isalnum()) and (
                end == len(text) or not text[end].isalnum()
            )
            sentence_start = not text[:start].strip() or text[:start].rstrip()[-1] in ".!?"
            if bounded and not (" " not in variant and sentence_start):
                found.append((start, end, items))
            start = text.find(variant, start + 1)
    spans: list[tuple[int, int, list[int]]] = []
    for s, e, items in sorted(found, key=lambda x: (x[0] - x[1], x[0])):
        if all(e <= s2 or s >= e2 for s2, e2, _ in spans):
            spans.append((s, e, items))
    return sorted(spans)


def _user_verb(masked: str, start: int, end: int, sentence_start: int) -> str | None:
    """The verb (of ``LIKE_VERBS`` or ``SEEN_VERBS``) the user is the subject of for the title at
    masked[start:end]: the last one of "you VERB ... VERB ..." after the last user subject
    (``USER_SUBJECTS``) before it in its sentence ("you liked X and watched Y": Y was watched),
    or in "which/that you VERB" right after it; None when the title is not the object of such a
    verb."""
    before = masked[sentence_start:start]
    subjects = list(_SUBJECTS.finditer(before))
    if subjects and _USER_VERB_BEFORE.match(clause := before[subjects[-1].start() :]):
        return _verb(_ANY_VERB.findall(clause)[-1])
    if m := _USER_VERB_AFTER.match(masked[end:]):
        return _verb(_ANY_VERB.findall(m.group(0))[-1])
    return None


def _verb(words: str) -> str:
    return " ".join(words.lower().split())


def _user_claim(
    kind_verb: str | None, text: str, items: Sequence[int], history: UserHistory
) -> Claim:
    """The claim a title mention makes about the user, checked against ``history``."""
    if kind_verb in LIKE_VERBS:
        kind, true = "liked", any(history.likes(i) for i in items)
    else:
        kind, true = ("seen" if kind_verb else "title"), any(history.has(i) for i in items)
    return Claim(kind, text, str(items[0]), true)


def faithfulness(
    explanation, item: int, catalog, *, history: UserHistory | Sequence[int] | None = None
) -> Faithfulness:
    """The checkable claims of ``explanation`` (a string, or anything with a ``text``) about
    recommending ``item``, each marked true or false (see the module docstring).

    Args:
        catalog: the :class:`~genrec.data.ItemCatalog` the item indices refer to.
        history: the user's :class:`~genrec.data.UserHistory` (``UserHistory.of(data, user)``;
            a plain sequence of item indices is implicit feedback, so "liked" then means
            "interacted"). Needed to check claims about the user (without it they are skipped);
            it also lets year/genre claims about a history item named in the same sentence
            count.
    """
    text = str(getattr(explanation, "text", explanation))
    item, patterns = int(item), _patterns(catalog)
    history = None if history is None else UserHistory.coerce(history)
    spans = _title_spans(text, patterns)
    masked = list(text)
    for start, end, _ in spans:
        masked[start:end] = " " * (end - start)
    masked = "".join(masked)  # titles blanked: their words, years and dots are not claims
    sentences = [(m.start(), m.end()) for m in re.finditer(r"[^.!?]+(?:[.!?]+|$)", masked)]

    def sentence_of(pos: int) -> int:
        return next((j for j, (s, e) in enumerate(sentences) if s <= pos < e), -1)

    claims: list[tuple[int, Claim]] = []
    mentioned: list[tuple[int, set[int]]] = []  # (position, history items it may name)
    for start, end, items in spans:
        if item in items or history is None:
            continue
        here = sentence_of(start)
        verb = _user_verb(masked, start, end, sentences[here][0] if here >= 0 else 0)
        mentioned.append((start, {i for i in items if history.has(i)}))
        claims.append((start, _user_claim(verb, text[start:end], items, history)))

    def holds(pos: int, check) -> bool:
        if check(item):
            return True
        here = sentence_of(pos)
        return any(check(h) for p, hs in mentioned if sentence_of(p) == here for h in hs)

    claims += _item_claims(text, masked, catalog, patterns, holds)
    return Faithfulness(tuple(c for _, c in sorted(claims, key=lambda x: x[0])))


def _item_claims(
    text: str, masked: str, catalog, patterns: _ClaimPatterns, holds
) -> list[tuple[int, Claim]]:
    """(position, claim) of the years, decades and genres in ``masked`` (titles blanked);
    ``holds(position, check)`` says whether ``check(item)`` is true of the recommended item or a
    history item named in the same sentence."""

    def year_of(i: int) -> str:
        year = catalog.year(i)
        return "" if year is None else str(year)

    claims: list[tuple[int, Claim]] = []
    for m in _YEAR.finditer(masked):
        year, decade = m.group(1), bool(m.group(2))
        if decade:
            ok = holds(m.start(), lambda i, y=year: bool(year_of(i)) and year_of(i)[:3] == y[:3])
            claims.append((m.start(), Claim("decade", m.group(0), year[:3] + "0s", ok)))
        else:
            ok = holds(m.start(), lambda i, y=year: year_of(i) == y)
            claims.append((m.start(), Claim("year", m.group(0), year, ok)))
    for m in _SHORT_DECADE.finditer(masked):
        d = int(m.group(1))
        prefix = f"{'20' if d <= 2 else '19'}{d}"
        ok = holds(m.start(), lambda i, p=prefix: year_of(i)[:3] == p)
        claims.append((m.start(), Claim("decade", m.group(0), prefix + "0s", ok)))
    found = sorted(
        (
            (m.start(), m.end(), genre)
            for genre, pattern in patterns.genres
            for m in pattern.finditer(masked)
        ),
        key=lambda x: (x[0], x[0] - x[1]),
    )
    last_end = -1
    for start, end, genre in found:  # "Film-Noir" is one claim, not also "noir"
        if start < last_end:
            continue
        last_end = end
        ok = holds(start, lambda i, g=genre: g in catalog.genres(i))
        claims.append((start, Claim("genre", text[start:end], genre, ok)))
    return claims


def summarize_faithfulness(reports: Sequence[Faithfulness]) -> dict[str, float]:
    """Aggregate over explanations.

    Returns:
        ``explanations``; ``claim_share`` (true claims / all claims, pooled);
        ``mean_share`` (mean per-explanation share, over explanations with claims);
        ``faithful`` (share of ALL explanations whose claims are all true and that state at
        least one); ``no_fact`` (share that state no checkable fact); ``claims_per_explanation``;
        and ``false_<kind>`` (false claims of each of ``CLAIM_KINDS`` per explanation).

    Raises:
        ConfigError: no reports.
    """
    n = len(reports)
    if not n:
        raise ConfigError(
            "summarize_faithfulness needs at least one report; explain at least "
            "one recommendation first"
        )
    with_claims = [r for r in reports if r.claims]
    claims = [c for r in reports for c in r.claims]
    out = {
        "explanations": n,
        "claim_share": (sum(c.true for c in claims) / len(claims)) if claims else float("nan"),
        "mean_share": (
            float(np.mean([r.share for r in with_claims])) if with_claims else float("nan")
        ),
        "faithful": sum(r.share == 1.0 for r in with_claims) / n,
        "no_fact": (n - len(with_claims)) / n,
        "claims_per_explanation": len(claims) / n,
    }
    for kind in CLAIM_KINDS:
        out[f"false_{kind}"] = sum(c.kind == kind and not c.true for c in claims) / n
    return out


__all__ = [
    "CLAIM_KINDS",
    "Claim",
    "Faithfulness",
    "GENRE_ALIASES",
    "LIKE_VERBS",
    "SEEN_VERBS",
    "USER_SUBJECTS",
    "faithfulness",
    "summarize_faithfulness",
]
