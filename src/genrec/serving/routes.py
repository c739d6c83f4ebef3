"""The routes of ``genrec serve`` (see :mod:`genrec.serving.app` for the table and the rules).

Each route checks the caller (:func:`caller`: key, scope, rate), calls one
:class:`~genrec.serving.service.RecService` method inside
:func:`answering` and returns its dict. Routes that score run in FastAPI's
thread pool (plain ``def``), so the event loop keeps answering health checks and 503s.
"""

import contextlib
import time
from importlib import resources
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse

from genrec.errors import ArtifactError, ConfigError, DataError, UnknownIdError
from genrec.serving import schemas
from genrec.serving.http import APIError
from genrec.serving.keys import Key


# ---- errors from the service -----------------------------------------------------------------
@contextlib.contextmanager
def answering(*, param: str | None = None):
    """Map the service's genrec errors to HTTP: unknown ids 404, bad input 422, a refused
    artifact 409."""
    try:
        yield
    except UnknownIdError as exc:
        raise APIError(404, str(exc), kind="not_found", param=param) from None
    except (ConfigError, DataError) as exc:
        raise APIError(422, str(exc), param=param) from None
    except ArtifactError as exc:
        raise APIError(409, str(exc), kind="artifact_refused") from None


def page_html() -> str:
    """The web page served at ``/``."""
    return resources.files("genrec.serving").joinpath("static/index.html").read_text("utf-8")


def caller(scope: str):
    """A dependency: 401 without a valid X-API-Key (when the app has keys), 403 when the key
    lacks ``scope``, 429 when the key (or address) is over its rate."""

    def check(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> Key | None:
        app = request.app
        key = None
        if app.state.keys is not None:
            key = app.state.keys.check(x_api_key)
            if key is None:
                what = "has no X-API-Key header" if not x_api_key else "has an unknown X-API-Key"
                raise APIError(
                    401,
                    f"this request {what}; send a key made with `genrec keys "
                    "add NAME --scope read`",
                    kind="unauthorized",
                    headers={"WWW-Authenticate": "X-API-Key"},
                )
            if not key.allows(scope):
                raise APIError(
                    403,
                    f"the key {key.name!r} has scope {key.scope!r}; "
                    f"{request.method} {request.url.path} needs {scope!r}",
                    kind="forbidden",
                )
        if app.state.limiter is not None:
            client = (
                f"key:{key.name}" if key else f"ip:{request.client.host if request.client else ''}"
            )
            wait = app.state.limiter.take(client)
            if wait:
                raise APIError(
                    429,
                    f"over this server's rate limit of "
                    f"{app.state.limits.rate_limit:g} requests/s per client; "
                    f"retry in {wait:.2f} s",
                    kind="rate_limited",
                    headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                )
        return key

    return Depends(check)


def _model(request: Request, name: str | None) -> None:
    """Label the request's metrics with the model it uses."""
    service = request.app.state.service
    request.scope["genrec.model"] = name if name is not None else service.model_names[0]


def add_routes(app, fastapi, limits) -> None:
    """Attach every route of ``genrec serve`` to ``app``."""

    K = Annotated[int, Query(ge=1, le=limits.max_k, description="list length")]
    read, write, admin = caller("read"), caller("write"), caller("admin")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return HTMLResponse(page_html(), headers={"Cache-Control": "no-cache"})

    @app.get(
        "/health",
        tags=["service"],
        responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
    )
    async def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["service"],
        responses={
            200: {
                "content": {
                    "application/json": {"example": {"ready": True, "models": ["ease", "sasrec"]}}
                }
            }
        },
    )
    async def ready(request: Request) -> dict:
        """Readiness: the models are loaded and answer."""
        return {"ready": True, "models": request.app.state.service.model_names}

    @app.get(
        "/version",
        tags=["service"],
        responses={
            200: {
                "content": {
                    "application/json": {
                        "example": {
                            "genrec": "0.1.0",
                            "dataset": "ml-100k",
                            "data_checksum": "9f1c...",
                            "models": [{"name": "ease", "config": {"reg": 250.0}}],
                        }
                    }
                }
            }
        },
    )
    async def version(request: Request) -> dict:
        """genrec's version, the dataset's fingerprint, each model's config and artifact."""
        return request.app.state.service.version()

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse, dependencies=[read])
    async def metrics(request: Request):
        """Prometheus text: ``genrec_requests_total`` and ``genrec_request_seconds``."""
        return PlainTextResponse(
            request.app.state.metrics.render(), media_type="text/plain; version=0.0.4"
        )

    @app.get(
        "/users/{user_id}/recommendations",
        tags=["recommend"],
        dependencies=[read],
        response_model=schemas.Recommendations,
    )
    def user_recommendations(
        request: Request,
        user_id: str,
        k: K = 10,
        model: str | None = None,
        exclude_seen: bool = True,
        filter: Annotated[
            list[str],
            Query(max_length=10, description="COLUMN:VALUE, e.g. genres:Comedy (repeat for AND)"),
        ] = (),
    ):
        """A user's top k, best first (seen items left out unless ``exclude_seen=false``)."""
        _model(request, model)
        with answering(param="user_id"):
            return request.app.state.service.recommend_user(
                user_id, k=k, model=model, exclude_seen=exclude_seen, filters=list(filter)
            )

    @app.post(
        "/recommendations",
        tags=["recommend"],
        dependencies=[read],
        response_model=schemas.Recommendations,
    )
    def history_recommendations(request: Request, body: schemas.HistoryRequest):
        """The top k for an anonymous history (item ids, oldest first)."""
        _check_k(body.k, limits.max_k)
        _model(request, body.model)
        with answering(param="items"):
            return request.app.state.service.recommend_history(
                body.items,
                k=body.k,
                model=body.model,
                exclude_seen=body.exclude_seen,
                filters=body.filter,
            )

    @app.get(
        "/items/{item_id}/similar",
        tags=["recommend"],
        dependencies=[read],
        response_model=schemas.Recommendations,
    )
    def similar(request: Request, item_id: str, k: K = 10, model: str | None = None):
        """Items the model recommends after this one item alone."""
        _model(request, model)
        with answering(param="item_id"):
            return request.app.state.service.similar(item_id, k=k, model=model)

    @app.get("/search", tags=["catalog"], dependencies=[read], response_model=schemas.SearchResults)
    def search(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=500)],
        k: K = 10,
        reference_item: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    ):
        """Catalog items matching free text (the served dense model, else BM25); with
        ``reference_item``, items like that one but as the text says (a served mmdense)."""
        with answering(param="q" if reference_item is None else "reference_item"):
            return request.app.state.service.search(q, k=k, reference_item=reference_item)

    @app.post(
        "/explain", tags=["recommend"], dependencies=[read], response_model=schemas.Explanation
    )
    def explain(request: Request, body: schemas.ExplainRequest):
        """Why an item suits a user or a history, from catalog facts (template text)."""
        if body.user is None and not body.history:
            raise APIError(
                422, "give user (an id) or history (item ids) to explain against", param="user"
            )
        with answering(param="item"):
            return request.app.state.service.explain(
                body.item, user_id=body.user, history=body.history
            )

    @app.post(
        "/evaluate", tags=["evaluate"], dependencies=[read], response_model=schemas.Evaluation
    )
    def evaluate(request: Request, body: schemas.EvaluateRequest):
        """Ranking metrics (from a fixed list) of posted held-out [user, item] pairs."""
        _model(request, body.model)
        with answering(param="interactions"):
            return request.app.state.service.evaluate(
                body.interactions, metrics=body.metrics, ks=body.k, model=body.model
            )

    @app.post(
        "/feedback", tags=["feedback"], dependencies=[write], response_model=schemas.FeedbackReceipt
    )
    def feedback(request: Request, body: schemas.FeedbackRequest):
        """Store interaction events, durable before this answer; an event_id seen before is
        counted as a duplicate and stored once."""
        return _store_feedback(request.app, body)

    @app.post("/chat", tags=["chat"], response_model=schemas.ChatAnswer)
    def chat(request: Request, body: schemas.ChatRequest, key: Key | None = read):
        """One turn of a conversation with the recommender agent; JSON, or server-sent events
        with ``"stream": true``. Leave ``session`` out to start, then send back the answer's."""
        _model(request, body.model)
        with answering(param="session" if body.session else "user"):
            answer = request.app.state.chats.turn(
                key.name if key else "public",
                text=body.text,
                session=body.session,
                model=body.model,
                user=body.user,
                history=body.history,
            )
        if not body.stream:
            return answer
        from genrec.serving.chat import events

        return StreamingResponse(events(answer), media_type="text/event-stream")

    @app.post("/admin/reload", tags=["admin"], dependencies=[admin])
    def reload(request: Request, body: schemas.ReloadRequest) -> dict:
        """Swap in a model's newly saved artifact; a corrupt or incompatible one is refused
        (409) and the old model keeps serving."""
        _model(request, body.model)
        with answering(param="path"):
            fresh = request.app.state.service.reload(body.model, body.path)
        return {"reloaded": body.model, "model": fresh.describe()}


def _check_k(k: int, max_k: int) -> None:
    if k > max_k:
        raise APIError(
            422, f"k: must be at most {max_k} on this server (its --max-k), got {k}", param="k"
        )


def _store_feedback(app, body) -> dict:
    from genrec.serving.feedback import Event

    store = app.state.feedback
    if store is None:
        raise APIError(
            503,
            "this server stores no feedback; start it with --feedback FILE",
            kind="not_configured",
        )
    service = app.state.service
    _, known = service.data.items.lookup([e.item for e in body.events])
    if not known.all():
        bad = [e.item for e, ok in zip(body.events, known) if not ok][:5]
        raise APIError(
            404,
            f"unknown item id(s) {bad}; feedback must name items of {service.data.name}",
            kind="not_found",
            param="events.item",
        )
    now = int(time.time())
    events = [
        Event(e.event_id, e.user, e.item, e.value, now if e.timestamp is None else e.timestamp)
        for e in body.events
    ]
    stored, duplicates = store.add(events)
    return {"stored": stored, "duplicates": duplicates, "total": store.count()}


__all__ = ["add_routes", "caller"]
