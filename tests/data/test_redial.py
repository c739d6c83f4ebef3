"""The ReDial loader on a fixture in the raw format: mentions mapped by title and year, and the
dialogue contexts (seeker turns up to the recommendation, liked suggested targets)."""

from pathlib import Path

import numpy as np
import pytest

from genrec.data.dataset import ItemCatalog
from genrec.data.redial import (
    dialogue_contexts,
    map_mentions,
    normal_title,
    read_redial,
    split_title,
)
from genrec.data.vocabulary import Vocabulary
from genrec.errors import DataError

FIXTURE = Path(__file__).parent / "fixtures" / "redial_sample.jsonl"
# MovieLens style: trailing articles, the year in its own column; two decoys (Heat 1986, Aliens)
TITLES = [
    ("Godfather, The", 1972),
    ("Heat", 1986),
    ("Heat", 1995),
    ("Toy Story", 1995),
    ("Jumanji", 1995),
    ("Shining, The", 1980),
    ("Aliens", 1986),
    ("Alien", 1979),
    ("Casablanca", 1942),
]


@pytest.fixture(scope="module")
def catalog():
    return ItemCatalog(
        Vocabulary([str(i) for i in range(len(TITLES))]),
        {
            "title": np.array([t for t, _ in TITLES], dtype=object),
            "year": np.array([y for _, y in TITLES], float),
        },
    )


def test_mentions_map_by_title_and_year(catalog):
    conversations = read_redial(FIXTURE)
    assert [c.id for c in conversations] == ["20001", "20002", "20003", "20004"]
    mapping = map_mentions(conversations, catalog)
    by_title = {m: TITLES[i] for m, i in mapping.items.items()}
    assert by_title == {
        "111": ("Godfather, The", 1972),
        "222": ("Heat", 1995),  # not the 1986 one
        "333": ("Toy Story", 1995),
        "444": ("Jumanji", 1995),
        "666": ("Shining, The", 1980),
        "777": ("Alien", 1979),  # not Aliens
        "888": ("Casablanca", 1942),
    }
    assert mapping.mentions == 8 and mapping.mapped_share == pytest.approx(7 / 8)


def test_contexts_stop_at_the_recommendation_with_liked_suggested_targets(catalog):
    conversations = read_redial(FIXTURE)
    contexts = dialogue_contexts(conversations, map_mentions(conversations, catalog))
    got = {c.conversation_id: c for c in contexts}
    assert sorted(got) == ["20001", "20002", "20003"]  # 20004: nothing liked
    first = got["20001"]
    assert first.seeker_turns == (
        "Hi! I'm looking for a good crime movie I loved The Godfather",
        "Something with a big heist and good actors",
    )
    assert first.targets == (2,) and first.history == (0,)
    assert got["20002"].seeker_turns == ("hi, any family movies?",)
    assert got["20002"].targets == (4,) and got["20002"].history == ()
    # no seeker answers: the recommender's answers are used
    assert got["20003"].targets == (7,) and got["20003"].history == (5,)


def test_titles_and_years_are_split_and_normalised():
    assert split_title("Toy Story  (1995)") == ("Toy Story", 1995)
    assert split_title("Heat") == ("Heat", None)
    assert normal_title("Shining, The") == normal_title("The Shining!") == "the shining"


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="redialdata.github.io"):
        read_redial(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversationId": "1", "messages": []}\n')
    with pytest.raises(DataError, match=r"line 1 lacks .*movieMentions"):
        read_redial(bad)
    bad.write_text("not json\n")
    with pytest.raises(DataError, match="line 1 is not JSON"):
        read_redial(bad)
