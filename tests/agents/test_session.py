"""Session state: memory stays disjoint, constraints replace or accumulate, JSON round-trips."""

from hypothesis import given
from hypothesis import strategies as st

from genrec.agents.session import Condition, Session


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=30))
def test_liked_and_unwanted_stay_disjoint_and_the_latest_word_wins(ops):
    session = Session("s")
    latest = {}
    for like, item in ops:
        session.remember(**({"like": [item]} if like else {"unwanted": [item]}))
        latest[item] = like
    assert not set(session.liked) & set(session.unwanted)
    assert set(session.liked) == {i for i, like in latest.items() if like}
    assert set(session.unwanted) == {i for i, like in latest.items() if not like}


def test_a_new_year_range_replaces_the_old_one_and_genres_accumulate():
    session = Session("s")
    session.set_constraint(Condition("year", "between", [1980, 1989]))
    session.set_constraint(Condition("genre", "has", "Comedy"))
    session.set_constraint(Condition("genre", "has", "Drama"))
    session.set_constraint(Condition("year", "<", 1985))
    assert session.constraints == [
        Condition("genre", "has", "Comedy"),
        Condition("genre", "has", "Drama"),
        Condition("year", "<", 1985),
    ]
    session.set_constraint(Condition("genre", "lacks", "Comedy"))  # the opposite wish replaces it
    assert Condition("genre", "has", "Comedy") not in session.constraints
    assert Condition("genre", "lacks", "Comedy") in session.constraints


def test_a_session_round_trips_through_json_and_an_empty_list_keeps_the_latest():
    session = Session("s", history=[1, 2], liked=[3])
    session.set_constraint(Condition("year", "between", [1990, 1999]))
    session.show([4, 5])
    session.show([])
    again = Session.from_dict(session.to_dict())
    assert again == session
    assert again.last_shown == [4, 5]
