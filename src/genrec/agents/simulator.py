"""Simulated users: a seeker who wants one held-out item and talks about its attributes only.

:class:`RuleSimulator` is deterministic and needs no language model. It is built from a
:class:`TargetProfile` (the target's genres, decade and a few description words) and never
receives the title, so it cannot say it. Each turn it reveals at most two attributes it has not revealed yet (the one the
agent asked about first), and once all are out it critiques the list: "something older" /
"newer" when the list sits in the wrong decades, "more like the N-th one" for the shown item
closest to the target, else a plain refusal. Accepting is not the simulator's call: the episode
runner checks the target's id against the shown list.

:class:`LLMSimulator` words the same turns with a language model (any
:class:`~genrec.text.lm.LanguageModel`): its prompt holds the profile, the gist of this turn (the rule simulator's utterance: what to
reveal or critique) and the last turns of the dialogue, never the title. A :class:`LeakGuard`
(the only object that knows the title) checks every utterance: while rapidfuzz's
``partial_ratio`` of the title against it is :data:`LEAK_RATIO` or more (a title shorter than
:data:`SHORT_TITLE` characters: while the utterance holds it as whole words), the utterance is
regenerated (``retries`` times, at a higher temperature; an empty answer is retried too), then
replaced by the rule simulator's. Its counts (``regenerated``, ``fallbacks``) feed the leak rate of a simulation; the
episode runner checks every utterance said with the same guard (a leak that slipped through).

Example:
    >>> sim = RuleSimulator(TargetProfile(genres=("Comedy", "Romance"), year=1994))
    >>> sim.opening()
    'I am looking for a comedy and romance movie.'
    >>> sim.reply([], question=None)
    'Not these. Something from the 1990s.'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, utils

from genrec.text.prompts import natural_title

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
LEAK_RATIO = 60.0  # rapidfuzz partial_ratio (0-100) of the title at which an utterance leaks it
KEYWORDS = 4  # description words a profile keeps
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have he her his in is it its of on or she that the "
    "their they this to was were who with when where which while after before into about".split()
)


@dataclass(frozen=True)
class TargetProfile:
    """What the simulated user knows about the item they want: no title, no id."""

    genres: tuple[str, ...]
    year: int | None
    keywords: tuple[str, ...] = ()

    @property
    def decade(self) -> int | None:
        return None if self.year is None else self.year // 10 * 10

    @classmethod
    def of(cls, catalog, item: int) -> TargetProfile:
        """The profile of catalog item ``item``: genres, year and up to :data:`KEYWORDS` words
        of its description that are not words of its title."""
        return cls(
            tuple(catalog.genres(item)), catalog.year(item), description_words(catalog, item)
        )


def description_words(catalog, item: int, n: int = KEYWORDS) -> tuple[str, ...]:
    """The first ``n`` distinct content words (4+ letters, no stopword, not in the title) of the
    item's ``description`` column; () without one."""
    if "description" not in catalog.columns:
        return ()
    text = catalog.columns["description"][item]
    if not isinstance(text, str):
        return ()
    title = set(re.findall(r"\w+", catalog.title(item).lower()))
    words = [w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _STOPWORDS | title]
    return tuple(dict.fromkeys(words))[:n]


class LeakGuard:
    """Knows the target's title, and only says whether a text gives it away.

    A title is checked in each of its forms (``"Seven (Se7en)"``: "Seven" and "Se7en";
    ``"Godfather, The"``: "The Godfather"), lower-cased without punctuation. A form of at least
    :data:`SHORT_TITLE` characters leaks when rapidfuzz's ``partial_ratio`` against the text is
    ``threshold`` or more (InteRecAgent's rule: it catches misspelled and partial titles). A
    shorter form leaks only when the text holds it as whole words: ``partial_ratio`` compares
    the form with its best-matching window of the text, and for a four-letter title any word
    sharing three letters reaches 75 ("Heat" in "a great film"), so most utterances about any
    film would count as leaks.

    >>> LeakGuard("Toy Story").leaks("I want a toy story, for kids")
    True
    >>> LeakGuard("Toy Story").leaks("An animated comedy from the 1990s.")
    False
    >>> LeakGuard("Heat").leaks("Something great, with a heated chase"), LeakGuard("Heat").leaks("Heat!")
    (False, True)
    """

    def __init__(self, title: str, threshold: float = LEAK_RATIO):
        self.threshold = threshold
        self._forms = title_forms(title)

    def ratio(self, text: str) -> float:
        """How much ``text`` gives the title away (0-100): the largest over the title's forms
        of ``partial_ratio`` (long forms), or 100/0 for a short form held as whole words or
        not."""
        text = utils.default_process(str(text))
        return max((_form_ratio(form, text) for form in self._forms), default=0.0)

    def leaks(self, text: str) -> bool:
        return self.ratio(text) >= self.threshold


SHORT_TITLE = 8  # characters (after processing) below which a title form must match whole words


def title_forms(title: str) -> list[str]:
    """The processed forms of ``title``: the title outside parentheses and each parenthesised
    alternative, articles moved to the front ("Godfather, The" -> "the godfather")."""
    title = str(title)
    parts = [re.sub(r"\([^)]*\)", " ", title)] + re.findall(r"\(([^)]*)\)", title)
    forms = [utils.default_process(natural_title(p.strip())) for p in parts]
    return [f for f in dict.fromkeys(forms) if f and not re.fullmatch(r"\d{4}", f)]


def _form_ratio(form: str, text: str) -> float:
    if len(form) >= SHORT_TITLE:
        return float(fuzz.partial_ratio(form, text))
    return 100.0 if re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text) else 0.0


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

    def reply(self, shown: Sequence[int], *, question: str | None, agent_text: str = "") -> str:
        """The answer to a list that missed the target (and to the agent's question, if any;
        the reply's words ``agent_text`` are not read)."""
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


def profile_text(profile: TargetProfile) -> str:
    """The profile as one line of a prompt (no title: the profile has none)."""
    parts = [f"genres: {', '.join(profile.genres) or 'unknown'}"]
    if profile.decade is not None:
        parts.append(f"from the {profile.decade}s")
    if profile.keywords:
        parts.append(f"it involves: {', '.join(profile.keywords)}")
    return "; ".join(parts)


SEEKER_PROMPT = (
    "You are a person chatting with a movie recommender to find one movie you have in mind. "
    "What you know about it: {profile}. Never say a movie title.\n{dialogue}\n"
    "Write your next message to the recommender: one short sentence in your own words that "
    "says this: {gist}\nYou:"
)


def clean_utterance(text: str) -> str:
    """A generated message without a speaker label, surrounding quotes or extra lines."""
    text = next((line for line in text.splitlines() if line.strip()), "").strip()
    text = re.sub(r"^(?:you|user|me)\s*:\s*", "", text, flags=re.IGNORECASE)
    return text.strip().strip('"').strip()


@dataclass
class LLMSimulator:
    """A seeker whose words come from a language model (see the module doc).

    Args:
        target: the wanted item's profile (the prompt sees this, never the title).
        lm: a :class:`~genrec.text.lm.LanguageModel`.
        guard: the leak guard for the target's title.
        describe_item: as for :class:`RuleSimulator` (its fallback utterances).
        retries: regenerations of a leaking utterance before the rule utterance is used.
        seed: the first generation's seed (each retry adds one).
    """

    target: TargetProfile
    lm: object
    guard: LeakGuard
    describe_item: Callable[[int], tuple[tuple[str, ...], int | None]] | None = None
    retries: int = 2
    seed: int = 0
    max_new_tokens: int = 40
    rules: RuleSimulator = field(init=False)
    regenerated: int = 0
    fallbacks: int = 0
    lm_calls: int = 0
    rejected: list[str] = field(default_factory=list)  # the generations the guard flagged
    prompts: list[str] = field(default_factory=list)
    _dialogue: list[str] = field(default_factory=list)

    name = "llm"

    def __post_init__(self):
        self.rules = RuleSimulator(self.target, self.describe_item)

    @property
    def revealed_per_turn(self) -> list[list[tuple[str, object]]]:
        return self.rules.revealed_per_turn

    def opening(self) -> str:
        return self._say(self.rules.opening())

    def reply(self, shown: Sequence[int], *, question: str | None, agent_text: str = "") -> str:
        """The answer to the agent's reply ``agent_text`` that showed ``shown``."""
        if agent_text:
            self._dialogue.append("Recommender: " + " ".join(agent_text.split())[:600])
        return self._say(self.rules.reply(shown, question=question))

    def _say(self, rule_text: str) -> str:
        prompt = SEEKER_PROMPT.format(
            profile=profile_text(self.target),
            dialogue="\n".join(self._dialogue[-4:]),
            gist=rule_text,
        )
        self.prompts.append(prompt)
        text = ""
        for attempt in range(self.retries + 1):
            text = self.lm.generate(
                [prompt],
                max_new_tokens=self.max_new_tokens,
                temperature=0.0 if attempt == 0 else 0.7,
                stop=("\n",),
                seed=self.seed + attempt,
            )[0]
            text = clean_utterance(text)
            self.lm_calls += 1
            if text and not self.guard.leaks(text):
                break
            if text:
                self.regenerated += 1
                self.rejected.append(text)
        else:
            self.fallbacks += 1
            text = rule_text
        self._dialogue.append("You: " + text)
        return text
