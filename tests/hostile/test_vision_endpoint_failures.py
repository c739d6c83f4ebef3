"""A vision endpoint that fails, lies about its format or is handed a broken image: every case is
a genrec error naming the URL or the file (the CLI: one line, exit 2), never a traceback, and a
transient failure is retried."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from genrec.cli import main
from genrec.data.synthetic_multimodal import write_multimodal_world
from genrec.errors import DataError, LLMError
from genrec.multimodal.captions import VisionCaptioner

pytest.importorskip("PIL")
FAST = {"retries": 1, "backoff": 0.01, "timeout": 5.0}


@contextmanager
def canned_server(replies: list[tuple[int, bytes]]):
    """Answers request k with ``replies[k]`` (the last one repeated); counts the requests."""
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            status, body = replies[min(count[0], len(replies) - 1)]
            count[0] += 1
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", count
    finally:
        server.shutdown()
        server.server_close()


def answer(content) -> bytes:
    return json.dumps({"choices": [{"message": {"content": content}}]}).encode()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    folder = write_multimodal_world(tmp_path_factory.mktemp("w"), n_users=12, n_items=48)
    return str(folder / "images" / "i0.png")


def test_a_transient_failure_is_retried(image):
    with canned_server([(503, b"busy"), (200, answer("a red circle"))]) as (url, count):
        assert VisionCaptioner(url, model="m", **FAST).caption(image) == "a red circle"
    assert count[0] == 2


def test_content_parts_are_joined(image):
    parts = [{"type": "text", "text": "a red"}, {"type": "text", "text": " circle "}]
    with canned_server([(200, answer(parts))]) as (url, _):
        assert VisionCaptioner(url, model="m", **FAST).caption(image) == "a red circle"


@pytest.mark.parametrize(
    "reply, message",
    [
        ((401, b'{"error": "no key"}'), "HTTP 401.*API key"),
        ((200, b"<html>not json</html>"), "did not return JSON"),
        ((200, b'{"choices": []}'), "no caption"),
        ((200, answer(None)), "no caption"),
        ((400, b'{"error": "image input is not supported"}'), "HTTP 400.*not supported"),
    ],
)
def test_bad_answers_are_llm_errors_naming_the_url(image, reply, message):
    with canned_server([reply]) as (url, _):
        with pytest.raises(LLMError, match=message) as caught:
            VisionCaptioner(url, model="m", **FAST).caption(image)
    assert url.split("/v1")[0] in str(caught.value)


def test_a_broken_image_is_named_before_any_request(tmp_path):
    broken = tmp_path / "i0.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with canned_server([(200, answer("x"))]) as (url, count):
        with pytest.raises(DataError, match="i0.png"):
            VisionCaptioner(url, model="m", **FAST).caption(str(broken))
    assert count[0] == 0


def test_cli_reports_one_line(tmp_path, capsys):
    folder = write_multimodal_world(tmp_path / "w", n_users=12, n_items=48)
    with canned_server([(200, b"not json")]) as (url, _):
        args = ["data", "caption", "--dataset", str(folder), "--vision-url", url]
        assert main([*args, "--vision-model", "m", "--cache", "off", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "did not return JSON" in err and "\n" not in err
    assert not (folder / "captions.csv").exists()
