"""The OpenAI-compatible client against real HTTP servers on localhost: ours (``genrec serve-lm``)
over the fake model, canned stub servers for failures, and slow checks with real models."""

from __future__ import annotations

import email.utils
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from genrec.errors import ConfigError, LLMError
from genrec.serving.lm_server import lm_from_cli, make_server, serve_in_thread
from genrec.text.lm import FakeLanguageModel, LanguageModel
from genrec.text.openai_lm import OpenAICompatibleLM, _continuation_logprob, _retry_after

FAST = {"retries": 2, "backoff": 0.01, "timeout": 5.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_against_our_server_matches_the_model():
    fake = FakeLanguageModel()
    with serve_in_thread(fake) as url:
        client = OpenAICompatibleLM(url, model="fake", **FAST)
        assert isinstance(client, LanguageModel) and client.models() == ["fake"]
        prompts = ["x\nToy Story and Heat", "y\nhello world again"]
        assert client.generate(prompts, max_new_tokens=2) == fake.generate(
            prompts, max_new_tokens=2
        )
        assert client.generate(["a: b"], stop=[":"]) == fake.generate(["a: b"], stop=[":"])
        continuations = [" Toy Story 2", " Casablanca", ""]
        got, want = (
            client.score("I liked Toy Story", continuations),
            fake.score("I liked Toy Story", continuations),
        )
        np.testing.assert_allclose(got.logprob, want.logprob)
        np.testing.assert_array_equal(got.n_tokens, want.n_tokens)
        assert client.count_tokens("one, two") == fake.count_tokens("one, two")
        chat = OpenAICompatibleLM(url, model="fake", chat=True, **FAST)
        assert chat.generate(["hello there"]) == ["hello there"]
    assert fake.calls.count(("score", "I liked Toy Story", 3)) == 2  # one call for 3 continuations


def test_server_rejects_bad_requests_clearly():
    with serve_in_thread(FakeLanguageModel(name="m")) as url:

        def post(path, body):
            req = urllib.request.Request(
                url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            try:
                urllib.request.urlopen(req, timeout=5)
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())["error"]["message"]
            return 200, ""

        assert post("/completions", {"model": "other", "prompt": "x"})[0] == 404
        assert post("/completions", {"prompt": [1, 2]})[0] == 400
        assert post("/completions", {"prompt": "x", "n": 2})[0] == 400
        assert post("/completions", {"prompt": "x", "temperature": -1})[0] == 400
        assert post("/chat/completions", {"messages": "hi"})[0] == 400
        assert post("/nowhere", {})[0] == 404
        client = OpenAICompatibleLM(url, model="other", **FAST)
        with pytest.raises(LLMError, match="404.*not served here.*model name"):
            client.generate(["x"])


def test_server_down_is_a_clear_error_after_retries():
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.perf_counter()
    with pytest.raises(LLMError, match=r"after 3 attempts.*running and reachable"):
        OpenAICompatibleLM(url, model="m", retries=2, backoff=0.05).generate(["x"])
    assert time.perf_counter() - start >= 0.05 + 0.1  # backed off 0.05 s, then 0.1 s


def test_server_errors_are_retried_until_success():
    failures = iter([True, True])

    def flaky(prompt):
        if next(failures, False):
            raise RuntimeError("out of memory")
        return "fine"

    with serve_in_thread(FakeLanguageModel(generate_fn=flaky)) as url:
        assert OpenAICompatibleLM(url, model="fake", **FAST).generate(["x"]) == ["fine"]
        failures = iter([True] * 10)
        with pytest.raises(LLMError, match="HTTP 500.*out of memory.*after 2 attempts"):
            OpenAICompatibleLM(url, model="fake", retries=1, backoff=0.01).generate(["x"])


def test_timeouts_are_reported():
    def slow(prompt):
        time.sleep(1.0)
        return "late"

    with serve_in_thread(FakeLanguageModel(generate_fn=slow)) as url:
        with pytest.raises(LLMError, match="timed out.*timeout \\(0.2 s\\)"):
            OpenAICompatibleLM(url, model="fake", timeout=0.2, retries=0).generate(["x"])


@contextmanager
def stub_server(responses: list[tuple[int, dict, dict]]):
    """Answers each request with the next (status, headers, body); records request headers."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(
                (
                    dict(self.headers),
                    json.loads(self.rfile.read(int(self.headers["Content-Length"]))),
                )
            )
            status, headers, body = responses.pop(0) if len(responses) > 1 else responses[0]
            data = json.dumps(body).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def test_rate_limit_honours_retry_after_and_sends_the_key(monkeypatch):
    ok = {"choices": [{"index": 0, "text": "done"}]}
    monkeypatch.setenv("MY_KEY", "secret")
    with stub_server([(429, {"Retry-After": "0.1"}, {"error": {}}), (200, {}, ok)]) as (url, seen):
        client = OpenAICompatibleLM(url, model="m", api_key_env="MY_KEY", retries=1, backoff=5.0)
        start = time.perf_counter()
        assert client.generate(["x"]) == ["done"]
        assert 0.1 <= time.perf_counter() - start < 4.0  # Retry-After, not the 5 s backoff
    assert [h.get("Authorization") for h, _ in seen] == ["Bearer secret"] * 2
    with stub_server([(401, {}, {"error": {"message": "bad key"}})]) as (url, seen):
        with pytest.raises(LLMError, match="401.*API key"):
            OpenAICompatibleLM(url, model="m", api_key="k", **FAST).generate(["x"])
        assert len(seen) == 1  # not retried


@pytest.mark.parametrize(
    "header", ["soon", "Mon, 99 Foo 2024 25:61:00 GMT", "nan", "inf", "1e999", "\u00e9"]
)
def test_malformed_retry_after_falls_back_to_the_backoff(header):
    assert _retry_after(header) is None
    ok = {"choices": [{"index": 0, "text": "done"}]}
    with stub_server(
        [(503, {"Retry-After": header.encode().decode("latin-1")}, {"error": {}}), (200, {}, ok)]
    ) as (url, seen):
        client = OpenAICompatibleLM(url, model="m", retries=1, backoff=0.01, max_backoff=0.05)
        assert client.generate(["x"]) == ["done"]
    assert len(seen) == 2


def test_retry_after_reads_seconds_and_dates():
    assert _retry_after("2.5") == 2.5 and _retry_after("-3") == 0.0 and _retry_after("") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert 50 < _retry_after(email.utils.formatdate(time.time() + 60, usegmt=True)) <= 60


def test_scoring_needs_prompt_logprobs():
    no_logprobs = {"choices": [{"index": i, "text": "t", "logprobs": None} for i in range(2)]}
    with stub_server([(200, {}, no_logprobs)]) as (url, _):
        with pytest.raises(LLMError, match="cannot score continuations"):
            OpenAICompatibleLM(url, model="m", **FAST).score("p", ["a", "b"])


def test_per_token_logprobs_are_summed_over_the_continuation():
    # vLLM style: BOS (None), prompt tokens, a token straddling the boundary, continuation, and
    # the one generated token after the text (max_tokens=1), which is ignored.
    text = "I liked Heat" + " and Fargo"
    choice = {
        "logprobs": {
            "tokens": ["<s>", "I", " liked", " He", "at and", " Far", "go", "!"],
            "token_logprobs": [None, -1.0, -2.0, -3.0, -0.5, -0.25, -0.125, -9.0],
            "text_offset": [0, 0, 1, 7, 10, 16, 20, 22],
        }
    }
    assert _continuation_logprob(choice, len("I liked Heat"), len(text), "u") == (-0.875, 3)


def test_client_options_are_checked():
    with pytest.raises(ConfigError, match="http"):
        OpenAICompatibleLM("localhost:8000", model="m")
    for bad in ({"retries": -1}, {"timeout": "1"}, {"backoff": -1}):
        with pytest.raises(ConfigError):
            OpenAICompatibleLM("http://h/v1", model="m", **bad)
    with pytest.raises(ConfigError):
        make_server(object())


def test_serve_lm_command_in_a_subprocess():
    port = free_port()
    env = {**os.environ, "CI": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genrec.cli", "serve-lm", "--model", "fake", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "serving 'fake' at" in proc.stderr.readline()
        client = OpenAICompatibleLM(f"http://127.0.0.1:{port}/v1", model="fake", **FAST)
        assert client.generate(["hi there"]) == ["hi there"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_model_specs():
    assert lm_from_cli("fake").name == "fake"
    assert (
        type(lm_from_cli("gemma-3-270m", backend="transformers", threads=1)).__name__
        == "TransformersLM"
    )
    assert type(lm_from_cli("llamacpp:smollm2-135m", threads=1)).__name__ == "LlamaCppLM"


@pytest.mark.slow
def test_real_gemma_through_our_server():
    pytest.importorskip("transformers", reason="needs the llm extra")
    from genrec.text.transformers_lm import TransformersLM

    gemma = TransformersLM("gemma-3-270m", threads=1)
    prompt = "Movies a user liked:\n- Toy Story (1995)\n- Aladdin (1992)\nThe next movie:"
    titles = [" The Lion King (1994)", " Heat (1995)", " Casablanca (1942)"]
    with serve_in_thread(gemma, model_name="gemma") as url:
        client = OpenAICompatibleLM(url, model="gemma", timeout=120)
        np.testing.assert_allclose(
            client.score(prompt, titles).logprob, gemma.score(prompt, titles).logprob, rtol=1e-6
        )
        text = client.generate([prompt], max_new_tokens=6, stop=["\n"])
        assert text == gemma.generate([prompt], max_new_tokens=6, stop=["\n"])


@pytest.mark.slow
def test_client_against_llama_cpp_server(tmp_path):
    pytest.importorskip(
        "llama_cpp.server.app",
        reason="needs llama-cpp-python[server] (the "
        "llamacpp extra plus fastapi, uvicorn, sse-starlette, starlette-context, "
        "pydantic-settings)",
    )
    from genrec.text.weights import gguf_path

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path("gemma-3-270m")),
        "--model_alias",
        "gemma",
        "--port",
        str(port),
        "--n_ctx",
        "128",
        "--n_threads",
        "1",
        "--n_threads_batch",
        "1",
        "--logits_all",
        "true",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = OpenAICompatibleLM(
            f"http://127.0.0.1:{port}/v1",
            model="gemma",
            retries=20,
            backoff=0.25,
            max_backoff=0.5,
            timeout=120,
        )
        assert client.models() == ["gemma"]
        text = client.generate(["The capital of France is"], max_new_tokens=4)[0]
        assert isinstance(text, str) and text
        scores = client.score("The capital of France is", [" Paris"])
        assert scores.logprob.shape == (1,) and scores.logprob[0] < 0 and scores.n_tokens[0] >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)


SCHEMA = {
    "type": "object",
    "properties": {"tool": {"enum": ["rank", "filter"]}},
    "required": ["tool"],
    "additionalProperties": False,
}


def test_json_schema_goes_out_as_response_format_and_the_answer_comes_back():
    chat_answer = {"choices": [{"message": {"content": '{"tool": "rank"}'}}]}
    with stub_server([(200, {}, chat_answer)]) as (url, seen):
        client = OpenAICompatibleLM(url, model="m", chat=True, **FAST)
        assert client.constrained_json
        assert client.generate(["plan"], json_schema=SCHEMA) == ['{"tool": "rank"}']
        OpenAICompatibleLM(url, model="m", chat=True, json_mode="json_object", **FAST).generate(
            ["plan"], json_schema=SCHEMA
        )
        client.generate(["no schema"])
    bodies = [body for _, body in seen]
    assert bodies[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA},
    }
    assert bodies[1]["response_format"] == {"type": "json_object"}
    assert "response_format" not in bodies[2] and "tools" not in bodies[2]


def test_tool_call_mode_forces_one_function_and_reads_its_arguments():
    call = {"function": {"name": "answer", "arguments": '{"tool": "filter"}'}}
    answer = {"choices": [{"message": {"content": None, "tool_calls": [call]}}]}
    with stub_server([(200, {}, answer)]) as (url, seen):
        client = OpenAICompatibleLM(url, model="m", chat=True, json_mode="tools", **FAST)
        assert client.generate(["plan"], json_schema=SCHEMA) == ['{"tool": "filter"}']
    body = seen[0][1]
    assert body["tools"][0]["function"] == {"name": "answer", "parameters": SCHEMA}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "answer"}}
    with stub_server([(200, {}, {"choices": [{"message": {"content": "hi"}}]})]) as (url, _):
        client = OpenAICompatibleLM(url, model="m", chat=True, json_mode="tools", **FAST)
        with pytest.raises(LLMError, match="without a tool call"):
            client.generate(["plan"], json_schema=SCHEMA)


def test_json_modes_are_checked():
    with pytest.raises(ConfigError, match="json_mode must be one of"):
        OpenAICompatibleLM("http://x/v1", model="m", json_mode="grammar")
    with pytest.raises(ConfigError, match="needs chat=True"):
        OpenAICompatibleLM("http://x/v1", model="m", json_mode="tools")
    plain = OpenAICompatibleLM("http://x/v1", model="m", json_mode="none")
    assert not plain.constrained_json
    with pytest.raises(ConfigError, match="generate_json"):
        plain.generate(["x"], json_schema=SCHEMA)


def test_our_server_constrains_when_its_model_can_and_refuses_otherwise():
    scripted = FakeLanguageModel(constrained_json=True, generate_fn=lambda p: "sure: {}")
    with serve_in_thread(scripted) as url:
        client = OpenAICompatibleLM(url, model="fake", **FAST)
        assert client.generate(["x"], json_schema=SCHEMA) == ['{"tool":"rank"}']  # smallest fit
    with serve_in_thread(FakeLanguageModel()) as url:
        client = OpenAICompatibleLM(url, model="fake", **FAST)
        with pytest.raises(LLMError, match="cannot constrain its output"):
            client.generate(["x"], json_schema=SCHEMA)
        assert client.generate(["x"]) == ["x"]
