"""A client that gives up never keeps serve-lm's model: a disconnect (plain or streaming)
cancels generation at the next token, and a request past the server's time limit gets 504 and
stops generating; the next request is then served."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient

from genrec.serving.lm_server import ServerLimits, create_app, serve_in_thread
from genrec.text.lm import FakeLanguageModel

ENDLESS = 100_000  # tokens: hours at the model's pace


class SlowLM(FakeLanguageModel):
    """Streams " x" every ``delay`` seconds; records when a stream started and was closed."""

    def __init__(self, delay: float = 0.01):
        super().__init__(name="slow")
        self.delay, self.produced = delay, 0
        self.started, self.closed = threading.Event(), threading.Event()

    def stream(self, prompt, *, max_new_tokens=64, **options):
        self.started.set()
        try:
            for _ in range(max_new_tokens):
                time.sleep(self.delay)
                self.produced += 1
                yield " x"
        finally:
            self.closed.set()


def send_and_hang_up(url: str, body: dict, lm: SlowLM, *, read_first: bool) -> None:
    host, port = url.split("//")[1].split("/")[0].split(":")
    data = json.dumps(body).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data
        )
        assert lm.started.wait(10)
        if read_first:
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_cancels_generation(stream):
    lm = SlowLM()
    limits = ServerLimits(max_tokens=ENDLESS, request_timeout=3600)
    with serve_in_thread(lm, limits=limits) as url:
        send_and_hang_up(
            url, {"prompt": "hi", "max_tokens": ENDLESS, "stream": stream}, lm, read_first=stream
        )
        assert lm.closed.wait(10), "generation went on after the client left"
        assert lm.produced < ENDLESS
        lm.delay = 0.0
        request = urllib.request.Request(
            url + "/completions",
            json.dumps({"prompt": "hi", "max_tokens": 2}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["choices"][0]["text"] == " x x"


def test_time_limit_stops_generation_with_a_504():
    lm = SlowLM()
    with TestClient(
        create_app(lm, limits=ServerLimits(max_tokens=ENDLESS, request_timeout=0.3))
    ) as client:
        r = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": ENDLESS})
        assert r.status_code == 504 and "--request-timeout" in r.json()["error"]["message"]
        assert lm.closed.is_set() and lm.produced < ENDLESS
        streamed = client.post(
            "/v1/completions", json={"prompt": "hi", "max_tokens": ENDLESS, "stream": True}
        )
        last = [line for line in streamed.text.split("\n\n") if line][-2:]
        assert "request-timeout" in json.loads(last[0][6:])["error"]["message"]
        assert last[1] == "data: [DONE]"
        lm.delay = 0.0
        assert (
            client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 3}).json()[
                "choices"
            ][0]["text"]
            == " x x x"
        )
