"""Image captions through an OpenAI-compatible vision endpoint, against a fake local server that
checks the request shape and "sees" the procedural world's pictures (it names their colour)."""

from __future__ import annotations

import base64
import io
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from genrec.cli import main
from genrec.data.multimodal import load_item_folder
from genrec.data.synthetic_multimodal import COLOURS, multimodal_world, write_multimodal_world
from genrec.errors import ConfigError, LLMError
from genrec.evaluation.protocol import evaluate_split
from genrec.models.language.bm25 import BM25Recommender
from genrec.multimodal.captions import (
    DEFAULT_PROMPT,
    VisionCaptioner,
    caption_dataset,
    image_data_url,
    vision_captioner,
    write_captions,
)
from genrec.text.items import catalog_texts

pytest.importorskip("PIL")
FAST = {"retries": 0, "timeout": 5.0}


def dominant_colour(png: bytes) -> str:
    """The world colour covering most pixels of a picture (what a vision model would say)."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float32).reshape(-1, 3)
    names, palette = list(COLOURS), np.array(list(COLOURS.values()), np.float32)
    distance = ((pixels[:, None, :] - palette[None]) ** 2).sum(-1)  # (P, 4)
    close = distance.min(1) < 60**2
    return names[np.bincount(distance.argmin(1)[close], minlength=4).argmax()]


@contextmanager
def fake_vision_server(*, answer=None):
    """A chat-completions server that rejects any request not carrying one text part and one
    base64 PNG ``image_url`` part, and answers "a <colour> item"; yields (url, requests)."""
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append({"path": self.path, "body": body})
            try:
                (message,) = body["messages"]
                text, picture = message["content"]
                assert message["role"] == "user" and text["type"] == "text"
                assert picture["type"] == "image_url"
                head, data = picture["image_url"]["url"].split(",", 1)
                assert head == "data:image/png;base64"
                png = base64.b64decode(data, validate=True)
            except (AssertionError, KeyError, ValueError, TypeError):
                return self.reply(400, {"error": {"message": "not a vision request"}})
            content = answer if answer is not None else f"a {dominant_colour(png)} item"
            self.reply(200, {"choices": [{"index": 0, "message": {"content": content}}]})

        def reply(self, status, payload):
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    finally:
        server.shutdown()
        server.server_close()


def test_request_shape_and_cache(tmp_path):
    folder = write_multimodal_world(tmp_path / "w", n_users=12, n_items=48, seed=0)
    data = load_item_folder(folder)
    image = data.catalog["image"][0]
    with fake_vision_server() as (url, requests):
        captioner = VisionCaptioner(url, model="llava", max_tokens=20, **FAST)
        once = caption_dataset(data, captioner, cache=tmp_path / "cache")
        assert len(requests) == 48
        first = requests[0]
        assert first["path"] == "/v1/chat/completions"
        assert first["body"]["model"] == "llava" and first["body"]["max_tokens"] == 20
        assert first["body"]["messages"][0]["content"][0]["text"] == DEFAULT_PROMPT
        sent = first["body"]["messages"][0]["content"][1]["image_url"]["url"]
        assert base64.b64decode(sent.split(",", 1)[1]) == open(image, "rb").read()
        again = caption_dataset(data, captioner, cache=tmp_path / "cache")
        assert len(requests) == 48  # every caption came from the cache
    assert list(again.catalog["caption"]) == list(once.catalog["caption"])
    colours = [c.split()[1] for c in once.catalog["caption"]]
    i1 = list(data.items.ids).index("i1")
    assert colours[i1] == "green"  # item 1 is a green circle
    assert catalog_texts(once, model="bm25")[i1].endswith("Caption: a green item")


def test_captions_feed_the_text_recommenders(tmp_path):
    """With no colour in the item text, BM25 over text + captions finds the held-out items of
    colour-and-shape users better than BM25 over the text alone."""
    folder = write_multimodal_world(tmp_path / "w", n_users=24, n_items=96, mention=0.0, seed=1)
    plain = multimodal_world(folder, n_users=24, n_items=96, mention=0.0, seed=1)
    with fake_vision_server() as (url, _):
        captioned = caption_dataset(
            load_item_folder(folder), VisionCaptioner(url, model="m", **FAST)
        )
    write_captions(folder, captioned)
    seen = multimodal_world(folder, n_users=24, n_items=96, mention=0.0, seed=1)
    assert "caption" in seen.data.catalog.text_fields
    ndcg = {}
    for name, world in (("text", plain), ("text+captions", seen)):
        model = BM25Recommender().fit(world.split.train)
        ndcg[name] = evaluate_split(model, world.split).per_user["ndcg@10"].mean()
    assert ndcg["text+captions"] > ndcg["text"] + 0.1


def test_no_endpoint_is_a_clear_error_and_bad_answers_are_llm_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="no vision endpoint.*vLLM, Ollama"):
        vision_captioner(None, model="llava")
    with pytest.raises(ConfigError, match="no vision model"):
        vision_captioner("http://127.0.0.1:1/v1", model="")
    folder = write_multimodal_world(tmp_path / "w", n_users=12, n_items=48, seed=0)
    assert main(["data", "caption", "--dataset", str(folder)]) == 2
    assert "no vision endpoint" in capsys.readouterr().err
    image = load_item_folder(folder).catalog["image"][0]
    with fake_vision_server(answer="") as (url, _):
        with pytest.raises(LLMError, match="no caption.*accepts images"):
            VisionCaptioner(url, model="m", **FAST).caption(image)
    assert image_data_url(image).startswith("data:image/png;base64,")


def test_cli_writes_captions_the_loader_attaches(tmp_path, capsys):
    folder = write_multimodal_world(tmp_path / "w", n_users=12, n_items=48, seed=0)
    with fake_vision_server() as (url, requests):
        args = ["data", "caption", "--dataset", str(folder), "--vision-url", url]
        assert main([*args, "--vision-model", "m", "--cache", str(tmp_path / "c")]) == 0
    assert len(requests) == 48 and (folder / "captions.csv").is_file()
    data = load_item_folder(folder)
    assert data.catalog.text_fields[-1] == "caption"
    assert all(c.startswith("a ") for c in data.catalog["caption"])
