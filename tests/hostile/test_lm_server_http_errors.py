"""serve-lm answers JSON on every path and method (404, 405, bad JSON, 413: never an HTML page),
and a request with a lying or malformed Content-Length gets an error, never a 500 or a hang."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient

from genrec.serving.lm_server import ServerLimits, create_app, serve_in_thread
from genrec.text.lm import FakeLanguageModel

LIMITS = ServerLimits(max_body_bytes=1000, body_timeout=0.5)


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/", 404),
        ("GET", "/v1/nowhere", 404),
        ("POST", "/v2/completions", 404),
        ("GET", "/v1/completions", 405),
        ("PUT", "/v1/completions", 405),
        ("DELETE", "/v1/models", 405),
        ("POST", "/v1/models", 405),
        ("PATCH", "/v1/chat/completions", 405),
    ],
)
def test_every_path_and_method_answers_json(method, path, status):
    with TestClient(create_app(FakeLanguageModel(), limits=LIMITS)) as client:
        r = client.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json" and r.json()["error"]["message"]


def test_bodies_that_are_not_json_or_too_large():
    with TestClient(create_app(FakeLanguageModel(), limits=LIMITS)) as client:
        for raw in (b"{", b"\xff\xfe", b"prompt=hi", b"[1,"):
            r = client.post("/v1/completions", content=raw)
            assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
        r = client.post("/v1/completions", json={"prompt": "x" * 2000})
        assert r.status_code == 413 and "1000 bytes" in r.json()["error"]["message"]
        chunked = client.post(
            "/v1/completions", content=iter([b'{"prompt": "', b"x" * 2000, b'"}'])
        )
        assert chunked.status_code == 413


def raw_request(url: str, head: str, body: bytes = b"") -> bytes:
    """Send a hand-made request over a socket; what the server answered (bounded wait)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunk:
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.mark.parametrize(
    "length,body,status",
    [
        ("abc", b"{}", b"400"),
        ("-5", b"{}", b"400"),
        ("1, 2", b"{}", b"400"),
        ("99999999999999999999", b"{}", b"413"),
        ("2000", b"{}", b"413"),
        ("100", b'{"prompt": "x"}', b"408"),  # promises more than it sends: times out, no hang
        ("3", b'{"prompt": "x"}', b"400"),  # sends more than it says: truncated JSON
    ],
)
def test_bad_content_length_never_hangs_or_500s(length, body, status):
    with serve_in_thread(FakeLanguageModel(), limits=LIMITS) as url:
        head = (
            f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}"
        )
        answer = raw_request(url, head, body)
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == status, answer[:200]
