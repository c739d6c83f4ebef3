"""Language-model baselines for simulated conversations: plain LLM chat and Chat-Rec.

Both follow the episode interface of :mod:`genrec.agents.simulation` (``begin``, ``turn``).

* :class:`LLMChat` (``llm-chat:LMSPEC``): the LM reads the dialogue (and a few titles of the
  user's history) and answers free text, one title a line. Each line is mapped to the catalog
  with the fuzzy :class:`~genrec.agents.titles.TitleIndex`; a line that matches no title is an
  out-of-catalog recommendation (``TurnResult.unmatched``, counted in ``out_of_catalog_rate``).
* :class:`ChatRec` (``chatrec:MODEL``, after Chat-Rec): the conversational
  :class:`~genrec.agents.Agent` with rule understanding retrieves :data:`RETRIEVED` candidates
  from the history and the dialogue's constraints, ranked by MODEL; the LM picks and orders the
  ones to show by their letters. A pick that names no candidate (an unknown letter) is dropped
  and counted as out-of-catalog; repeated picks are dropped.

Titles and utterances enter prompts quoted (:func:`genrec.text.prompts.quote`): data, never
instructions.
"""

from __future__ import annotations

import re
import string

from genrec.agents.simulation import SHOWN, Episode, TurnResult
from genrec.agents.titles import TitleIndex
from genrec.text.prompts import natural_title, quote

RETRIEVED = 20
HISTORY_TITLES = 10
DIALOGUE_LINES = 6  # the latest user and recommender lines an LLMChat prompt keeps
LETTERS = string.ascii_uppercase[:RETRIEVED]


class LLMChat:
    """Plain LLM chat: free-text titles mapped onto the catalog (see the module doc)."""

    def __init__(self, name: str, lm, data, *, max_new_tokens: int = 96):
        self.name, self.lm, self.data = name, lm, data
        self.titles, self.max_new_tokens = TitleIndex(data.catalog), max_new_tokens
        self._dialogue: dict[str, list[str]] = {}
        self._history: dict[str, list[int]] = {}

    def begin(self, episode_id: str, episode: Episode) -> None:
        self._dialogue[episode_id] = []
        self._history[episode_id] = list(episode.history)

    def prompt(self, episode_id: str) -> str:
        liked = self._history[episode_id][-HISTORY_TITLES:]
        seen = "\n".join(f"- {quote(self.titles.titles[i])}" for i in liked) or "(none)"
        return (
            f"You recommend movies. The user has watched:\n{seen}\n\n"
            + "\n".join(self._dialogue[episode_id][-DIALOGUE_LINES:])
            + f"\nRecommend {SHOWN} movies for the user's last message. Write only the titles, "
            "one per line.\nRecommender:\n"
        )

    def turn(self, episode_id: str, text: str) -> TurnResult:
        self._dialogue[episode_id].append("User: " + quote(text))
        prompt = self.prompt(episode_id)
        answer = self.lm.generate([prompt], max_new_tokens=self.max_new_tokens)[0]
        items, unmatched = self.map_titles(answer)
        self._dialogue[episode_id].append(
            "Recommender: " + "; ".join(natural_title(self.titles.titles[i]) for i in items)
        )
        tokens = self.lm.count_tokens(prompt) + self.lm.count_tokens(answer)
        return TurnResult(
            items,
            items,
            answer,
            plan={"lm_calls": 1, "tokens": tokens},
            unmatched=unmatched,
        )

    def map_titles(self, answer: str) -> tuple[list[int], int]:
        """``(items, unmatched)``: the catalog items the answer's lines name (first
        :data:`~genrec.agents.simulation.SHOWN`, no repeats) and how many lines named none."""
        items, unmatched = [], 0
        for line in answer.splitlines():
            title = _strip_bullet(line)
            if not title:
                continue
            if len(items) + unmatched >= SHOWN:
                break
            hits = self.titles.search(title, limit=1)
            if not hits:
                unmatched += 1
            elif hits[0] not in items:
                items.append(hits[0])
        return items, unmatched


class ChatRec:
    """Retrieve :data:`RETRIEVED` with a ranker, the LM selects (see the module doc).

    Args:
        retriever: an :class:`~genrec.agents.Agent` (rule understanding) showing ``RETRIEVED``
            items a turn.
    """

    def __init__(self, name: str, lm, retriever, *, max_new_tokens: int = 60):
        self.name, self.lm, self.retriever = name, lm, retriever
        self.titles = retriever.tools.titles
        self.max_new_tokens = max_new_tokens
        self._dialogue: dict[str, list[str]] = {}

    def begin(self, episode_id: str, episode: Episode) -> None:
        self.retriever.start(episode_id, history=episode.history)
        self._dialogue[episode_id] = []

    def prompt(self, episode_id: str, candidates: list[int]) -> str:
        listed = "\n".join(
            f"{LETTERS[n]}. {quote(self.titles.titles[i])}" for n, i in enumerate(candidates)
        )
        return (
            "You recommend movies from a candidate list.\n"
            + "\n".join(self._dialogue[episode_id])
            + f"\nCandidates:\n{listed}\n\nChoose the {SHOWN} candidates that best fit the "
            "user's messages, best first. Answer with their letters only, separated by "
            "commas.\nAnswer:"
        )

    def turn(self, episode_id: str, text: str) -> TurnResult:
        self._dialogue[episode_id].append("User: " + quote(text))
        candidates = self.retriever.respond(episode_id, text).items[:RETRIEVED]
        prompt = self.prompt(episode_id, candidates)
        answer = self.lm.generate([prompt], max_new_tokens=self.max_new_tokens)[0]
        items, invalid = pick(answer, candidates)
        tokens = self.lm.count_tokens(prompt) + self.lm.count_tokens(answer)
        return TurnResult(
            items,
            items,
            answer,
            plan={"lm_calls": 1, "tokens": tokens, "candidates": len(candidates)},
            unmatched=invalid,
        )


def pick(answer: str, candidates: list[int]) -> tuple[list[int], int]:
    """``(items, invalid)``: the candidates the answer's first non-empty line names by letter
    (``B``) or 1-based number (``2``), in its order, at most :data:`~genrec.agents.simulation.SHOWN`, repeats
    dropped; ``invalid`` counts the picks that name no candidate.

    >>> pick("B, A, Z, B, 3", [10, 11, 12])
    ([11, 10, 12], 1)
    """
    items, invalid = [], 0
    line = next((x for x in answer.splitlines() if x.strip()), "")
    for token in re.findall(r"\b(?:[A-Z]|\d{1,3})\b", line):
        if len(items) + invalid >= SHOWN:
            break
        n = int(token) - 1 if token.isdigit() else ord(token) - ord("A")
        if not 0 <= n < len(candidates):
            invalid += 1
        elif candidates[n] not in items:
            items.append(candidates[n])
    return items, invalid


def _strip_bullet(line: str) -> str:
    """A title line without its list marker ("1.", "-", "*") and quotes."""
    return re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip().strip("\"'").strip()
