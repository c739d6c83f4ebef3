"""The request bodies ``genrec serve-lm`` accepts, validated field by field (pydantic, strict).

Every field has a type and a range; OpenAI fields this server does not implement are accepted
only at their neutral value (``n=1``, ``top_p=1``, zero penalties, no ``logit_bias``, ...), and
any other field is refused, as OpenAI itself refuses unknown arguments. :func:`parse` turns a
decoded JSON body into a request or an :class:`APIError` (HTTP 400) whose message names the
field, what it got and what is allowed.

Example:
    >>> parse(CompletionRequest, {"prompt": "hi", "max_tokens": 4}).max_tokens
    4
    >>> try:
    ...     parse(CompletionRequest, {"max_tokens": 4})
    ... except APIError as exc:
    ...     print(exc.status, exc.param, exc)
    400 prompt prompt: field required
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from genrec.serving.http import APIError

_NEUTRAL = {
    "n": 1,
    "best_of": 1,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "suffix": None,
}


class _Generation(BaseModel):
    """Fields both endpoints share."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = None  # must be the served model's name when given
    max_tokens: int | None = Field(None, ge=1)  # default 16; at most the server's cap
    max_completion_tokens: int | None = Field(None, ge=1)  # the newer name of max_tokens
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)  # default 1
    top_p: float | None = Field(None, allow_inf_nan=False)  # only 1 (no nucleus sampling)
    n: int | None = None  # only 1
    stream: bool = False  # server-sent events, ending with "data: [DONE]"
    stream_options: _StreamOptions | None = None
    stop: str | list[str] | None = Field(None)  # up to 4 strings
    seed: int | None = Field(None, ge=0)
    presence_penalty: float | None = Field(None, allow_inf_nan=False)  # only 0
    frequency_penalty: float | None = Field(None, allow_inf_nan=False)  # only 0
    logit_bias: dict[str, float] | None = None  # only empty
    user: str | None = None  # accepted and ignored
    response_format: _ResponseFormat | None = None  # JSON mode (needs a constraining model)

    @model_validator(mode="after")
    def _supported(self):
        for field, neutral in _NEUTRAL.items():
            value = getattr(self, field, neutral)
            if value is not None and value != neutral:
                raise _FieldError(
                    field,
                    f"{field}={value!r} is not supported by this server; "
                    f"leave it out or send {neutral!r}",
                )
        if self.logit_bias:
            raise _FieldError("logit_bias", "logit_bias is not supported; leave it out")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise _FieldError("stop", f"stop takes at most 4 strings, got {len(self.stop)}")
        if self.stream_options is not None and not self.stream:
            raise _FieldError("stream_options", "stream_options needs stream=true")
        return self

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def json_schema(self) -> dict | None:
        """The schema the answer must follow: ``response_format``'s schema, any JSON object
        for ``json_object``, None for ``text`` or no ``response_format``."""
        fmt = self.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return {"type": "object"}
        if fmt.json_schema is None:
            raise _FieldError(
                "response_format", 'type "json_schema" needs "json_schema": {"schema": {...}}'
            )
        return fmt.json_schema.schema_

    @property
    def requested_tokens(self) -> int | None:
        return self.max_tokens if self.max_tokens is not None else self.max_completion_tokens


class _JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    name: str = "answer"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None  # accepted; the schema is always enforced
    description: str | None = None


class _ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchemaFormat | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    include_usage: bool = False  # a last chunk with token counts and no choices


class CompletionRequest(_Generation):
    """``POST /v1/completions``."""

    prompt: str | list[str]  # required; a list of strings is one completion each (not tokens)
    echo: bool = False  # the prompt before its completion
    logprobs: int | None = Field(None, ge=0, le=5)  # with echo=true: score the prompt instead
    genrec_score_from: int = Field(0, ge=0)  # scoring: the character where continuations start
    best_of: int | None = None  # only 1
    suffix: str | None = None  # not supported

    @model_validator(mode="after")
    def _prompts(self):
        if isinstance(self.prompt, list) and not self.prompt:
            raise _FieldError("prompt", "prompt must not be an empty list")
        return self

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def scoring(self) -> bool:
        return self.echo and self.logprobs is not None


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "developer", "user", "assistant"] = "user"
    content: str
    name: str | None = None


class ChatRequest(_Generation):
    """``POST /v1/chat/completions``."""

    messages: list[Message] = Field(min_length=1)
    logprobs: bool | None = None  # only false
    top_logprobs: int | None = None  # only absent

    @model_validator(mode="after")
    def _no_logprobs(self):
        if self.logprobs or self.top_logprobs is not None:
            raise _FieldError(
                "logprobs",
                "chat logprobs are not supported; use /v1/completions "
                "with echo=true and logprobs=0 to score text",
            )
        return self

    def prompt(self) -> str:
        """One user message as it is; a conversation as a ``role: content`` transcript."""
        if len(self.messages) == 1 and self.messages[0].role == "user":
            return self.messages[0].content
        return "".join(f"{m.role}: {m.content}\n" for m in self.messages) + "assistant:"


_Generation.model_rebuild()


class _FieldError(ValueError):
    """A cross-field check that failed; carries the field it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def parse(kind: type[BaseModel], body: Any):
    """``body`` (decoded JSON) as a ``kind`` request, or an APIError (400) naming the field."""
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a JSON object, got {type(body).__name__}")
    try:
        return kind.model_validate(body)
    except ValidationError as exc:
        raise _as_api_error(exc, sorted(kind.model_fields)) from None


_SHAPES = {
    "prompt": "prompt must be a string or a list of strings (token ids are not supported)",
    "stop": "stop must be a string or a list of up to 4 strings",
}


def _as_api_error(exc: ValidationError, allowed: list[str]) -> APIError:
    error = exc.errors()[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _FieldError):
        return APIError(400, str(cause), param=cause.field)
    loc = [str(part) for part in error["loc"] if not _is_union_tag(part)]
    field = ".".join(loc) or "body"
    if error["type"] == "missing":
        message = f"{field}: field required"
    elif loc and loc[0] in _SHAPES:
        message = f"{_SHAPES[loc[0]]}, got {_short(error.get('input'))}"
    elif error["type"] == "extra_forbidden":
        message = f"unknown field {field!r}; allowed fields: {', '.join(allowed)}"
    else:
        message = f"{field}: {error['msg'].lower()}, got {_short(error.get('input'))}"
    return APIError(400, message, param=loc[0] if loc else None)


def _is_union_tag(part) -> bool:
    """pydantic names the member of a union it tried (``str``, ``list[str]``) in error paths."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["APIError", "ChatRequest", "CompletionRequest", "Message", "parse"]
