"""What a user liked: the dataset's positive threshold (set by the loaders of rated data, kept by
subsets and filters) and UserHistory, which explanations cite and faithfulness checks."""

import numpy as np
import pytest

from genrec.data import (
    Dataset,
    ItemCatalog,
    UserHistory,
    Vocabulary,
    filter_rating,
    k_core,
    load_movielens,
    load_recbole_atomic,
    load_table,
)
from genrec.data.dataset import STARS_LIKED
from genrec.errors import DataError


def rated(threshold=4.0):
    # user u: a (5 stars, t=30), b (2, t=10), c (4, t=20), then b again (4, t=40); user v: a (1)
    return Dataset.from_interactions(
        ["u", "u", "u", "u", "v"],
        ["a", "b", "c", "b", "a"],
        [5, 2, 4, 4, 1],
        [30, 10, 20, 40, 5],
        positive_threshold=threshold,
    )


def test_history_of_a_user_knows_what_they_liked():
    data = rated()
    a, b, c = data.items.index(["a", "b", "c"]).tolist()
    u, v = data.users.index(["u", "v"]).tolist()
    history = UserHistory.of(data, u)
    # oldest first by latest position; a repeated item keeps its latest rating (b: 2 then 4)
    assert history.items == (c, a, b) and history.values == (4.0, 5.0, 4.0)
    assert history.liked == (c, a, b) and history.rated
    assert UserHistory.of(data, v).liked == () and UserHistory.of(data, v).has(a)
    strict = UserHistory.of(rated(threshold=5.0), u)
    assert strict.liked == (a,) and not strict.likes(c) and strict.has(c)


def test_without_a_threshold_every_interaction_is_a_positive():
    data = rated(threshold=None)
    history = UserHistory.of(data, 0)
    assert not history.rated and history.liked == history.items
    assert UserHistory.coerce([3, 1]) == UserHistory((3, 1)) and UserHistory((3, 1)).likes(1)
    assert UserHistory.coerce(history) is history


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"items": (1, 2), "values": (5.0,)}, "one value per item"),
        ({"items": (1,), "positive_threshold": 4.0}, "needs the user's values"),
        ({"items": (1,), "values": (5.0,), "positive_threshold": "4"}, "finite number"),
        ({"items": (1,), "values": (5.0,), "positive_threshold": float("nan")}, "finite number"),
    ],
)
def test_bad_histories_say_how_to_fix_them(kwargs, match):
    with pytest.raises(DataError, match=match):
        UserHistory(**kwargs)


def test_bad_threshold_and_user():
    with pytest.raises(DataError, match="positive_threshold must be a finite number"):
        rated(threshold=True)
    with pytest.raises(DataError, match="outside 0..1"):
        UserHistory.of(rated(), 2)


def test_subsets_and_filters_keep_the_threshold():
    data = rated()
    assert data.subset([0, 1]).positive_threshold == 4.0
    assert data.concat(data.subset([2])).positive_threshold == 4.0
    assert filter_rating(data, 2).positive_threshold == 4.0
    assert k_core(data, user_k=1, item_k=1).positive_threshold == 4.0


def test_loaders_of_star_ratings_set_four_stars(tmp_path):
    assert STARS_LIKED == 4.0
    (tmp_path / "u.data").write_text("1\t2\t4\t10\n1\t3\t2\t11\n")
    data = load_movielens(tmp_path)
    assert data.positive_threshold == 4.0
    assert UserHistory.of(data, 0).liked == (int(data.items.index(["2"])[0]),)
    inter = tmp_path / "rb" / "x.inter"
    inter.parent.mkdir()
    inter.write_text("user_id:token\titem_id:token\trating:float\n1\t2\t5\n")
    assert load_recbole_atomic(inter).positive_threshold is None  # scale unknown: say so
    assert load_recbole_atomic(inter, positive_threshold=3.0).positive_threshold == 3.0
    (tmp_path / "ml-rb").mkdir()
    (tmp_path / "ml-rb" / "ml-100k.inter").write_text(inter.read_text())
    assert load_movielens(tmp_path / "ml-rb").positive_threshold == 4.0
    log = tmp_path / "log.csv"
    log.write_text("u,i,r\n1,2,5\n")
    assert load_table(log, user="u", item="i").positive_threshold is None
    assert (
        load_table(log, user="u", item="i", rating="r", positive_threshold=4).positive_threshold
        == 4.0
    )
    with pytest.raises(DataError, match="needs ratings"):
        load_table(log, user="u", item="i", positive_threshold=4)


def test_catalog_genres_and_year():
    catalog = ItemCatalog(
        Vocabulary(["1", "2", "3"], kind="item"),
        {
            "title": ["A", "B", "C"],
            "year": [1995.0, np.nan, None],
            "genres": [("Comedy", "unknown"), None, ("(no genres listed)",)],
        },
    )
    assert [catalog.genres(i) for i in range(3)] == [("Comedy",), (), ()]
    assert [catalog.year(i) for i in range(3)] == [1995, None, None]
    bare = ItemCatalog(Vocabulary(["1"], kind="item"), {"title": ["A"]})
    assert bare.genres(0) == () and bare.year(0) is None
