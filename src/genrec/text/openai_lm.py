"""Any OpenAI-compatible HTTP server (vLLM, llama.cpp's server, Ollama, ``genrec serve-lm``)
behind the :class:`~genrec.text.lm.LanguageModel` protocol; standard library only (urllib).

* Generation: ``POST {base_url}/completions`` with the prompt, or, with ``chat=True``,
  ``POST {base_url}/chat/completions`` with the prompt as one user message (the server applies
  the model's chat template).
* Structured output: ``generate(..., json_schema=S)`` asks the server to constrain its answer,
  as ``json_mode`` says: ``"json_schema"`` (default) sends ``response_format = {"type":
  "json_schema", "json_schema": {"name": "answer", "schema": S}}`` (vLLM, llama.cpp's server,
  OpenAI, ``genrec serve-lm`` over a constraining backend); ``"json_object"`` sends
  ``{"type": "json_object"}`` (valid JSON, schema not enforced: put it in the prompt);
  ``"tools"`` (chat only) offers one function whose parameters are ``S`` with ``tool_choice``
  forcing it and returns its ``arguments``; ``"none"`` sends nothing (``constrained_json`` is
  then false). What the server returns is not checked against ``S`` here: callers validate.
* Scoring: ``POST {base_url}/completions`` with ``prompt = [prompt + c for c in continuations]``,
  ``echo=true``, ``logprobs=0`` and ``max_tokens=1``: the server returns the log-probability of
  every echoed prompt token with its character offset; a continuation's score is the sum over
  the tokens that end after the shared prompt (a token straddling the boundary counts for the
  continuation); tokens generated after the text are ignored. The request also carries the
  genrec extension ``"genrec_score_from": len(prompt)``, which ``genrec serve-lm`` uses to score
  all continuations on one cached prompt; other servers ignore it. Servers that return no prompt
  logprobs (chat-only servers, Ollama, llama.cpp's server without ``logits_all``) raise an
  :class:`~genrec.errors.LLMError` that says so.
* Robustness: each request has a ``timeout``; connection errors, timeouts, HTTP 429 and 5xx are
  retried ``retries`` times with exponential backoff (``backoff * 2**attempt`` seconds, or the
  server's ``Retry-After`` when given, at most ``max_backoff``); other errors fail at once. Every
  failure is an LLMError naming the URL, the status and what to check.

The API key: ``api_key``, else the environment variable named by ``api_key_env`` (read once,
when the client is made; keys should not travel in spec strings or command lines). It is sent as
``Authorization: Bearer <key>``; none is sent when there is no key.

Example (against a server of our own that wraps the fake model)::

    >>> from genrec.serving.lm_server import serve_in_thread
    >>> from genrec.text.lm import FakeLanguageModel
    >>> with serve_in_thread(FakeLanguageModel()) as url:
    ...     lm = OpenAICompatibleLM(url, model="fake")
    ...     lm.generate(["Say hi"], max_new_tokens=4)
    ['Say hi']
"""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np

from genrec.errors import ConfigError, LLMError
from genrec.text.lm import (
    ContinuationScores,
    check_continuations,
    check_generation_args,
    cut_at_stop,
)

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
JSON_MODES = ("json_schema", "json_object", "tools", "none")


class OpenAICompatibleLM:
    """A client of an OpenAI-compatible server.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server knows (``GET {base_url}/models`` lists them).
        api_key: the bearer key; None reads ``api_key_env``.
        api_key_env: the environment variable holding the key (default ``OPENAI_API_KEY``).
        chat: generate through ``/chat/completions`` (for instruction models).
        json_mode: how ``json_schema`` reaches the server (:data:`JSON_MODES`; see above).
        timeout: seconds per request.
        retries: extra attempts after a connection error, timeout, 429 or 5xx.
        backoff: seconds before the first retry; doubled at each further retry.
        max_backoff: the longest wait between two attempts.
        name: the name to report (default ``openai:<model>``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        chat: bool = False,
        json_mode: str = "json_schema",
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        name: str | None = None,
    ):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url must start with http:// or https://, got {base_url!r} "
                "(e.g. 'http://127.0.0.1:8000/v1')"
            )
        if not model:
            raise ConfigError("model must name the server's model (see GET <base_url>/models)")
        for field, value, low in (
            ("timeout", timeout, 0.0),
            ("backoff", backoff, 0.0),
            ("max_backoff", max_backoff, 0.0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
                raise ConfigError(f"{field} must be a number >= {low}, got {value!r}")
        if json_mode not in JSON_MODES:
            raise ConfigError(f"json_mode must be one of {JSON_MODES}, got {json_mode!r}")
        if json_mode == "tools" and not chat:
            raise ConfigError("json_mode='tools' needs chat=True (tool calls are a chat feature)")
        self.json_mode = json_mode
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be a non-negative integer, got {retries!r}")
        self.base_url, self.model, self.chat = base_url.rstrip("/"), model, chat
        self.timeout, self.retries, self.backoff, self.max_backoff = (
            float(timeout),
            retries,
            float(backoff),
            float(max_backoff),
        )
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.name = name or f"openai:{model}"

    # ---- protocol -------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
        json_schema: dict | None = None,
    ) -> list[str]:
        """One completion per prompt (one request per prompt); ``json_schema`` goes to the
        server as ``json_mode`` says."""
        check_generation_args(max_new_tokens, temperature)
        if isinstance(prompts, str):
            raise ConfigError("prompts must be a list of strings, not one string")
        if json_schema is not None and not self.constrained_json:
            raise ConfigError("json_mode='none' sends no schema; use generate_json(), which checks")
        stop = [s for s in stop if s]
        common = {
            "model": self.model,
            "max_tokens": max_new_tokens,
            "temperature": float(temperature),
            "seed": seed,
            **({"stop": stop} if stop else {}),
            **({} if json_schema is None else self._json_fields(json_schema)),
        }
        out = []
        for prompt in prompts:
            if self.chat:
                body = self.post(
                    "/chat/completions",
                    {**common, "messages": [{"role": "user", "content": prompt}]},
                )
                message = _first_choice(body, self.base_url).get("message", {})
                text = message.get("content")
                if json_schema is not None and self.json_mode == "tools":
                    text = _tool_arguments(message, self.base_url)
            else:
                body = self.post("/completions", {**common, "prompt": prompt})
                text = _first_choice(body, self.base_url).get("text")
            if not isinstance(text, str):
                raise LLMError(f"{self.base_url} returned a choice without text: {_excerpt(body)}")
            out.append(cut_at_stop(text, stop))
        return out

    @property
    def constrained_json(self) -> bool:
        """Whether ``generate`` passes ``json_schema`` on (every ``json_mode`` but "none")."""
        return self.json_mode != "none"

    def _json_fields(self, schema: dict) -> dict:
        """The request fields that ask for output following ``schema``."""
        if not isinstance(schema, dict):
            raise ConfigError(f"json_schema must be a dict, got {type(schema).__name__}")
        if self.json_mode == "json_object":
            return {"response_format": {"type": "json_object"}}
        if self.json_mode == "tools":
            return {
                "tools": [
                    {"type": "function", "function": {"name": "answer", "parameters": schema}}
                ],
                "tool_choice": {"type": "function", "function": {"name": "answer"}},
            }
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            }
        }

    def score(self, prompt: str, continuations: Sequence[str]) -> ContinuationScores:
        """Log-probability of each continuation after ``prompt`` from the server's echoed prompt
        logprobs (see the module docstring)."""
        continuations = check_continuations(continuations)
        if not continuations:
            return ContinuationScores(np.zeros(0), np.zeros(0, np.int64))
        texts = [prompt + c for c in continuations]
        body = self.post(
            "/completions",
            {
                "model": self.model,
                "prompt": texts,
                "echo": True,
                "logprobs": 0,
                "max_tokens": 1,
                "temperature": 0.0,
                "genrec_score_from": len(prompt),
            },
        )
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or len(choices) != len(texts):
            raise LLMError(
                f"{self.base_url}/completions returned {len(choices or [])} choices for "
                f"{len(texts)} prompts: {_excerpt(body)}"
            )
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        pairs = [
            _continuation_logprob(c, len(prompt), len(t), self.base_url)
            for c, t in zip(choices, texts)
        ]
        return ContinuationScores(
            np.array([p[0] for p in pairs], np.float64), np.array([p[1] for p in pairs], np.int64)
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the server's tokenizer (from an echo of the text with logprobs);
        a whitespace-split estimate when the server does not echo tokens."""
        try:
            body = self.post(
                "/completions",
                {
                    "model": self.model,
                    "prompt": text,
                    "echo": True,
                    "logprobs": 0,
                    "max_tokens": 1,
                    "temperature": 0.0,
                },
            )
            choice = _first_choice(body, self.base_url)
        except LLMError:
            return len(text.split())
        if "genrec_n_tokens" in choice:
            return int(choice["genrec_n_tokens"])
        logprobs = choice.get("logprobs") or {}
        pairs = zip(logprobs.get("tokens") or [], logprobs.get("text_offset") or [])
        return sum(1 for token, offset in pairs if token and offset < len(text)) or len(
            text.split()
        )

    # ---- HTTP -------------------------------------------------------------------------------
    def models(self) -> list[str]:
        """The model names the server lists (``GET {base_url}/models``)."""
        body = self.request("GET", "/models")
        return [m.get("id") for m in body.get("data", [])] if isinstance(body, dict) else []

    def post(self, path: str, payload: dict) -> dict:
        return self.request("POST", path, payload)

    def request(self, method: str, path: str, payload: dict | None = None) -> dict:
        """One JSON request with timeouts and retries; the decoded JSON body, or LLMError."""
        url = self.base_url + path
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        problem = ""
        for attempt in range(self.retries + 1):
            wait = min(self.backoff * 2**attempt, self.max_backoff)
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                return _json(raw, url)
            except urllib.error.HTTPError as exc:
                detail = _excerpt(exc.read().decode(errors="replace"))
                problem = f"HTTP {exc.code} from {method} {url}: {detail}"
                if exc.code not in RETRY_STATUS:
                    raise LLMError(problem + _hint(exc.code)) from None
                wait = min(_retry_after(exc.headers.get("Retry-After")) or wait, self.max_backoff)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                problem = f"{method} {url} failed: {reason}"
            if attempt < self.retries:
                time.sleep(wait)
        raise LLMError(
            f"{problem} (after {self.retries + 1} attempts). Check that the server is "
            f"running and reachable at {self.base_url}, and the timeout "
            f"({self.timeout:g} s) is long enough for the model"
        )


# ---- helpers --------------------------------------------------------------------------------
def _continuation_logprob(choice: dict, start: int, end: int, url: str) -> tuple[float, int]:
    """(sum logprob, n tokens) of the echoed tokens that end after ``start`` and begin before
    ``end`` (the continuation; a token straddling ``start`` counts, generated ones do not)."""
    logprobs = choice.get("logprobs") or {}
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    offsets = logprobs.get("text_offset")
    if not tokens or values is None or offsets is None:
        raise LLMError(
            f"{url}/completions returned no prompt logprobs for echo=true; this server "
            "cannot score continuations (vLLM and `genrec serve-lm` can; llama.cpp's "
            "Python server needs logits_all; chat-only servers and Ollama cannot). "
            "Use another backend for scoring"
        )
    if "genrec_n_tokens" in choice:  # genrec serve-lm: the continuation is one pseudo-token
        return float(values[-1]), max(int(choice["genrec_n_tokens"]), 1)
    total, count = 0.0, 0
    for token, value, offset in zip(tokens, values, offsets):
        if offset + len(token) > start and offset < end:
            if value is None:
                raise LLMError(
                    f"{url} gave no logprob for the continuation token {token!r} at "
                    f"offset {offset}; is the prompt empty?"
                )
            total += float(value)
            count += 1
    return total, max(count, 1)


def _tool_arguments(message: dict, url: str) -> str:
    """The arguments (JSON text) of the first tool call in a chat ``message``."""
    calls = message.get("tool_calls") or []
    arguments = calls[0].get("function", {}).get("arguments") if calls else None
    if isinstance(arguments, dict):  # some servers send the object itself
        return json.dumps(arguments)
    if not isinstance(arguments, str):
        raise LLMError(
            f"{url} answered without a tool call although tool_choice forced one: "
            f"{_excerpt(message)}; use json_mode='json_schema' or 'json_object' with this server"
        )
    return arguments


def _first_choice(body, url: str) -> dict:
    try:
        choice = body["choices"][0]
        if isinstance(choice, dict):
            return choice
    except (KeyError, IndexError, TypeError):
        pass
    raise LLMError(f"{url} returned no choices: {_excerpt(body)}")


def _json(raw: bytes, url: str):
    try:
        return json.loads(raw)
    except ValueError:
        raise LLMError(
            f"{url} did not return JSON: {_excerpt(raw.decode(errors='replace'))}; "
            "is base_url the API root (ending in /v1)?"
        ) from None


def _excerpt(body, limit: int = 300) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _hint(status: int) -> str:
    return {
        401: "; check the API key (api_key or its environment variable)",
        403: "; the key is not allowed to use this model",
        404: "; check base_url (it should end in /v1) and the model name (GET /v1/models)",
        400: "; the server rejected the request (model name, context length or an "
        "unsupported option)",
    }.get(status, "")


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay seconds or an HTTP date); None when
    the header is missing or malformed, so the caller falls back to its own backoff."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # an HTTP date is in GMT; a date without a zone is read as such
            when = when.replace(tzinfo=datetime.timezone.utc)
        return max(0.0, when.timestamp() - time.time())
    return max(0.0, seconds) if math.isfinite(seconds) else None


__all__ = ["JSON_MODES", "OpenAICompatibleLM", "RETRY_STATUS"]
