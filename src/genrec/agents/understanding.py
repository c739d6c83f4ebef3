"""Rule-based language understanding: an utterance -> a tool plan, with no language model.

This is the agent's ``--lm none`` mode: fast, deterministic, a baseline in its own right and the
fallback when an LM planner fails. It recognises

* genres by catalog name or a common synonym ("sci-fi", "funny", "scary"), negated by "no",
  "not", "without", "nothing", "less", "hate" just before them;
* years: "from 1995", "before 1980", "after 1990", "the 80s" / "1980s" / "eighties",
  "something older" / "newer" (relative to the latest list);
* references to the latest list: "not that one", "not the third", "more like the second",
  "why the first?", "tell me about the second";
* questions about one item (answered from its text and reviews): "who directed the first?",
  "is number 3 scary?", 'does "Heat" have a car chase?';
* titles: "like Toy Story", "similar to Heat", "do you have Casablanca?";
* "popular", "start over", "about <words>" (text search);
* plain requests for more: "none of these", "something else", "recommend something".

Item text never reaches this module except as titles to match, so item descriptions cannot
change the plan.
"""

from __future__ import annotations

import re

from genrec.agents.item_table import ItemTable
from genrec.agents.schema import ToolCall
from genrec.agents.session import Session
from genrec.agents.titles import TitleIndex

ORDINALS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "sixth": 6,
    "6th": 6,
    "seventh": 7,
    "7th": 7,
    "eighth": 8,
    "8th": 8,
    "ninth": 9,
    "9th": 9,
    "tenth": 10,
    "10th": 10,
    "last": -1,
}
# word -> catalog genre (matched case-insensitively against the catalog's own names too).
GENRE_SYNONYMS = {
    "sci-fi": "Sci-Fi",
    "scifi": "Sci-Fi",
    "science fiction": "Sci-Fi",
    "funny": "Comedy",
    "comedies": "Comedy",
    "comic": "Comedy",
    "romantic": "Romance",
    "romcom": "Romance",
    "scary": "Horror",
    "horror": "Horror",
    "animated": "Animation",
    "cartoon": "Animation",
    "kids": "Children's",
    "children": "Children's",
    "family": "Children's",
    "noir": "Film-Noir",
    "documentaries": "Documentary",
    "westerns": "Western",
    "thrillers": "Thriller",
    "musicals": "Musical",
    "dramas": "Drama",
    "mysteries": "Mystery",
    "dramatic": "Drama",
    "suspense": "Thriller",
}
VIOLENT = ("Action", "War", "Crime", "Horror")
DECADE_WORDS = {
    "twenties": 1920,
    "thirties": 1930,
    "forties": 1940,
    "fifties": 1950,
    "sixties": 1960,
    "seventies": 1970,
    "eighties": 1980,
    "nineties": 1990,
}
_NEGATION = r"(?:no|not|without|nothing|less|hate|avoid|except|but not|don't want|no more)"
# a plain request for (more) suggestions: recognised, nothing else to do than show a list
_MORE = (
    r"\b(none of (these|them|those)|something else|anything else|other ones|more please|"
    r"show me more|another (one|list)|(recommend|suggest) (me )?(something|a movie|movies))\b"
)
# a question about an item: "who directed the first?", 'is "heat" scary?'
_QUESTION = r"\s*(who|what|when|where|which|how|is|are|does|did|was|has|can)\b"
_ORDINAL = r"(?:the\s+)?(" + "|".join(ORDINALS) + r"|#\d+|number\s+\d+)(?:\s+one)?"


class RuleUnderstanding:
    """Turns an utterance into tool calls by patterns (see the module doc)."""

    name = "rules"

    def __init__(self, table: ItemTable, titles: TitleIndex):
        self.table, self.titles = table, titles
        self.genres = {g.lower(): g for g in table.genre_names}
        for word, genre in GENRE_SYNONYMS.items():
            if genre in table.genre_names:
                self.genres.setdefault(word, genre)

    def plan(self, text: str, session: Session) -> list[ToolCall]:
        """The plan for ``text`` given the session (its latest list, for references): what
        :meth:`parse` recognises, else a plain recommendation."""
        return self.parse(text, session) or [ToolCall("recommend", {"k": 10})]

    def parse(self, text: str, session: Session) -> list[ToolCall]:
        """The calls for what the patterns recognise in ``text``; empty when they recognise
        nothing (an LM planner then takes the turn)."""
        low = " " + re.sub(r"\s+", " ", text.lower()) + " "
        calls: list[ToolCall] = []
        if re.search(r"\b(start over|reset|forget (it|everything))\b", low):
            calls.append(ToolCall("filter", {"reset": True}))
        calls += self._references(low, session)
        conditions = self._genres(low) + self._years(low, session)
        if conditions:
            calls.append(ToolCall("filter", {"add": conditions}))
        if re.search(r"\bpopular\b", low):
            calls.append(ToolCall("rank", {"by": "popularity"}))
        if (
            m := re.search(r"\b(?:about|featuring|with) ([a-z][a-z ]{2,60}?)(?:[.?!,]| $)", low)
        ) and not any(c.tool in ("ask", "explain") for c in calls):
            calls.append(ToolCall("search", {"query": m.group(1).strip()}))
        if not calls and re.search(_MORE, low):
            calls.append(ToolCall("recommend", {"k": 10}))
        return calls

    # ---- references to items ---------------------------------------------------------------
    def _references(self, low: str, session: Session) -> list[ToolCall]:
        shown = len(session.last_shown)
        positions = [self._position(m.group(1), shown) for m in re.finditer(_ORDINAL, low)]
        positions = [p for p in positions if p is not None]
        ref = [{"position": p} for p in positions]
        if re.search(r"\bwhy\b", low) and shown:
            return [ToolCall("explain", {"item": (ref or [{"position": 1}])[0]})]
        if re.search(r"\b(tell me (more )?about|what is|what's|when was|describe)\b", low) and ref:
            return [ToolCall("ask", {"item": ref[0], "question": low.strip()[:200]})]
        if re.match(_QUESTION, low) and not re.search(r"\b(like|similar)\b", low):
            quoted = re.findall(r"[\"“]([^\"”]{2,100})[\"”]", low)
            item = ref[0] if ref else {"title": quoted[0]} if quoted else None
            if item is not None:
                return [ToolCall("ask", {"item": item, "question": low.strip()[:200]})]
        rejected = re.search(
            r"\b(not that one|not (?:the|this)|don'?t (?:like|want)|"
            r"(?:already )?seen (?:it|that)|no to)\b",
            low,
        )
        if rejected and shown:
            return [
                ToolCall("remember", {"unwanted": ref or [{"position": 1}]}),
                ToolCall("recommend", {"k": 10}),
            ]
        liked = re.search(r"\b(more like|like|similar to|loved|liked|enjoyed)\b", low)
        if liked and ref:
            return [ToolCall("remember", {"like": ref}), ToolCall("similar", {"to": ref})]
        titles = self._titles(low)
        if titles and liked:
            refs = [{"title": t} for t in titles]
            return [ToolCall("remember", {"like": refs}), ToolCall("similar", {"to": refs})]
        if titles:
            return [ToolCall("lookup", {"titles": titles})]
        return []

    @staticmethod
    def _position(word: str, shown: int) -> int | None:
        word = word.strip()
        if word in ORDINALS:
            pos = ORDINALS[word]
            return shown if pos == -1 and shown else (pos if pos > 0 else None)
        digits = re.findall(r"\d+", word)
        return int(digits[0]) if digits and 1 <= int(digits[0]) <= 50 else None

    def _titles(self, low: str) -> list[str]:
        quoted = re.findall(r"[\"“]([^\"”]{2,100})[\"”]", low)
        if quoted:
            return quoted[:5]
        m = re.search(
            r"\b(?:like|similar to|loved|liked|enjoyed|do you have|have you got|"
            r"show me)\s+(.{2,100}?)\s*(?:[?.!]|$)",
            low.strip(),
        )
        if m and self.titles.search(m.group(1), limit=1):
            return [m.group(1).strip()]
        return []

    # ---- attributes ------------------------------------------------------------------------
    def _genres(self, low: str) -> list[dict]:
        found = []  # (position in the text, condition)
        for word, genre in self.genres.items():
            for m in re.finditer(rf"(?<![\w-]){re.escape(word)}s?(?![\w-])", low):
                before = low[max(0, m.start() - 25) : m.start()]
                negated = re.search(rf"\b{_NEGATION}\b[\w ,]*$", before)
                found.append(
                    (
                        m.start(),
                        {"column": "genre", "op": "lacks" if negated else "has", "value": genre},
                    )
                )
        if m := re.search(r"\b(less|not so|not too|nothing) violent\b", low):
            found += [
                (m.start(), {"column": "genre", "op": "lacks", "value": g})
                for g in VIOLENT
                if g in self.table.genre_names
            ]
        out = []
        for _, cond in sorted(found, key=lambda pair: pair[0]):
            if cond not in out:
                out.append(cond)
        has = {c["value"] for c in out if c["op"] == "has"}
        return [c for c in out if not (c["op"] == "lacks" and c["value"] in has)]

    def _years(self, low: str, session: Session) -> list[dict]:
        if m := re.search(r"\b(?:(1[89]|20)(\d)0s|'?(\d)0s)\b", low):
            decade = (
                int(m.group(1) + m.group(2) + "0") if m.group(1) else 1900 + int(m.group(3)) * 10
            )
            return [_year("between", [decade, decade + 9])]
        for word, decade in DECADE_WORDS.items():
            if re.search(rf"\b{word}\b", low):
                return [_year("between", [decade, decade + 9])]
        if m := re.search(
            r"\b(before|older than|earlier than|until|prior to)\s+((?:18|19|20)\d\d)\b", low
        ):
            return [_year("<", int(m.group(2)))]
        if m := re.search(r"\b(after|newer than|later than|since)\s+((?:18|19|20)\d\d)\b", low):
            return [_year(">" if m.group(1) != "since" else ">=", int(m.group(2)))]
        if m := re.search(r"\b(?:from|in|of)\s+((?:18|19|20)\d\d)\b", low):
            return [_year("=", int(m.group(1)))]
        years = [y for y in (self.table.years[i] for i in session.last_shown) if y == y]
        if years and re.search(r"\b(older|old(er)? ones?|earlier|classic)\b", low):
            return [_year("<", int(sorted(years)[len(years) // 2]))]
        if years and re.search(r"\b(newer|more recent|recent|later)\b", low):
            return [_year(">", int(sorted(years)[len(years) // 2]))]
        return []


def _year(op: str, value) -> dict:
    return {"column": "year", "op": op, "value": value}
