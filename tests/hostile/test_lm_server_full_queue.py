"""serve-lm runs one request at a time and queues at most ``max_waiting`` more: one more gets
503 with Retry-After at once (not a wait of minutes), and the queued ones are still served."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient

from genrec.serving.lm_server import ServerLimits, create_app
from genrec.text.lm import FakeLanguageModel


class GatedLM(FakeLanguageModel):
    """Generates nothing until ``gate`` opens."""

    def __init__(self):
        super().__init__(name="gated")
        self.gate = threading.Event()

    def stream(self, prompt, **options):
        while not self.gate.wait(0.01):
            yield ""
        yield "done"


def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_full_queue_answers_503_with_retry_after():
    lm = GatedLM()
    app = create_app(lm, limits=ServerLimits(max_waiting=1, request_timeout=60))
    worker = app.state.served.worker
    with TestClient(app) as client:
        answers = []

        def post():
            answers.append(client.post("/v1/completions", json={"prompt": "x"}))

        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_until(lambda: worker.pending == 2)  # one running, one waiting
        for body in ({"prompt": "x"}, {"messages": [{"content": "x"}], "stream": True}):
            path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
            r = client.post(path, json=body)
            assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["type"] == "server_busy"
        assert client.get("/v1/models").status_code == 200  # not queued behind the model
        lm.gate.set()
        for thread in threads:
            thread.join(timeout=30)
        assert [a.json()["choices"][0]["text"] for a in answers] == ["done", "done"]
        assert worker.pending == 0
