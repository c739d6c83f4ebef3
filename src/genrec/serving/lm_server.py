"""An OpenAI-compatible HTTP server over any :class:`~genrec.text.lm.LanguageModel`
(``genrec serve-lm --model gemma-3-270m --port 8000``).

Endpoints (JSON; errors as ``{"error": {"message", "type", "code"}}`` with HTTP 400/404/500):

* ``GET /v1/models`` — the one model served.
* ``POST /v1/completions`` — ``prompt`` (a string or a list of strings), ``max_tokens``
  (default 16), ``temperature`` (default 1.0, as OpenAI's), ``stop``, ``seed``, ``echo``.
  With ``echo=true`` and ``logprobs`` set it *scores* instead of generating: each prompt text is
  split at the genrec extension field ``genrec_score_from`` (a character offset, default 0);
  all texts with the same head are scored in one ``lm.score(head, tails)`` call (the head
  computed once), and each choice's ``logprobs`` holds two pseudo-tokens, the head (logprob
  null) and the tail with its summed log-probability, plus ``genrec_n_tokens``, the tail's real
  token count. Nothing is generated after an echo with logprobs.
* ``POST /v1/chat/completions`` — ``messages``; a single user message is passed to the model as
  it is (a backend with ``chat=True`` wraps it in the model's template); longer conversations
  are rendered as a ``role: content`` transcript ending in ``assistant:``.

Why the standard library's ``http.server`` and not fastapi + uvicorn (the ``serve`` extra): the
API is a handful of small JSON endpoints, the model runs one request at a time anyway (a lock
serialises calls into it; one CPU model gains nothing from concurrent requests), and
``genrec serve-lm`` then needs no extra dependency. Use a real inference server (vLLM,
llama.cpp's) for production traffic.

Example:
    >>> from genrec.text.lm import FakeLanguageModel
    >>> import json, urllib.request
    >>> with serve_in_thread(FakeLanguageModel()) as url:
    ...     json.load(urllib.request.urlopen(url + "/models"))["data"][0]["id"]
    'fake'
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from genrec.errors import ConfigError, GenrecError
from genrec.text.lm import LanguageModel


class _RequestError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.kind = status, kind


class LMServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer holding the model, its public name and a lock around it."""

    daemon_threads = True

    def __init__(self, lm: LanguageModel, address: tuple[str, int], *, model_name: str | None = None,
                 verbose: bool = False):
        super().__init__(address, _Handler)
        self.lm, self.model_name, self.verbose = lm, model_name or lm.name, verbose
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def make_server(lm: LanguageModel, *, host: str = "127.0.0.1", port: int = 8000,
                model_name: str | None = None, verbose: bool = False) -> LMServer:
    """A server bound to ``host:port`` (port 0: a free one); call ``serve_forever()``."""
    if not isinstance(lm, LanguageModel):
        raise ConfigError(f"expected a LanguageModel, got {type(lm).__name__}")
    try:
        return LMServer(lm, (host, port), model_name=model_name, verbose=verbose)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                          "choose another --port or stop the process using it") from exc


@contextlib.contextmanager
def serve_in_thread(lm: LanguageModel, *, host: str = "127.0.0.1", port: int = 0,
                    model_name: str | None = None) -> Iterator[str]:
    """Serve ``lm`` from a background thread; yields the base URL (``http://host:port/v1``)."""
    server = make_server(lm, host=host, port=port, model_name=model_name)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def lm_from_cli(model: str, *, backend: str = "default", threads: int | None = None,
                cache_dir=None) -> LanguageModel:
    """The model ``genrec serve-lm`` serves: ``model`` is a full spec (``"fake"``,
    ``"llamacpp:gemma-3-270m"``) or a shipped name / path run by ``backend``."""
    from genrec.text.backends import BACKENDS, get_language_model

    head = model.partition(":")[0].lower()
    spec = model if head in BACKENDS and (":" in model or head == "fake") else f"{backend}:{model}"
    options = {"threads": threads, "cache_dir": cache_dir}
    if spec.startswith("default:"):
        options["job"] = "generate"
    return get_language_model(spec, **options)


def serve(lm: LanguageModel, *, host: str = "127.0.0.1", port: int = 8000,
          model_name: str | None = None, verbose: bool = False, announce=print) -> None:
    """Serve ``lm`` until interrupted (Ctrl-C)."""
    server = make_server(lm, host=host, port=port, model_name=model_name, verbose=verbose)
    announce(f"serving {server.model_name!r} at {server.base_url} (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()


# ---- request handling -----------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: LMServer
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._respond(lambda: self._models() if self.path.rstrip("/") == "/v1/models"
                      else self._not_found())

    def do_POST(self):
        routes = {"/v1/completions": self._completions, "/v1/chat/completions": self._chat}
        route = routes.get(self.path.rstrip("/"))
        self._respond(lambda: route(self._body()) if route else self._not_found())

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def _respond(self, work) -> None:
        try:
            status, payload = 200, work()
        except _RequestError as exc:
            status, payload = exc.status, _error(str(exc), exc.kind)
        except ConfigError as exc:
            status, payload = 400, _error(str(exc), "invalid_request_error")
        except GenrecError as exc:
            status, payload = 500, _error(str(exc), "server_error")
        except Exception as exc:  # noqa: BLE001 (a server must answer; the client may retry)
            status, payload = 500, _error(f"{type(exc).__name__}: {exc}", "server_error")
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise _RequestError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _RequestError(400, "the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.server.model_name:
            raise _RequestError(404, f"model {model!r} is not served here; this server serves "
                                f"{self.server.model_name!r}", "model_not_found")
        return body

    def _not_found(self):
        raise _RequestError(404, f"no route {self.command} {self.path}; routes: GET /v1/models, "
                            "POST /v1/completions, POST /v1/chat/completions", "not_found")

    def _models(self) -> dict:
        return {"object": "list", "data": [{"id": self.server.model_name, "object": "model",
                                            "created": 0, "owned_by": "genrec"}]}

    def _completions(self, body: dict) -> dict:
        prompts = body.get("prompt", "")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise _RequestError(400, "prompt must be a string or a list of strings (token ids "
                                "are not supported)")
        _check_n(body)
        if body.get("echo") and body.get("logprobs") is not None:
            choices = self._score(prompts, _int(body, "genrec_score_from", 0, low=0))
        else:
            texts = self._generate(prompts, body)
            choices = [{"index": i, "text": (p if body.get("echo") else "") + t, "logprobs": None,
                        "finish_reason": self._finish(t, body)}
                       for i, (p, t) in enumerate(zip(prompts, texts))]
        return self._envelope("text_completion", choices)

    def _chat(self, body: dict) -> dict:
        messages = body.get("messages")
        if (not isinstance(messages, list) or not messages
                or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                           for m in messages)):
            raise _RequestError(400, "messages must be a non-empty list of {role, content} objects "
                                "with string content")
        _check_n(body)
        if len(messages) == 1 and messages[0].get("role", "user") == "user":
            prompt = messages[0]["content"]
        else:
            prompt = "".join(f"{m.get('role', 'user')}: {m['content']}\n" for m in messages)
            prompt += "assistant:"
        text = self._generate([prompt], body)[0]
        return self._envelope("chat.completion", [{
            "index": 0, "message": {"role": "assistant", "content": text},
            "finish_reason": self._finish(text, body)}])

    def _generate(self, prompts: list[str], body: dict) -> list[str]:
        max_tokens = _int(body, "max_tokens", 16, low=1, alt="max_completion_tokens")
        seed = _int(body, "seed", 0, low=0)
        temperature = body.get("temperature", 1.0)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _RequestError(400, "stop must be a string or a list of strings")
        with self.server.lock:
            return self.server.lm.generate(prompts, max_new_tokens=max_tokens,
                                           temperature=temperature, stop=stop, seed=seed)

    def _score(self, texts: list[str], start: int) -> list[dict]:
        heads: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            heads.setdefault(text[:start], []).append(i)
        choices: list[dict] = [{} for _ in texts]
        for head, rows in heads.items():
            with self.server.lock:
                scores = self.server.lm.score(head, [texts[i][len(head):] for i in rows])
            for j, i in enumerate(rows):
                tail = texts[i][len(head):]
                tokens = ([head] if head else []) + [tail]
                values = ([None] if head else []) + [float(scores.logprob[j])]
                offsets = ([0] if head else []) + [len(head)]
                choices[i] = {"index": i, "text": texts[i], "finish_reason": "length",
                              "logprobs": {"tokens": tokens, "token_logprobs": values,
                                           "text_offset": offsets, "top_logprobs": None},
                              "genrec_n_tokens": int(scores.n_tokens[j])}
        return choices

    def _finish(self, text: str, body: dict) -> str:
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        with self.server.lock:
            return "length" if self.server.lm.count_tokens(text) >= limit else "stop"

    def _envelope(self, kind: str, choices: list[dict]) -> dict:
        return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()),
                "model": self.server.model_name, "choices": choices}


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "code": None}}


def _check_n(body: dict) -> None:
    if body.get("n", 1) != 1:
        raise _RequestError(400, f"n must be 1 here, got {body.get('n')!r}")


def _int(body: dict, field: str, default: int, *, low: int, alt: str | None = None) -> int:
    value = body.get(field, body.get(alt, default) if alt else default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _RequestError(400, f"{field} must be an integer >= {low}, got {value!r}")
    return value


__all__ = ["LMServer", "lm_from_cli", "make_server", "serve", "serve_in_thread"]
