"""serve-lm refuses work too big for it: max_tokens over the server's cap, a prompt over the
model's context window or over the server's prompt limit (400 naming the field, the model never
asked to generate)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient

from genrec.serving.lm_server import ServerLimits, create_app
from genrec.text.lm import FakeLanguageModel


def app(**limits):
    lm = FakeLanguageModel(context_length=20)
    return lm, TestClient(create_app(lm, limits=ServerLimits(**limits)))


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_over_the_cap_is_refused(field):
    lm, client = app(max_tokens=8)
    for path, body in (
        ("/v1/completions", {"prompt": "hi"}),
        ("/v1/chat/completions", {"messages": [{"content": "hi"}]}),
    ):
        r = client.post(path, json={**body, field: 10**9})
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
        assert "at most 8" in r.json()["error"]["message"]
        assert client.post(path, json={**body, field: 8}).status_code == 200
    assert all(call[0] != "generate" or call[1] == "hi" for call in lm.calls)


def test_prompt_over_the_context_window_is_refused():
    lm, client = app()
    long = " ".join(["word"] * 19)
    r = client.post("/v1/completions", json={"prompt": long, "max_tokens": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    assert "context window of 20" in r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", json={"messages": [{"content": long * 3}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = client.post("/v1/completions", json={"prompt": long, "stream": True, "max_tokens": 2})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert not [c for c in lm.calls if c[0] == "generate"]
    assert client.post("/v1/completions", json={"prompt": long, "max_tokens": 1}).status_code == 200


def test_prompt_over_the_server_limit_is_refused_even_when_scoring():
    lm, client = app(max_prompt_tokens=5)
    r = client.post(
        "/v1/completions", json={"prompt": ["a b c d e f"], "echo": True, "logprobs": 0}
    )
    assert r.status_code == 400 and "--max-prompt-tokens" in r.json()["error"]["message"]
    huge = "x " * 200_000  # refused before it is even tokenised
    r = client.post("/v1/completions", json={"prompt": huge})
    assert r.status_code == 400 and "characters" in r.json()["error"]["message"]
    assert not lm.calls
