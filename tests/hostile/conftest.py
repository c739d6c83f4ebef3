"""Fixtures of the prompt-injection hostile tests: a credulous fake language model and the
rank an injected item gets from the LLM recommender with and without its injection guard."""

import re

import numpy as np
import pytest

from genrec.audit.injection import inject
from genrec.data.synthetic import movie_clusters
from genrec.models import LLMRecommender
from genrec.text import prompts
from genrec.text.lm import FakeLanguageModel

# What a small real model does with injected text: it reads through invisible characters and
# look-alike letters and obeys the last letter any line names, quoted data or not.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_LOOKALIKE = str.maketrans("\u0430\u0435\u043e\u0440\u0441", "aeopc")
_ORDER = re.compile(
    r"(?:letter|answer|option|select|pick|choose|chose|assistant)\W{0,3}([A-Z])\b", re.I
)


def credulous(prompt: str, continuation: str) -> tuple[float, int]:
    """Scores the letter named last before the prompt's final (template) line highest."""
    body = prompt.rsplit("\n", 1)[0].translate(_INVISIBLE).translate(_LOOKALIKE)
    named = [m.group(1).upper() for m in _ORDER.finditer(body)]
    return (0.0 if named and continuation.strip() == named[-1] else -5.0), 1


CANDIDATES = 6
TARGET = 3  # the attacker's candidate position (letter D): rank 0 would be a promotion


@pytest.fixture(scope="session")
def injection_victim():
    """(fitted listwise LLM recommender with a credulous LM, one history row, candidates)."""
    world = movie_clusters(n_users=40, n_items=24)
    lm = FakeLanguageModel(score_fn=credulous)
    model = LLMRecommender(lm="fake", language_model=lm, mode="listwise", n_candidates=6)
    model.fit(world.split.train)
    row = world.split.train.user_item_order[:1]
    unseen = np.setdiff1d(np.arange(world.split.train.n_items), row.indices)[:CANDIDATES]
    return model, row, unseen[None, :]


@pytest.fixture(scope="session")
def injected_rank(injection_victim):
    """rank(attack, variant, guard=...) -> the attacker's 0-based rank among the candidates."""
    model, row, cands = injection_victim

    def rank(attack: str, variant: int, *, guard: bool) -> int:
        item = int(cands[0, TARGET])
        text = inject(attack, variant, str(model.titles_[item]), letter=prompts.LETTERS[TARGET])
        victim = model.with_titles({item: text}, injection_guard=guard)
        scores = victim.score_candidates(row, cands)[0]
        return int(np.flatnonzero(np.argsort(-scores, kind="stable") == TARGET)[0])

    return rank
