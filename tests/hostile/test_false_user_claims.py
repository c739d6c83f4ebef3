"""Explanations must not state false things about the user, and the faithfulness check must
catch the ones that do.

The template explainer once said "Because you liked Men in Black" to a user who rated it 2 of 5,
and the check called it "100% of stated facts true": "liked" meant any interaction, and claims
about the user were not checked against their ratings. Each case here builds a small rated
dataset end to end (Dataset -> UserHistory.of -> explainer -> faithfulness).
"""

import pytest

from genrec.data import Dataset, UserHistory
from genrec.evaluation.faithfulness import faithfulness
from genrec.pipelines.explain import LMExplainer, TemplateExplainer
from genrec.text.lm import FakeLanguageModel

TITLES = {"m1": "Men in Black", "m2": "Toy Story", "m3": "Heat", "m4": "Casper", "m5": "Alien"}
GENRES = {
    "m1": ("Action", "Comedy"),
    "m2": ("Animation", "Comedy"),
    "m3": ("Action",),
    "m4": ("Comedy",),
    "m5": ("Horror",),
}


def data():
    # user 196: Men in Black 2 stars (shares Comedy with Casper), Toy Story 5, Heat 4; user 7
    # has the other two
    return Dataset.from_interactions(
        ["196", "196", "196", "7", "7"],
        ["m1", "m2", "m3", "m4", "m5"],
        [2, 5, 4, 3, 1],
        [1, 2, 3, 4, 5],
        item_rows={
            "title": list(TITLES.values()),
            "year": [1997.0, 1995.0, 1995.0, 1995.0, 1979.0],
            "genres": list(GENRES.values()),
        },
        item_row_ids=list(TITLES),
        positive_threshold=4.0,
        name="tiny",
    )


def test_template_never_says_a_low_rated_item_was_liked():
    ds = data()
    history = UserHistory.of(ds, int(ds.users.index(["196"])[0]))
    template = TemplateExplainer(ds.catalog)
    for item in range(ds.n_items):
        e = template.explain(history, item)
        assert "Men in Black" not in e.text or item == ds.items.index(["m1"])[0], e.text
        assert faithfulness(e, item, ds.catalog, history=history).share in (1.0, None), e.text


@pytest.mark.parametrize(
    "lie, kind",
    [
        ("Because you liked Men in Black, you may like it.", "liked"),  # rated 2 of 5
        ("Since you loved Alien, you may like it.", "liked"),  # another user's film
        ("You watched Alien, so you may like it.", "seen"),  # never watched
        ("It is a comedy, like Alien.", "title"),  # named, never watched
    ],
)
def test_a_language_model_lying_about_the_user_is_caught(lie, kind):
    ds = data()
    history = UserHistory.of(ds, int(ds.users.index(["196"])[0]))
    casper = int(ds.items.index(["m4"])[0])
    liar = LMExplainer(ds.catalog, FakeLanguageModel(generate_fn=lambda p: " " + lie), lead=False)
    e = liar.explain(history, casper)
    report = faithfulness(e, casper, ds.catalog, history=history)
    false = [c for c in report.claims if not c.true]
    assert [c.kind for c in false] == [kind] and report.share < 1.0
