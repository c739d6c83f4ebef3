"""What genrec's HTTP servers share: JSON errors, bounded request bodies and listening sockets.

Both ``genrec serve`` (:mod:`genrec.serving.app`) and ``genrec serve-lm``
(:mod:`genrec.serving.lm_server`) answer every error, on every path and method, as
``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape) and never with a stack
trace or an HTML page:

* :class:`APIError` is an HTTP error a handler raises on purpose;
* :func:`install_error_handlers` turns APIError, Starlette's own 404/405 and any unexpected
  exception (500, with the exception's type only: its text may hold paths or data) into that
  JSON;
* :func:`read_json` reads a body no larger than a limit (413) within a time (408);
  :class:`BodyLimit` is the same limit as ASGI middleware, for apps whose routes let FastAPI
  read the body;
* :func:`bind` opens the listening socket first, so a bad or busy port fails before a model
  loads.

Example:
    >>> APIError(404, "no user 'x'", kind="not_found", param="user_id").body()["error"]["param"]
    'user_id'
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

from genrec.errors import ConfigError

log = logging.getLogger("genrec.serving")


class APIError(Exception):
    """An HTTP error answered as ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.kind, self.param, self.headers = status, kind, param, headers or {}

    def body(self) -> dict:
        return {
            "error": {"message": str(self), "type": self.kind, "param": self.param, "code": None}
        }


def json_error(error: APIError):
    """The JSON response of ``error``."""
    from starlette.responses import JSONResponse

    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def install_error_handlers(app, *, routes: str) -> None:
    """Answer APIError, Starlette's HTTP errors and any other exception as JSON.

    Args:
        routes: the routes named in a 404's message, e.g. ``"GET /v1/models, POST /v1/completions"``.
    """
    from starlette.exceptions import HTTPException

    async def api_error(request, exc: APIError):
        return json_error(exc)

    async def http_error(request, exc):
        if exc.status_code == 404:
            return json_error(
                APIError(
                    404,
                    f"no route {request.method} {request.url.path}; routes: {routes}",
                    kind="not_found",
                )
            )
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return json_error(
                APIError(
                    405,
                    f"{request.method} is not allowed on "
                    f"{request.url.path}; use {allowed or 'another method'}",
                    kind="method_not_allowed",
                    headers=exc.headers,
                )
            )
        return json_error(APIError(exc.status_code, str(exc.detail), headers=exc.headers))

    async def server_error(request, exc: Exception):
        log.error(
            "%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc
        )
        return json_error(
            APIError(
                500,
                f"internal error ({type(exc).__name__}); the server logged it",
                kind="server_error",
            )
        )

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)


# ---- request bodies ---------------------------------------------------------------------------
def too_large(max_bytes: int) -> APIError:
    return APIError(
        413,
        f"the request body is larger than this server's limit of {max_bytes} "
        "bytes (its --max-body-bytes)",
        kind="request_too_large",
    )


async def read_json(request, *, max_bytes: int, timeout: float) -> Any:
    """The decoded JSON body: 413 when it is over ``max_bytes`` (by its Content-Length or as it
    arrives), 408 when it takes longer than ``timeout`` seconds, 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    try:
        raw = await asyncio.wait_for(_body(request, max_bytes), timeout)
    except asyncio.TimeoutError:
        raise APIError(
            408, f"the request body did not arrive within {timeout:g} s; check its Content-Length"
        ) from None
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise APIError(400, "the request body is not valid JSON") from None


async def _body(request, max_bytes: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413, judged by its Content-Length
    before anything is read, or as its chunks arrive."""

    def __init__(self, app, *, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_error(send, too_large(self.max_bytes))
        seen, started = 0, False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_error(send, too_large(self.max_bytes))


class _TooLarge(Exception):
    """Raised inside an app's receive when the body passed the limit."""


async def _send_error(send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---- sockets ----------------------------------------------------------------------------------
def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), or a ConfigError that says
    what to change."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be an integer from 0 to 65535, got {port!r}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}"
            "; check --host (e.g. 127.0.0.1 or 0.0.0.0)"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
            "--port or stop the process using it"
        ) from None
    sock.setblocking(False)
    return sock


__all__ = [
    "APIError",
    "BodyLimit",
    "bind",
    "install_error_handlers",
    "json_error",
    "read_json",
    "too_large",
]
