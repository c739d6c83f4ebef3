"""Faithfulness of explanations, on known answers: claims about the item (years, decades,
genres) and about the user (liked / watched / named items) checked against the catalog and the
user's rated history."""

import pytest

from genrec.data import ItemCatalog, UserHistory, Vocabulary
from genrec.errors import ConfigError
from genrec.evaluation.faithfulness import CLAIM_KINDS, faithfulness, summarize_faithfulness

TITLES = [
    "Toy Story",
    "Heat",
    "Casper",
    "Godfather, The",
    "Alien",
    "Sabrina",
    "Sabrina",
    "Mr. Holland's Opus",
    "Men in Black",
]
YEARS = [1995.0, 1995.0, 1995.0, 1972.0, 1979.0, 1954.0, 1995.0, 1995.0, 1997.0]
GENRES = [
    ("Animation", "Children's", "Comedy"),
    ("Action", "Crime", "Thriller"),
    ("Children's", "Comedy"),
    ("Crime", "Drama"),
    ("Horror", "Sci-Fi"),
    ("Comedy", "Romance"),
    ("unknown",),
    ("Drama",),
    ("Action", "Comedy", "Sci-Fi"),
]


@pytest.fixture
def catalog():
    return ItemCatalog(
        Vocabulary([str(i) for i in range(len(TITLES))], kind="item"),
        {"title": TITLES, "year": YEARS, "genres": GENRES},
    )


def claims(report):
    return [(c.kind, c.value, c.true) for c in report.claims]


def rated(pairs, threshold=4.0):
    """A rated history from (item, rating) pairs, oldest first."""
    return UserHistory(tuple(i for i, _ in pairs), tuple(float(r) for _, r in pairs), threshold)


# ---- claims about the item ------------------------------------------------------------------
def test_wrong_year_and_genre_are_unfaithful(catalog):
    assert claims(faithfulness("Heat is a 1995 crime thriller.", 1, catalog)) == [
        ("year", "1995", True),
        ("genre", "Crime", True),
        ("genre", "Thriller", True),
    ]
    r = faithfulness("Heat is a 1987 romantic comedy.", 1, catalog)
    assert claims(r) == [
        ("year", "1987", False),
        ("genre", "Romance", False),
        ("genre", "Comedy", False),
    ]
    assert r.share == 0.0
    # decades, plurals and aliases
    assert claims(faithfulness("A '90s classic for fans of thrillers.", 1, catalog)) == [
        ("decade", "1990s", True),
        ("genre", "Thriller", True),
    ]
    assert claims(faithfulness("A 1980s gem of science fiction.", 4, catalog)) == [
        ("decade", "1980s", False),
        ("genre", "Sci-Fi", True),
    ]
    assert claims(faithfulness("The 70s were great.", 3, catalog)) == [("decade", "1970s", True)]
    # hyphenated compounds are two claims; a multi-word genre is one
    assert claims(faithfulness("A crime-drama, not a sci-fi film.", 3, catalog)) == [
        ("genre", "Crime", True),
        ("genre", "Drama", True),
        ("genre", "Sci-Fi", False),
    ]


def test_no_checkable_fact_is_counted_separately(catalog):
    r = faithfulness("You will love it, trust me!", 1, catalog)
    assert r.claims == () and r.share is None
    good = faithfulness("A 1995 action film.", 1, catalog)
    bad = faithfulness("A 1990 action film.", 1, catalog)
    summary = summarize_faithfulness([r, good, bad])
    assert summary["no_fact"] == pytest.approx(1 / 3)
    assert summary["faithful"] == pytest.approx(1 / 3)  # the fact-free one is not faithful
    assert summary["claim_share"] == pytest.approx(3 / 4)
    assert summary["mean_share"] == pytest.approx((1 + 0.5) / 2)
    assert summary["false_year"] == pytest.approx(1 / 3)
    assert {f"false_{k}" for k in CLAIM_KINDS} <= set(summary)
    with pytest.raises(ConfigError, match="at least one"):
        summarize_faithfulness([])


# ---- claims about the user ------------------------------------------------------------------
def test_liked_means_rated_at_the_threshold(catalog):
    """The reported failure: "Because you liked Men in Black" for a film the user rated 2/5."""
    history = rated([(8, 2), (0, 5), (1, 4)])
    r = faithfulness(
        "Because you liked Men in Black, you may enjoy Casper.", 2, catalog, history=history
    )
    assert claims(r) == [("liked", "8", False)] and r.share == 0.0
    # rated 4 and 5: liked; the threshold is inclusive
    r = faithfulness(
        "Because you liked Toy Story and Heat, try Casper.", 2, catalog, history=history
    )
    assert claims(r) == [("liked", "0", True), ("liked", "1", True)]
    # a stricter threshold moves the same claim
    r = faithfulness("You loved Heat.", 2, catalog, history=rated([(1, 4)], threshold=5.0))
    assert claims(r) == [("liked", "1", False)]
    # the verb after the title counts too, and so do other like-verbs
    r = faithfulness(
        'Casper is a comedy, like "Men in Black", which you enjoyed.', 2, catalog, history=history
    )
    assert claims(r) == [("genre", "Comedy", True), ("liked", "8", False)]
    r = faithfulness("You have really enjoyed Toy Story.", 2, catalog, history=history)
    assert claims(r) == [("liked", "0", True)]
    # the user as "this fan" (the prompt's word), present tense, "a fan of"
    r = faithfulness(
        'This fan is a fan of "Toy Story" and enjoys "Men in Black".', 2, catalog, history=history
    )
    assert claims(r) == [("liked", "0", True), ("liked", "8", False)]
    r = faithfulness("If you love Men in Black, you'll like Casper.", 2, catalog, history=history)
    assert claims(r) == [("liked", "8", False)]


def test_watched_and_named_items_need_only_an_interaction(catalog):
    history = rated([(8, 2), (0, 5)])
    # the user did watch Men in Black (rating 2): "watched" and "rated" are true
    r = faithfulness("You watched Men in Black and rated Toy Story.", 2, catalog, history=history)
    assert claims(r) == [("seen", "8", True), ("seen", "0", True)]
    # a fabricated claim about the user: they never saw Alien
    r = faithfulness("Since you saw Alien, try Casper.", 2, catalog, history=history)
    assert claims(r) == [("seen", "4", False)]
    r = faithfulness("Since you liked Alien, try Casper.", 2, catalog, history=history)
    assert claims(r) == [("liked", "4", False)]
    # named without a verb about the user: must be in the history
    r = faithfulness(
        "Casper is no Alien, but fans of Toy Story will smile.", 2, catalog, history=history
    )
    assert claims(r) == [("title", "4", False), ("title", "0", True)]
    # "you may enjoy" is not a claim about the past: the title is only named
    r = faithfulness(
        "Because you watched Toy Story, you may enjoy Alien.", 2, catalog, history=history
    )
    assert claims(r) == [("seen", "0", True), ("title", "4", False)]
    summary = summarize_faithfulness([r])
    assert summary["false_title"] == 1.0 and summary["false_seen"] == 0.0


def test_implicit_feedback_likes_every_interaction(catalog):
    """Without ratings (a plain id list, or no threshold) an interaction is a positive."""
    for history in ([8, 0], UserHistory((8, 0))):
        r = faithfulness("You liked Men in Black and watched Alien.", 2, catalog, history=history)
        assert claims(r) == [("liked", "8", True), ("seen", "4", False)]


def test_titles_and_history_claims(catalog):
    history = [0, 3]
    text = "Since you liked Toy Story and Alien, try Casper."
    r = faithfulness(text, 2, catalog, history=history)
    assert [(c.kind, c.text, c.true) for c in r.claims] == [
        ("liked", "Toy Story", True),
        ("liked", "Alien", False),
    ]
    # without a history claims about the user are not checked
    assert faithfulness("Since you liked Toy Story, try Casper.", 2, catalog).claims == ()
    # "The Godfather" is found in its natural form; its year and genre (true of the history item
    # named in the same sentence) count as true, but not in another sentence
    text = "You liked The Godfather, a 1972 drama. Casper is a 1972 drama too."
    r = faithfulness(text, 2, catalog, history=history)
    assert claims(r) == [
        ("liked", "3", True),
        ("year", "1972", True),
        ("genre", "Drama", True),
        ("year", "1972", False),
        ("genre", "Drama", False),
    ]
    # a one-word title starting a sentence is an ordinary word; inside a title, genre words and
    # years are not claims
    assert faithfulness("Heat waves aside, it is fun.", 2, catalog, history=history).claims == ()
    # the dot inside a title does not end the sentence that names it
    r = faithfulness("You liked Mr. Holland's Opus, a 1995 drama.", 4, catalog, history=[7])
    assert claims(r) == [("liked", "7", True), ("year", "1995", True), ("genre", "Drama", True)]
    # titles shared by two items: true if the user has (liked) either
    assert faithfulness("You liked Sabrina.", 1, catalog, history=[6]).share == 1.0
    assert (
        faithfulness("You liked Sabrina.", 1, catalog, history=rated([(5, 1), (6, 5)])).share == 1.0
    )
    assert (
        faithfulness("You liked Sabrina.", 1, catalog, history=rated([(5, 1), (6, 3)])).share == 0.0
    )
