"""genrec serve-lm for good requests, through FastAPI's TestClient over the fake model: the
OpenAI response shapes, scoring, and streaming (SSE chunks equal to the plain answer)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient

from genrec.serving.lm_server import ServerLimits, create_app
from genrec.text.lm import FakeLanguageModel

PROMPT = "Movies:\nToy Story and Heat and Fargo"


@pytest.fixture
def client():
    with TestClient(create_app(FakeLanguageModel(), model_name="m")) as c:
        yield c


def events(response) -> list:
    """The data payloads of an SSE body ("[DONE]" kept as a string)."""
    lines = [line for line in response.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    return [line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]) for line in lines]


def test_models_and_completions(client):
    assert client.get("/v1/models").json()["data"][0]["id"] == "m"
    body = client.post(
        "/v1/completions", json={"model": "m", "prompt": [PROMPT, "a\nb c"], "max_tokens": 2}
    ).json()
    assert [c["text"] for c in body["choices"]] == FakeLanguageModel().generate(
        [PROMPT, "a\nb c"], max_new_tokens=2
    )
    assert [c["finish_reason"] for c in body["choices"]] == ["length", "length"]
    assert body["usage"]["completion_tokens"] == 4 and body["object"] == "text_completion"
    echo = client.post("/v1/completions", json={"prompt": "x\nhi", "echo": True}).json()
    assert echo["choices"][0]["text"] == "x\nhihi"
    stop = client.post("/v1/completions", json={"prompt": "a b: c", "stop": ":"}).json()
    assert stop["choices"][0] | {"text": "a b ", "finish_reason": "stop"} == stop["choices"][0]


def test_chat_single_message_and_transcript(client):
    one = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hello there"}]}
    ).json()
    assert one["choices"][0]["message"] == {"role": "assistant", "content": "hello there"}
    two = client.post(
        "/v1/chat/completions",
        json={
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        },
    ).json()
    assert two["choices"][0]["message"]["content"] == "assistant :"  # the transcript's last line


def test_scoring_matches_the_model(client):
    texts = ["I liked Toy Story" + c for c in [" Toy Story 2", " Casablanca"]]
    body = client.post(
        "/v1/completions",
        json={
            "prompt": texts,
            "echo": True,
            "logprobs": 0,
            "max_tokens": 1,
            "genrec_score_from": 17,
        },
    ).json()
    want = FakeLanguageModel().score("I liked Toy Story", [" Toy Story 2", " Casablanca"])
    assert [c["logprobs"]["token_logprobs"][-1] for c in body["choices"]] == list(want.logprob)
    assert [c["genrec_n_tokens"] for c in body["choices"]] == list(want.n_tokens)


def test_streamed_completion_is_the_plain_answer_in_chunks(client):
    plain = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 4}).json()
    got = events(
        client.post(
            "/v1/completions",
            json={
                "prompt": PROMPT,
                "max_tokens": 4,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
    )
    assert (
        got[-1] == "[DONE]"
        and got[-2]["choices"] == []
        and got[-2]["usage"]["completion_tokens"] == 4
    )
    chunks = got[:-2]
    assert len(chunks) == 5 and all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == plain["choices"][0]["text"]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["length"]


def test_streamed_chat_follows_openai_chunks(client):
    got = events(
        client.post(
            "/v1/chat/completions",
            json={"messages": [{"content": "one two three"}], "stream": True, "stop": ["three"]},
        )
    )
    assert got[-1] == "[DONE]"
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in got[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in got[:-1])
    assert text == "one two " and got[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_with_a_stop_spanning_chunks_never_leaks_it():
    lm = FakeLanguageModel()
    with TestClient(create_app(lm)) as client:
        got = events(
            client.post(
                "/v1/completions",
                json={"prompt": "alpha beta gamma delta", "stop": ["a g"], "stream": True},
            )
        )
    assert "".join(c["choices"][0]["text"] for c in got[:-1]) == "alpha bet"


def test_limits_are_checked():
    from genrec.errors import ConfigError

    for bad in (
        {"max_tokens": 0},
        {"request_timeout": -1},
        {"max_waiting": -1},
        {"max_body_bytes": True},
        {"request_timeout": float("nan")},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            ServerLimits(**bad)
    with pytest.raises(ConfigError, match="LanguageModel"):
        create_app(object())
