"""Malformed ReDial and transcript files: one DataError/ConfigError line naming the file and the
line, never a traceback, whatever the JSON holds."""

import json

import pytest

from genrec.agents.simulation import read_transcripts, replay
from genrec.data.redial import read_redial
from genrec.errors import ConfigError, DataError

GOOD = {
    "conversationId": "1",
    "initiatorWorkerId": 0,
    "respondentWorkerId": 1,
    "movieMentions": {"7": "Heat (1995)"},
    "messages": [{"messageId": 1, "senderWorkerId": 0, "text": "hi"}],
    "initiatorQuestions": [],
    "respondentQuestions": [],
}


@pytest.mark.parametrize(
    "change",
    [
        {"messages": "not a list of messages"},
        {"messages": [{"text": "no sender"}]},
        {"messages": [{"senderWorkerId": "zero", "text": "x"}]},
        {"movieMentions": ["7", "Heat"]},
        {"initiatorWorkerId": None},
        {"initiatorQuestions": {"7": "liked"}},
    ],
)
def test_a_malformed_conversation_names_its_line(tmp_path, change):
    path = tmp_path / "redial.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, **change}) + "\n")
    with pytest.raises(DataError, match="line 2"):
        read_redial(path)


@pytest.mark.parametrize("line", ["[1, 2]", '"text"', "null", '{"conversationId": 1}'])
def test_a_line_that_is_no_conversation_is_refused(tmp_path, line):
    path = tmp_path / "redial.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DataError, match="line 1"):
        read_redial(path)


@pytest.mark.parametrize(
    "line",
    [
        {"target": 1, "history": [], "turns": [{"no": "user"}]},
        {"target": "x", "history": [], "turns": []},
        {"target": 1, "history": "abc", "turns": []},
        {"target": 1, "history": [], "turns": []},
        {"target": 99, "history": [], "turns": [{"user": "hi"}]},
        {"target": 1, "history": [], "turns": [{"user": "hi"}], "budget": -2},
        {"target": 1, "history": [], "turns": [{"user": "hi"}], "budget": "many"},
        [1, 2, 3],
    ],
)
def test_a_malformed_transcript_line_is_refused(tmp_path, world, line):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises((ConfigError, DataError), match="line 1"):
        replay(read_transcripts(path), {}, catalog=world.data.catalog, n_items=48)


@pytest.fixture(scope="module")
def world():
    from genrec.data.synthetic import movie_clusters

    return movie_clusters()
