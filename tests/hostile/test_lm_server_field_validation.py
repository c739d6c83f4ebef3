"""serve-lm validates every field of a request: a wrong type, a value out of range, an unknown
field, a missing prompt or messages, or an unsupported OpenAI option gets a 400 whose message
and ``param`` name the field; the model is never called."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient

from genrec.serving.lm_server import create_app
from genrec.text.lm import FakeLanguageModel

COMPLETION_CASES = [
    ({}, "prompt"),
    ({"max_tokens": 4}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"prompt": [1, 2]}, "prompt"),
    ({"prompt": []}, "prompt"),
    ({"prompt": 3}, "prompt"),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "x", "max_tokens": "5"}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 2.5}, "max_tokens"),
    ({"prompt": "x", "max_tokens": True}, "max_tokens"),
    ({"prompt": "x", "temperature": -1}, "temperature"),
    ({"prompt": "x", "temperature": 3}, "temperature"),
    ({"prompt": "x", "temperature": "hot"}, "temperature"),
    ({"prompt": "x", "seed": -1}, "seed"),
    ({"prompt": "x", "stop": 5}, "stop"),
    ({"prompt": "x", "stop": ["a"] * 5}, "stop"),
    ({"prompt": "x", "n": 2}, "n"),
    ({"prompt": "x", "best_of": 3}, "best_of"),
    ({"prompt": "x", "top_p": 0.5}, "top_p"),
    ({"prompt": "x", "presence_penalty": 1}, "presence_penalty"),
    ({"prompt": "x", "logit_bias": {"1": 5}}, "logit_bias"),
    ({"prompt": "x", "stream": "yes"}, "stream"),
    ({"prompt": "x", "echo": 1}, "echo"),
    ({"prompt": "x", "logprobs": 9}, "logprobs"),
    ({"prompt": "x", "genrec_score_from": -1}, "genrec_score_from"),
    ({"prompt": "x", "suffix": "y"}, "suffix"),
    ({"prompt": "x", "stream_options": {}}, "stream_options"),
    ({"prompt": "x", "bogus": 1}, "bogus"),
    ({"prompt": "x", "model": 7}, "model"),
    ({"prompt": "x", "echo": True, "logprobs": 0, "stream": True}, "stream"),
]
CHAT_CASES = [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user"}]}, "messages"),
    ({"messages": [{"content": 1}]}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
    ({"messages": [{"content": "x", "extra": 1}]}, "messages"),
    ({"messages": [{"content": "x"}], "logprobs": True}, "logprobs"),
    ({"messages": [{"content": "x"}], "max_completion_tokens": -3}, "max_completion_tokens"),
    ({"prompt": "x"}, "messages"),
]


@pytest.fixture(scope="module")
def served():
    lm = FakeLanguageModel()
    with TestClient(create_app(lm)) as client:
        yield lm, client


@pytest.mark.parametrize(
    "path,body,field",
    [("/v1/completions", b, f) for b, f in COMPLETION_CASES]
    + [("/v1/chat/completions", b, f) for b, f in CHAT_CASES],
)
def test_bad_field_is_a_400_naming_it(served, path, body, field):
    lm, client = served
    before = len(lm.calls)
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == field and field in error["message"]
    assert len(lm.calls) == before


@pytest.mark.parametrize("body", [[1, 2], "text", 3, False])
def test_a_body_that_is_not_an_object_is_a_400(served, body):
    r = served[1].post("/v1/completions", json=body)
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]


def test_neutral_values_of_unsupported_options_are_accepted(served):
    body = {
        "prompt": "x",
        "n": 1,
        "top_p": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0.0,
        "logit_bias": {},
        "user": "u",
        "best_of": 1,
        "suffix": None,
        "max_tokens": None,
    }
    assert served[1].post("/v1/completions", json=body).status_code == 200
