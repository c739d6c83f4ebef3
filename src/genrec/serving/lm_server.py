"""An OpenAI-compatible HTTP server over any :class:`~genrec.text.lm.LanguageModel`
(``genrec serve-lm --model gemma-3-270m --port 8000``; FastAPI + uvicorn, the ``serve`` extra).

Endpoints (JSON; every error, on every path and method, is ``{"error": {"message", "type",
"param", "code"}}``):

* ``GET /v1/models`` — the one model served.
* ``POST /v1/completions`` — ``prompt`` (a string or a list of strings; required),
  ``max_tokens`` (default 16), ``temperature`` (default 1.0, as OpenAI's), ``stop``, ``seed``,
  ``echo``, ``stream``. With ``echo=true`` and ``logprobs`` set it *scores* instead of
  generating: each prompt text is split at the genrec extension field ``genrec_score_from`` (a
  character offset, default 0); all texts with the same head are scored in one
  ``lm.score(head, tails)`` call (the head computed once), and each choice's ``logprobs`` holds
  two pseudo-tokens, the head (logprob null) and the tail with its summed log-probability, plus
  ``genrec_n_tokens``, the tail's real token count.
* ``response_format`` (both generation endpoints): ``{"type": "json_schema", "json_schema":
  {"schema": S}}`` or ``{"type": "json_object"}`` constrains the answer when the model can
  (``constrained_json``; the transformers backend) and is a 400 otherwise; such an answer
  streams as one piece.
* ``POST /v1/chat/completions`` — ``messages``; a single user message is passed to the model as
  it is (a backend with ``chat=True`` wraps it in the model's template); longer conversations
  are rendered as a ``role: content`` transcript ending in ``assistant:``.

``stream: true`` answers with server-sent events in OpenAI's chunk format, ending with
``data: [DONE]``; the text arrives as the model makes it when the backend can stream
(:func:`~genrec.text.lm.stream_text`), else in one chunk.

What one request cannot do (:class:`ServerLimits`, each a ``serve-lm`` option): ask for more
than ``max_tokens`` tokens or send a prompt longer than ``max_prompt_tokens`` or than the
model's context window (400 naming the field); send a body over ``max_body_bytes`` (413) or
take longer than ``body_timeout`` to send it (408); run longer than ``request_timeout``
(504; generation stops at the next token); keep the model after its client disconnected (the
job is cancelled at the next token, or dropped while waiting). The model runs one request at a
time (:class:`~genrec.serving.lm_worker.ModelWorker`); at most ``max_waiting`` wait behind it
and more get 503 with ``Retry-After``. Fields are validated by
:mod:`genrec.serving.lm_requests`. Backends without ``stream`` (llama.cpp, a remote server)
finish a generation they have started before a cancellation takes effect.

Example:
    >>> from genrec.text.lm import FakeLanguageModel
    >>> import json, urllib.request
    >>> with serve_in_thread(FakeLanguageModel()) as url:
    ...     json.load(urllib.request.urlopen(url + "/models"))["data"][0]["id"]
    'fake'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

from genrec.errors import ConfigError, GenrecError, LLMError, require
from genrec.serving.http import APIError, bind, install_error_handlers, read_json
from genrec.serving.lm_requests import ChatRequest, CompletionRequest, parse
from genrec.serving.lm_worker import Busy, Cancelled, Expired, Job, ModelWorker
from genrec.text.lm import LanguageModel, stream_text

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions
POLL = 0.1  # seconds between checks that a waiting client is still connected
GRACE = 2.0  # seconds past a request's limit before the server answers without the model


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of ``genrec serve-lm``."""

    max_tokens: int = 512  # the largest max_tokens a request may ask for
    max_prompt_tokens: int = 4096  # the longest prompt (and never past the context window)
    request_timeout: float = 120.0  # seconds per request, waiting in line included
    max_waiting: int = 8  # requests queued behind the running one; more get 503
    max_body_bytes: int = 1 << 20  # larger request bodies get 413
    body_timeout: float = 10.0  # seconds to receive a request body; slower gets 408

    def __post_init__(self):
        for field in fields(self):
            value, number = getattr(self, field.name), field.type == "float"
            low = 0 if field.name == "max_waiting" else 1
            ok = (
                not isinstance(value, bool)
                and isinstance(value, (int, float) if number else int)
                and (0 < value < float("inf") if number else value >= low)
            )
            if not ok:
                flag = "--" + field.name.replace("_", "-")
                need = "a finite number > 0" if number else f"an integer >= {low}"
                raise ConfigError(f"{field.name} ({flag}) must be {need}, got {value!r}")


# ---- the application ------------------------------------------------------------------------
class _Served:
    """The model, its public name, the limits and the worker that runs it."""

    def __init__(self, lm: LanguageModel, name: str, limits: ServerLimits):
        self.lm, self.name, self.limits = lm, name, limits
        self.worker = ModelWorker(max_waiting=limits.max_waiting)

    def check_model(self, model: str | None) -> None:
        if model is not None and model != self.name:
            raise APIError(
                404,
                f"model {model!r} is not served here; this server serves {self.name!r}",
                kind="model_not_found",
                param="model",
            )

    def max_tokens(self, request) -> int:
        asked = request.requested_tokens
        if asked is not None and asked > self.limits.max_tokens:
            raise APIError(
                400,
                f"max_tokens must be at most {self.limits.max_tokens} on this "
                f"server (its --max-tokens), got {asked}",
                param="max_tokens",
            )
        return asked if asked is not None else min(DEFAULT_MAX_TOKENS, self.limits.max_tokens)


def create_app(
    lm: LanguageModel, *, model_name: str | None = None, limits: ServerLimits | None = None
):
    """The FastAPI application serving ``lm`` (for uvicorn, or FastAPI's TestClient)."""
    if not isinstance(lm, LanguageModel):
        raise ConfigError(f"expected a LanguageModel, got {type(lm).__name__}")
    fastapi = require("fastapi", "serve")
    served = _Served(lm, model_name or lm.name, limits or ServerLimits())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        served.worker.close()

    app = fastapi.FastAPI(
        title="genrec serve-lm", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.served = served
    install_error_handlers(
        app, routes="GET /v1/models, POST /v1/completions, POST /v1/chat/completions"
    )
    for path, endpoint, method in (
        ("/v1/models", _models, "GET"),
        ("/v1/completions", _completions, "POST"),
        ("/v1/chat/completions", _chat, "POST"),
    ):
        app.router.add_route(path, _json_endpoint(endpoint), methods=[method])
    return app


def _json_endpoint(endpoint):
    """A Starlette endpoint (request -> response) from one returning a dict or a response."""
    from starlette.responses import JSONResponse, Response

    async def run(request):
        result = await endpoint(request)
        return result if isinstance(result, Response) else JSONResponse(result)

    return run


async def _models(request) -> dict:
    served: _Served = request.app.state.served
    return {
        "object": "list",
        "data": [{"id": served.name, "object": "model", "created": 0, "owned_by": "genrec"}],
    }


async def _completions(request):
    served: _Served = request.app.state.served
    body = parse(CompletionRequest, await _read_json(request, served.limits))
    served.check_model(body.model)
    if body.scoring:
        if body.stream:
            raise APIError(
                400,
                "stream cannot be combined with echo and logprobs (scoring); send stream=false",
                param="stream",
            )
        run = _Run(served, lambda job: _score(served, body.prompts, body.genrec_score_from, job))
        return _envelope(served, "text_completion", await run.finish(request))
    options = _options(served, body)
    prompts = body.prompts
    work = _generation(served, prompts, options, field="prompt")
    if body.stream:
        return await _stream(served, work, "text_completion", body, echo=prompts)
    done = await _Run(served, work).finish(request)
    choices = [
        {
            "index": i,
            "text": (prompts[i] if body.echo else "") + c.text,
            "logprobs": None,
            "finish_reason": c.finish,
        }
        for i, c in enumerate(done)
    ]
    return _envelope(served, "text_completion", choices, usage=_usage(done))


async def _chat(request):
    served: _Served = request.app.state.served
    body = parse(ChatRequest, await _read_json(request, served.limits))
    served.check_model(body.model)
    work = _generation(served, [body.prompt()], _options(served, body), field="messages")
    if body.stream:
        return await _stream(served, work, "chat.completion.chunk", body)
    done = await _Run(served, work).finish(request)
    return _envelope(
        served,
        "chat.completion",
        [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done[0].text},
                "finish_reason": done[0].finish,
            }
        ],
        usage=_usage(done),
    )


def _options(served: _Served, body) -> dict:
    temperature = 1.0 if body.temperature is None else body.temperature
    options = {
        "max_new_tokens": served.max_tokens(body),
        "temperature": float(temperature),
        "stop": body.stops,
        "seed": body.seed or 0,
    }
    try:
        schema = body.json_schema
    except ValueError as exc:
        raise APIError(400, str(exc), param="response_format") from None
    if schema is not None:
        if not getattr(served.lm, "constrained_json", False):
            raise APIError(
                400,
                f"response_format: {served.name} cannot constrain its output to JSON (serve "
                "a transformers model with the llm extra installed); leave response_format "
                "out and validate the answer instead",
                param="response_format",
            )
        options["json_schema"] = schema
    return options


# ---- reading requests -----------------------------------------------------------------------
async def _read_json(request, limits: ServerLimits) -> Any:
    """The decoded JSON body within the limits (413, 408; 400 when it is not JSON)."""
    return await read_json(request, max_bytes=limits.max_body_bytes, timeout=limits.body_timeout)


# ---- model work (runs in the worker thread) --------------------------------------------------
@dataclass
class _Done:
    text: str
    finish: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


_READY = object()  # emitted once the prompts passed their checks and generation starts


def _generation(
    served: _Served, prompts: list[str], options: dict, *, field: str
) -> Callable[[Job], list[_Done]]:
    """Work that checks every prompt's length, then streams each completion through
    ``job.emit((index, piece))``, checking ``job`` between pieces."""
    lm = served.lm

    def work(job: Job) -> list[_Done]:
        counts = [_check_prompt(served, p, options["max_new_tokens"], field) for p in prompts]
        job.emit(_READY)
        done = []
        for index, (prompt, n_prompt) in enumerate(zip(prompts, counts)):
            text = ""
            with contextlib.closing(stream_text(lm, prompt, **options)) as pieces:
                for piece in pieces:
                    job.check()
                    text += piece
                    job.emit((index, piece, None))
            n_text = lm.count_tokens(text)
            finish = "length" if n_text >= options["max_new_tokens"] else "stop"
            done.append(_Done(text, finish, n_prompt, n_text))
            job.emit((index, None, finish))
        return done

    return work


def _check_prompt(served: _Served, prompt: str, max_tokens: int, field: str) -> int:
    """The prompt's token count, or a 400 when it is too long for this server or the model."""
    limit, context = served.limits.max_prompt_tokens, getattr(served.lm, "context_length", None)
    if 4 * limit < len(prompt) // 8:  # far too long: do not even tokenise it
        raise APIError(
            400,
            f"{field} is {len(prompt)} characters, far over this server's limit "
            f"of {limit} tokens (its --max-prompt-tokens)",
            param=field,
        )
    n = served.lm.count_tokens(prompt)
    if n > limit:
        raise APIError(
            400,
            f"{field} is {n} tokens, over this server's limit of {limit} "
            "(its --max-prompt-tokens); shorten it",
            param=field,
        )
    if context is not None and n + max_tokens > context:
        raise APIError(
            400,
            f"{field} ({n} tokens) plus max_tokens ({max_tokens}) exceeds the "
            f"model's context window of {context} tokens; shorten the {field} or "
            "ask for fewer tokens",
            param=field,
        )
    return n


def _score(served: _Served, texts: list[str], start: int, job: Job) -> list[dict]:
    for text in texts:
        _check_prompt(served, text, 0, "prompt")
    heads: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        heads.setdefault(text[:start], []).append(i)
    choices: list[dict] = [{} for _ in texts]
    for head, rows in heads.items():
        job.check()
        scores = served.lm.score(head, [texts[i][len(head) :] for i in rows])
        for j, i in enumerate(rows):
            tail = texts[i][len(head) :]
            choices[i] = {
                "index": i,
                "text": texts[i],
                "finish_reason": "length",
                "logprobs": {
                    "tokens": ([head] if head else []) + [tail],
                    "token_logprobs": ([None] if head else []) + [float(scores.logprob[j])],
                    "text_offset": ([0] if head else []) + [len(head)],
                    "top_logprobs": None,
                },
                "genrec_n_tokens": int(scores.n_tokens[j]),
            }
    return choices


# ---- running work for a request ---------------------------------------------------------------
_END = object()  # queued after the job finished (all its pieces are before it)


class _Run:
    """One request's job on the model: submits it (503 when the line is full), hands over what
    it emits, and cancels it when the client goes away or its time is up."""

    def __init__(self, served: _Served, work: Callable[[Job], Any]):
        loop = asyncio.get_running_loop()
        self.items: asyncio.Queue = asyncio.Queue()

        def put(item):  # from the model's thread into this request's event loop
            loop.call_soon_threadsafe(self.items.put_nowait, item)

        self.job = Job(timeout=served.limits.request_timeout, emit=put)
        try:
            self.future = served.worker.submit(work, self.job)
        except Busy as exc:
            retry = max(1, round(served.limits.request_timeout / 4))
            raise APIError(
                503,
                f"the server is busy: {exc}; retry in a few seconds",
                kind="server_busy",
                headers={"Retry-After": str(retry)},
            ) from None
        self.future.add_done_callback(lambda _: put(_END))
        self.polled = time.monotonic()  # when the client's connection was last checked

    def stop(self) -> None:
        self.job.cancel()
        self.future.cancel()

    async def next(self, request=None) -> Any:
        """The next item the job emitted (``_END`` when it finished). With ``request``, a
        disconnected client cancels the job (an APIError 499 nobody reads)."""
        while True:
            now = time.monotonic()
            if request is not None and now - self.polled >= POLL:
                self.polled = now
                if await request.is_disconnected():
                    self.stop()
                    raise APIError(499, "the client disconnected", kind="cancelled")
            wait = min(POLL, self.job.deadline + GRACE - now)
            if wait <= 0:
                self.stop()
                raise _expired(self.job)
            try:
                return await asyncio.wait_for(self.items.get(), wait)
            except asyncio.TimeoutError:
                pass

    def result(self) -> Any:
        """The job's result, or its failure as an APIError."""
        try:
            return self.future.result(timeout=0)
        except APIError:
            raise
        except Expired:
            raise _expired(self.job) from None
        except Cancelled:
            raise APIError(499, "the request was cancelled", kind="cancelled") from None
        except ConfigError as exc:
            raise APIError(400, str(exc)) from None
        except GenrecError as exc:
            raise APIError(500, str(exc), kind="server_error") from None
        except Exception as exc:  # noqa: BLE001 (a server must answer; the client may retry)
            raise APIError(500, f"{type(exc).__name__}: {exc}", kind="server_error") from None

    async def finish(self, request) -> Any:
        """Wait for the job (cancelling it if the client leaves); its result."""
        try:
            while await self.next(request) is not _END:
                pass
        except BaseException:
            self.stop()
            raise
        return self.result()


def _expired(job: Job) -> APIError:
    return APIError(
        504,
        f"the request ran past this server's limit of {job.timeout:g} s per "
        "request (its --request-timeout); ask for fewer max_tokens or a shorter "
        "prompt",
        kind="timeout",
    )


# ---- streaming --------------------------------------------------------------------------------
async def _stream(served: _Served, work, kind: str, body, *, echo: list[str] | None = None):
    """Server-sent events: the prompt checks happen before the 200 (errors are plain JSON)."""
    from starlette.responses import StreamingResponse

    run = _Run(served, work)
    try:
        first = await run.next()
    except BaseException:
        run.stop()
        raise
    if first is not _READY:
        run.result()  # raises the job's failure
    created, ident = int(time.time()), f"cmpl-{uuid.uuid4().hex[:24]}"
    chat = kind == "chat.completion.chunk"

    def chunk(index: int, text: str | None, finish: str | None) -> str:
        if chat:
            delta = {} if text is None else {"content": text}
            choice = {"index": index, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return _event(
            {
                "id": ident,
                "object": kind,
                "created": created,
                "model": served.name,
                "choices": [choice],
            }
        )

    async def events():
        try:
            if chat:
                yield _event(
                    {
                        "id": ident,
                        "object": kind,
                        "created": created,
                        "model": served.name,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            for i, prompt in enumerate(echo if getattr(body, "echo", False) and echo else []):
                yield chunk(i, prompt, None)
            while (item := await run.next()) is not _END:
                yield chunk(*item)
            done = run.result()
            if body.stream_options is not None and body.stream_options.include_usage:
                yield _event(
                    {
                        "id": ident,
                        "object": kind,
                        "created": created,
                        "model": served.name,
                        "choices": [],
                        "usage": _usage(done),
                    }
                )
        except APIError as exc:
            yield _event(exc.body())
        finally:
            run.stop()
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


# ---- responses --------------------------------------------------------------------------------
def _envelope(served: _Served, kind: str, choices: list[dict], *, usage: dict | None = None):
    body = {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": kind,
        "created": int(time.time()),
        "model": served.name,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def _usage(done: list[_Done]) -> dict:
    prompt, completion = sum(d.prompt_tokens for d in done), sum(d.completion_tokens for d in done)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


# ---- running the server -----------------------------------------------------------------------
class LMServer:
    """A uvicorn server for ``lm`` on a socket bound when it is made (so a bad or busy port
    fails before the model loads)."""

    def __init__(
        self,
        lm: LanguageModel,
        sock: socket.socket,
        *,
        model_name: str | None,
        limits: ServerLimits,
        verbose: bool,
    ):
        uvicorn = require("uvicorn", "serve")
        self.app = create_app(lm, model_name=model_name, limits=limits)
        self.model_name = self.app.state.served.name
        self.sock = sock
        config = uvicorn.Config(
            self.app,
            http="h11",
            lifespan="on",
            access_log=verbose,
            log_level="info" if verbose else "warning",
            log_config=None if not verbose else uvicorn.config.LOGGING_CONFIG,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)

    @property
    def base_url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/v1"

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (in the main thread) or :meth:`shutdown`."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def shutdown(self) -> None:
        self.server.should_exit = True


def make_server(
    lm: LanguageModel,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    limits: ServerLimits | None = None,
    verbose: bool = False,
) -> LMServer:
    """A server bound to ``host:port`` (port 0: a free one); call ``serve_forever()``."""
    if not isinstance(lm, LanguageModel):
        raise ConfigError(f"expected a LanguageModel, got {type(lm).__name__}")
    sock = bind(host, port)
    try:
        return LMServer(
            lm, sock, model_name=model_name, limits=limits or ServerLimits(), verbose=verbose
        )
    except BaseException:
        sock.close()
        raise


@contextlib.contextmanager
def serve_in_thread(
    lm: LanguageModel,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    model_name: str | None = None,
    limits: ServerLimits | None = None,
) -> Iterator[str]:
    """Serve ``lm`` from a background thread; yields the base URL (``http://host:port/v1``)."""
    server = make_server(lm, host=host, port=port, model_name=model_name, limits=limits)
    thread = threading.Thread(target=server.serve_forever, name="genrec-serve-lm", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.server.started:
        server.shutdown()
        raise LLMError("the language-model server did not start within 30 s")
    try:
        yield server.base_url
    finally:
        server.shutdown()
        thread.join(timeout=30)


def load(lm: LanguageModel) -> None:
    """Load ``lm`` now by generating one token, so a model that cannot run fails before the
    server is announced: an LLMError with the reason on one line."""
    try:
        lm.generate(["Hello"], max_new_tokens=1)
    except GenrecError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LLMError(
            f"could not load the language model {lm.name!r}: {type(exc).__name__}: {reason}"
        ) from exc


def lm_from_cli(
    model: str, *, backend: str = "default", threads: int | None = None, cache_dir=None
) -> LanguageModel:
    """The model ``genrec serve-lm`` serves: ``model`` is a full spec (``"fake"``,
    ``"llamacpp:gemma-3-270m"``) or a shipped name / path run by ``backend``."""
    from genrec.text.backends import BACKENDS, get_language_model

    head = model.partition(":")[0].lower()
    spec = model if head in BACKENDS and (":" in model or head == "fake") else f"{backend}:{model}"
    options = {"threads": threads, "cache_dir": cache_dir}
    if spec.startswith("default:"):
        options["job"] = "generate"
    return get_language_model(spec, **options)


def serve(
    lm: LanguageModel,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    limits: ServerLimits | None = None,
    verbose: bool = False,
    announce=print,
) -> None:
    """Check the port, load the model, then serve ``lm`` until interrupted (Ctrl-C).

    Raises:
        ConfigError: the port is out of range or in use, or the host is unknown.
        LLMError: the model cannot be loaded (nothing is announced).
    """
    server = make_server(
        lm, host=host, port=port, model_name=model_name, limits=limits, verbose=verbose
    )
    try:
        load(lm)
    except BaseException:
        server.sock.close()
        raise
    announce(f"serving {server.model_name!r} at {server.base_url} (Ctrl-C stops)")
    server.serve_forever()


__all__ = [
    "LMServer",
    "ServerLimits",
    "bind",
    "create_app",
    "lm_from_cli",
    "load",
    "make_server",
    "serve",
    "serve_in_thread",
]
