"""The leak guard: long titles by fuzzy partial ratio, short ones only as whole words."""

import pytest
from rapidfuzz import fuzz, utils

from genrec.agents.simulator import LEAK_RATIO, SHORT_TITLE, LeakGuard, title_forms

INNOCENT = [
    "Something great from the nineties, please.",
    "A heated chase and a cheating partner.",
    "I like a big, loud action film with jaws of steel.",
    "No, nothing with kids in it. A thriller, maybe?",
    "The seventh one looks closer; something older?",
]


@pytest.mark.parametrize("title", ["Heat", "Ran", "Bean", "Rudy", "Fled"])
def test_short_titles_are_not_flagged_by_words_that_merely_share_letters(title):
    guard = LeakGuard(title)
    for text in INNOCENT:
        flagged_before = fuzz.partial_ratio(
            utils.default_process(title), utils.default_process(text)
        )
        assert not guard.leaks(text), (title, text, flagged_before)
    # the plain partial ratio flagged at least one of them: the length-aware rule is the fix
    if title in ("Heat", "Ran", "Bean"):
        ratios = [
            fuzz.partial_ratio(utils.default_process(title), utils.default_process(t))
            for t in INNOCENT
        ]
        assert max(ratios) >= LEAK_RATIO


@pytest.mark.parametrize(
    ("title", "text"),
    [
        ("Heat", "Do you have Heat?"),
        ("Jaws", "Something like jaws, with a shark"),
        ("Ran", "I want Ran, by Kurosawa."),
        ("Seven (Se7en)", "have you got se7en"),
        ("Seven (Se7en)", "the movie seven"),
    ],
)
def test_short_titles_said_as_words_leak(title, text):
    assert LeakGuard(title).leaks(text)


def test_long_titles_keep_the_fuzzy_rule():
    guard = LeakGuard("Godfather, The")
    assert title_forms("Godfather, The") == ["the godfather"]
    assert guard.leaks("Have you seen the godfater?")  # misspelled: still a leak
    assert guard.leaks("something like godfather")  # partial
    assert not guard.leaks("A crime drama from the seventies.")
    assert len("the godfather") >= SHORT_TITLE


def test_each_form_of_a_title_is_checked():
    assert title_forms("Nikita (La Femme Nikita)") == ["nikita", "la femme nikita"]
    guard = LeakGuard("Nikita (La Femme Nikita)")
    assert guard.leaks("la femme nikita please") and guard.leaks("is nikita there")
    assert not guard.leaks("a French action thriller about an assassin")
    assert LeakGuard("").ratio("anything") == 0.0
