"""Request and response bodies of ``genrec serve`` (pydantic, strict: a wrong type or an unknown
field is a 422 that names the field). Each carries an example, shown at ``/docs``.

Example:
    >>> HistoryRequest.model_validate({"items": ["50", "181"], "k": 5}).k
    5
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from genrec.serving.service import EVAL_METRICS

_ID = Field(min_length=1, max_length=200)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Item(BaseModel):
    id: str
    title: str
    score: float


class Recommendations(BaseModel):
    model: str
    k: int
    items: list[Item]
    user: str | None = None
    item: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "user": "196",
                "model": "ease",
                "k": 2,
                "items": [
                    {"id": "50", "title": "Star Wars (1977)", "score": 1.42},
                    {"id": "181", "title": "Return of the Jedi (1983)", "score": 1.17},
                ],
            }
        }
    )


class HistoryRequest(_Strict):
    """An anonymous history, oldest first."""

    items: list[str] = Field(min_length=1, max_length=1000)
    k: int = Field(10, ge=1, le=1000)
    model: str | None = None
    exclude_seen: bool = True
    filter: list[str] = Field(default_factory=list, max_length=10)

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"example": {"items": ["172", "181", "50"], "k": 10, "model": "sasrec"}},
    )


class SearchResults(BaseModel):
    query: str
    method: str
    items: list[Item]
    reference_item: str | None = None  # set for a composed query ("like this one, but ...")


class ExplainRequest(_Strict):
    """Why ``item`` suits ``user`` (their history in the data) or an anonymous ``history``."""

    item: str = _ID
    user: str | None = None
    history: list[str] = Field(default_factory=list, max_length=1000)

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"example": {"item": "50", "user": "196"}}
    )


class Fact(BaseModel):
    item: str
    field: str
    value: str


class Explanation(BaseModel):
    item: str
    title: str
    text: str
    facts: list[Fact]
    related: list[str]


class FeedbackEvent(_Strict):
    event_id: str = _ID  # the client's id: sending it again stores nothing new
    user: str = _ID
    item: str = _ID
    value: float = Field(1.0, allow_inf_nan=False)  # 1.0 for implicit feedback
    timestamp: int | None = Field(None, ge=0)  # seconds since the epoch; default: now


class FeedbackRequest(_Strict):
    events: list[FeedbackEvent] = Field(min_length=1, max_length=1000)

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "example": {
                "events": [{"event_id": "3f2a9c", "user": "196", "item": "50", "value": 1.0}]
            }
        },
    )


class FeedbackReceipt(BaseModel):
    stored: int  # new events, on disk before this answer
    duplicates: int  # events whose event_id was stored before
    total: int  # events in the store


class EvaluateRequest(_Strict):
    """Held-out ``[user, item]`` pairs; each known user is ranked from their history."""

    interactions: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        min_length=1, max_length=100_000
    )  # [user, item] pairs
    metrics: list[Literal[EVAL_METRICS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["ndcg", "recall"], min_length=1
    )
    k: list[int] = Field(default_factory=lambda: [10], min_length=1, max_length=5)
    model: str | None = None

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "example": {
                "interactions": [["196", "50"], ["186", "302"]],
                "metrics": ["ndcg", "recall"],
                "k": [10],
                "model": "ease",
            }
        },
    )


class Evaluation(BaseModel):
    model: str
    users: int
    skipped: int
    results: dict[str, float]


class ChatRequest(_Strict):
    """One turn: ``text``, and the ``session`` token of an earlier answer (none starts a new
    conversation, seeded with a dataset ``user``'s history or an anonymous ``history``)."""

    text: str = Field(min_length=1, max_length=2000)
    session: str | None = Field(None, min_length=16, max_length=64)
    model: str | None = None
    user: str | None = Field(None, min_length=1, max_length=200)
    history: list[str] = Field(default_factory=list, max_length=1000)
    stream: bool = False  # True: server-sent events (session, items, delta..., done)

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"example": {"text": "a comedy from the nineties", "user": "196"}},
    )


class ChatItem(BaseModel):
    id: str
    title: str


class ChatAnswer(BaseModel):
    session: str  # send it back to continue this conversation
    model: str
    text: str
    items: list[ChatItem]
    question: str | None = None  # the clarifying question asked, if any


class ReloadRequest(_Strict):
    model: str = _ID
    path: str | None = None  # an artifact folder; default: where the model was loaded from

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"example": {"model": "ease"}}
    )


__all__ = [
    "ChatAnswer",
    "ChatItem",
    "ChatRequest",
    "EvaluateRequest",
    "Evaluation",
    "ExplainRequest",
    "Explanation",
    "FeedbackEvent",
    "FeedbackReceipt",
    "FeedbackRequest",
    "HistoryRequest",
    "Item",
    "Recommendations",
    "ReloadRequest",
    "SearchResults",
]
