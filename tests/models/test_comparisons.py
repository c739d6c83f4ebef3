"""Pairwise (PRP) and setwise reranking: the judge's order is recovered, position bias cancels,
and the number of LM calls is the documented bound."""

from __future__ import annotations

import re

import numpy as np
import pytest

from genrec.data.synthetic import planted_clusters
from genrec.errors import ConfigError
from genrec.models import EASE, LLMRecommender
from genrec.models.language.comparisons import pairwise_scores, setwise_scores, setwise_windows
from genrec.options import RunOptions
from genrec.pipelines.two_stage import TwoStage
from genrec.text.lm import FakeLanguageModel

TITLES = [f"Film {k}" for k in range(12)]


def judge(prompt: str, continuation: str) -> tuple[float, int]:
    """Prefers the listed film with the lowest number: log p(letter) = -number."""
    letter = continuation.strip()
    number = re.search(rf'^{letter}\. "Film (\d+)"', prompt, re.MULTILINE).group(1)
    return -float(number), 1


def always_a(prompt: str, continuation: str) -> tuple[float, int]:
    """Pure position bias: the first letter wins whatever it names."""
    return (0.0 if continuation.strip() == "A" else -3.0), 1


def test_all_pairs_recover_the_judges_order_from_any_given_order():
    given = [TITLES[k] for k in np.random.default_rng(0).permutation(8)]
    scores = pairwise_scores(FakeLanguageModel(score_fn=judge), ["Alien"], given, span=7)
    ranked = [given[i] for i in np.argsort(-scores)]
    assert ranked == sorted(given, key=lambda t: int(t.split()[1]))


@pytest.mark.parametrize("n, span", [(20, 1), (20, 3), (5, 10), (1, 1)])
def test_pairwise_asks_each_banded_pair_in_both_orders(n, span):
    lm = FakeLanguageModel(score_fn=judge)
    pairwise_scores(lm, [], TITLES[:n] if n <= 12 else [f"Film {k}" for k in range(n)], span=span)
    span = min(span, n - 1)
    assert len(lm.calls) == 2 * (n * span - span * (span + 1) // 2)


def test_asking_both_orders_cancels_position_bias():
    scores = pairwise_scores(FakeLanguageModel(score_fn=always_a), [], TITLES[:6], span=2)
    np.testing.assert_allclose(scores, 0.0)


def test_setwise_windows_overlap_by_one_and_cover_every_candidate():
    for n in range(1, 30):
        for size in (2, 3, 5, 26):
            windows = setwise_windows(n, size)
            assert sorted({i for w in windows for i in w}) == list(range(n))
            assert all(2 <= len(w) <= size or n == 1 for w in windows)
            assert all(w[-1] == v[0] for w, v in zip(windows, windows[1:]))
    assert len(setwise_windows(20, 5)) == 5
    with pytest.raises(ConfigError, match="set_size must be an integer in 2..26"):
        setwise_windows(10, 1)


def test_setwise_puts_the_judges_favourite_first_with_one_call_per_window():
    lm = FakeLanguageModel(score_fn=judge)
    given = [TITLES[k] for k in (5, 9, 3, 0, 7, 11, 2, 8, 6)]
    scores = setwise_scores(lm, ["Alien"], given, set_size=4)
    assert given[int(np.argmax(scores))] == "Film 0"
    assert len(lm.calls) == len(setwise_windows(9, 4)) == 3


@pytest.mark.parametrize("mode", ["pairwise", "setwise"])
def test_llm_modes_rerank_a_retrievers_shortlist(mode):
    world = planted_clusters(n_users=20, n_items=24, n_clusters=2, seed=0)
    world.data.catalog.columns["title"] = np.array([f"Film {k}" for k in range(24)], object)
    lm = FakeLanguageModel(score_fn=judge)
    llm = LLMRecommender(lm="fake", mode=mode, set_size=3, language_model=lm)
    pipe = TwoStage(n_candidates=6, fusion="none", retriever=EASE(reg=10.0), reranker=llm)
    pipe.fit(world.split.train, options=RunOptions(seed=0, threads=1))
    histories = world.split.history("test").user_item_order[:3]
    lists = pipe.shortlists(histories)
    ids, _ = pipe.recommend(histories, k=1)
    assert ids[:, 0].tolist() == [int(x.candidates.min()) for x in lists]  # Film k = item k
    with pytest.raises(ConfigError, match="set_size"):
        LLMRecommender(lm="fake", mode="setwise", set_size=27)
    with pytest.raises(ConfigError, match="pairwise_span"):
        LLMRecommender(lm="fake", mode="pairwise", pairwise_span=0)
