"""``genrec serve``: an HTTP recommendation service and web page (FastAPI + uvicorn, the ``serve``
extra) over a :class:`~genrec.serving.service.RecService`.

Endpoints (JSON; OpenAPI docs with examples at ``/docs``; every error is
``{"error": {"message", "type", "param", "code"}}``, never a stack trace):

=======================================  =========  ==========================================
``GET /health``                          public     the process is up
``GET /ready``                           public     the models are loaded
``GET /version``                         public     models, configs, data fingerprints
``GET /metrics``                         read       Prometheus text: counts and latency
``GET /users/{id}/recommendations``      read       ``?k=&model=&exclude_seen=&filter=``
``POST /recommendations``                read       an anonymous history, oldest first
``GET /items/{id}/similar``              read       ``?k=&model=``
``GET /search``                          read       ``?q=&k=``: text search of the catalog;
                                                    ``&reference_item=``: "like it, but q"
``POST /explain``                        read       a template explanation
``POST /evaluate``                       read       ranking metrics of posted interactions
``POST /feedback``                       write      idempotent, durable before the 200
``POST /chat``                           read       a conversation turn (JSON or SSE)
``POST /admin/reload``                   admin      swap in a model's new artifact
``GET /``                                public     the web page
=======================================  =========  ==========================================

Scopes apply when the app has keys (``--api-keys``): a missing or unknown ``X-API-Key`` gets
401, a key without the scope 403. What a client cannot do (:class:`ServeLimits`): send more
than ``rate_limit`` requests a second per key (or per address without keys; 429 with
Retry-After), send a body over ``max_body_bytes`` (413), or get in while ``max_in_flight``
requests are being answered (503 with Retry-After). An unknown user or item is 404, a bad
field 422 naming it, a refused reload 409. CORS is off unless ``cors_origins`` is given.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from genrec.data.synthetic import planted_clusters
    >>> from genrec.models import EASE
    >>> from genrec.serving.service import RecService, Served
    >>> data = planted_clusters(n_users=8, n_items=12, n_clusters=2).data
    >>> app = create_app(RecService(data, {"ease": Served.fitted("ease", EASE().fit(data))}))
    >>> answer = TestClient(app).get("/users/u0/recommendations?k=2")
    >>> answer.status_code, [item["id"] for item in answer.json()["items"]]
    (200, ['i1', 'i3'])
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, fields

from genrec.errors import (
    ConfigError,
    require,
)
from genrec.serving.chat import Conversations, open_sessions
from genrec.serving.http import APIError, BodyLimit, install_error_handlers, json_error
from genrec.serving.keys import KeyRing, RateLimiter, SharedRateLimiter
from genrec.serving.metrics import RequestMetrics
from genrec.serving.service import RecService

ROUTES = (
    "GET /, GET /health, GET /ready, GET /version, GET /metrics, GET /docs, "
    "GET /users/{user_id}/recommendations, POST /recommendations, "
    "GET /items/{item_id}/similar, GET /search, POST /explain, POST /feedback, "
    "POST /evaluate, POST /chat, POST /admin/reload"
)


@dataclass(frozen=True)
class ServeLimits:
    """What clients of ``genrec serve`` may ask (each a ``genrec serve`` option)."""

    max_body_bytes: int = 1 << 20  # larger request bodies get 413
    max_k: int = 100  # the longest list one request may ask for (k); more: 422
    max_in_flight: int = 64  # requests answered at once; more get 503 at once
    rate_limit: float = 0.0  # requests per second per key (or address); 0 = unlimited; over: 429
    burst: int = 50  # requests a client may send at once before the rate limit applies

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            low = 0 if f.name == "rate_limit" else 1
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low:
                raise ConfigError(
                    f"--{f.name.replace('_', '-')} must be a number >= {low}, got {value!r}"
                )


def create_app(
    service: RecService,
    *,
    keys: KeyRing | None = None,
    feedback=None,
    sessions=None,
    limits: ServeLimits | None = None,
    cors_origins: tuple[str, ...] = (),
    rate_file: str | None = None,
):
    """The FastAPI application over ``service`` (for uvicorn, or FastAPI's TestClient).

    Args:
        keys: the accepted API keys; None serves without authentication.
        feedback: a :class:`~genrec.serving.feedback.FeedbackStore`; None answers
            ``POST /feedback`` with 503 (no store configured).
        sessions: where ``POST /chat`` keeps conversations (a session store of
            :mod:`genrec.agents.store`); None keeps them in this process's memory.
        cors_origins: origins allowed to call from a browser (none: CORS off).
        rate_file: a SQLite file where the worker processes of one server share their rate
            limit buckets (None: this process counts alone).
    """
    fastapi = require("fastapi", "serve")
    limits = limits or ServeLimits()
    app = fastapi.FastAPI(
        title="genrec serve",
        version=service.version()["genrec"],
        description="Recommendations, similar items, search, explanations and feedback over "
        "the models genrec trained. Send `X-API-Key` when the server has keys.",
    )
    app.state.service, app.state.feedback, app.state.limits = service, feedback, limits
    app.state.metrics = RequestMetrics()
    app.state.chats = Conversations(service, sessions)
    app.state.keys = keys
    app.state.limiter = None
    if limits.rate_limit:
        app.state.limiter = (
            SharedRateLimiter(limits.rate_limit, limits.burst, rate_file)
            if rate_file
            else RateLimiter(limits.rate_limit, limits.burst)
        )
    install_error_handlers(app, routes=ROUTES)
    _install_validation_handler(app)
    from genrec.serving.routes import add_routes

    add_routes(app, fastapi, limits)
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(Admission, metrics=app.state.metrics, max_in_flight=limits.max_in_flight)
    return app


def _install_validation_handler(app) -> None:
    """FastAPI's 422s as the shared JSON error, with one message naming the field."""
    from fastapi.exceptions import RequestValidationError

    async def invalid(request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        name = ".".join(loc) or "body"
        if first.get("type") == "missing":
            message = f"{name}: field required"
        elif first.get("type") == "extra_forbidden":
            message = f"unknown field {name!r}"
        else:
            got = repr(first.get("input"))
            got = got if len(got) <= 60 else got[:60] + "..."
            message = f"{name}: {str(first.get('msg', '')).lower()}, got {got}"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return json_error(APIError(422, message + more, param=loc[0] if loc else None))

    app.add_exception_handler(RequestValidationError, invalid)


class Admission:
    """ASGI middleware: at most ``max_in_flight`` requests at once (more get 503 with
    Retry-After, at once), and each answered request timed into ``metrics`` under its route
    template and the model it used."""

    def __init__(self, app, *, metrics: RequestMetrics, max_in_flight: int):
        self.app, self.metrics, self.max_in_flight = app, metrics, max_in_flight
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_in_flight:
            from genrec.serving.http import _send_error

            self.metrics.observe("overloaded", "", 503, 0.0)
            return await _send_error(
                send,
                APIError(
                    503,
                    f"the server is answering {self.max_in_flight} requests already (its "
                    "--max-in-flight); retry in a second",
                    kind="server_busy",
                    headers={"Retry-After": "1"},
                ),
            )
        status = 500
        start = time.perf_counter()

        async def timed_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.in_flight -= 1
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                endpoint, scope.get("genrec.model", ""), status, time.perf_counter() - start
            )


# ---- building the app from settings (uvicorn workers) ----------------------------------------
@dataclass(frozen=True)
class ServeSettings:
    """Everything a worker process needs to build the same app (JSON-able)."""

    dataset: str
    models: tuple[str, ...]
    artifacts: str
    cache_dir: str
    filters: dict
    engine: str = "auto"  # how the dataset is read (genrec.data.sources.load_dataset)
    api_keys: str | None = None
    feedback: str | None = None
    sessions: str | None = None
    rate_file: str | None = None  # set by serve() when several workers share a rate limit
    cors_origins: tuple[str, ...] = ()
    limits: dict | None = None
    seed: int = 2020
    threads: int | None = None
    combiners: dict | None = None  # served model spec -> a saved LearnedCombiner (.npz file)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        values = json.loads(text)
        values["models"] = tuple(values["models"])
        values["cors_origins"] = tuple(values["cors_origins"])
        return cls(**values)


ENV = "GENREC_SERVE_SETTINGS"  # how the parent hands ServeSettings to uvicorn's workers


def build_service(settings: ServeSettings, *, notice=lambda message: None) -> RecService:
    """Load the saved combiners (first: a bad file fails before any model loads), the dataset
    and every model (training and saving the missing ones)."""
    from types import SimpleNamespace

    from genrec.experiment import load_data
    from genrec.options import RunOptions
    from genrec.serving.service import load_combiners, load_served

    combiners = load_combiners(settings.combiners, settings.models)
    data, _ = load_data(
        SimpleNamespace(dataset=settings.dataset, filters=settings.filters, engine=settings.engine),
        cache_dir=settings.cache_dir,
        progress=False,
    )
    options = RunOptions(seed=settings.seed, threads=settings.threads, progress=False)
    models = load_served(data, settings.models, settings.artifacts, options=options, notice=notice)
    return RecService(data, models, combiners=combiners)


def build_app(settings: ServeSettings, service: RecService | None = None):
    """The app of ``settings`` (building the service unless given), in a process that scores
    with one BLAS and one torch thread per request: the server's parallelism is its concurrent
    requests and ``--workers``, and a thread pool of requests each starting a pool of BLAS
    threads oversubscribes the cores."""
    from genrec.serving.feedback import FeedbackStore

    _one_compute_thread_per_request()
    service = service or build_service(settings)
    keys = KeyRing.from_file(settings.api_keys) if settings.api_keys else None
    store = FeedbackStore(settings.feedback) if settings.feedback else None
    sessions = open_sessions(settings.sessions) if settings.sessions else None
    return create_app(
        service,
        keys=keys,
        feedback=store,
        sessions=sessions,
        limits=ServeLimits(**(settings.limits or {})),
        cors_origins=settings.cors_origins,
        rate_file=settings.rate_file,
    )


def _one_compute_thread_per_request() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def app_from_env():
    """uvicorn's app factory in each worker process (``--workers N``)."""
    return build_app(ServeSettings.from_json(os.environ[ENV]))


def serve(
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    verbose: bool = False,
    announce=print,
) -> None:
    """Check the port, load or train the models, then serve until interrupted (Ctrl-C or
    SIGTERM, which stops accepting and lets in-flight requests finish).

    Raises:
        ConfigError: a bad port or host, a bad key file, bad limits, a combiner for a model
            not served (or one that does not fit its model).
        ArtifactError: a combiner file is missing or not a saved combiner.
    """
    from genrec.serving.http import bind

    uvicorn = require("uvicorn", "serve")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be an integer >= 1, got {workers!r}")
    ServeLimits(**(settings.limits or {}))  # bad limits or keys fail before anything loads
    if settings.api_keys:
        KeyRing.from_file(settings.api_keys)
    if settings.sessions:
        open_sessions(settings.sessions)
    sock = bind(host, port)
    try:
        service = build_service(settings, notice=lambda m: announce(f"notice: {m}"))
        app = build_app(settings, service) if workers == 1 else None
    except BaseException:
        sock.close()
        raise
    where = sock.getsockname()
    log = {"access_log": verbose, "log_level": "info" if verbose else "warning"}
    announce(
        f"serving {', '.join(service.model_names)} on {service.data.name} at "
        f"http://{where[0]}:{where[1]} ({workers} worker(s); docs at /docs; Ctrl-C stops)"
    )
    if workers == 1:
        config = uvicorn.Config(app, timeout_graceful_shutdown=30, **log)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
        return
    sock.close()
    shared = None  # a folder for the workers' shared rate buckets
    if (settings.limits or {}).get("rate_limit"):
        shared = tempfile.mkdtemp(prefix="genrec-serve-")
        settings = dataclasses.replace(settings, rate_file=os.path.join(shared, "rates.sqlite"))
    os.environ[ENV] = settings.to_json()
    try:
        uvicorn.run(
            "genrec.serving.app:app_from_env",
            factory=True,
            host=host,
            port=where[1],
            workers=workers,
            timeout_graceful_shutdown=30,
            **log,
        )
    finally:
        if shared:
            shutil.rmtree(shared, ignore_errors=True)


__all__ = [
    "Admission",
    "ServeLimits",
    "ServeSettings",
    "app_from_env",
    "build_app",
    "build_service",
    "create_app",
    "serve",
]
