"""genrec serve given malformed requests: every one gets a JSON error naming the field (422),
the unknown id (404) or the route, never a 500 or a stack trace."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient

from genrec.data.synthetic import planted_clusters
from genrec.models import EASE
from genrec.serving.app import create_app
from genrec.serving.service import RecService, Served


@pytest.fixture(scope="module")
def client():
    data = planted_clusters(n_users=8, n_items=12, n_clusters=2).data
    with TestClient(
        create_app(RecService(data, {"ease": Served.fitted("ease", EASE().fit(data))}))
    ) as c:
        yield c


@pytest.mark.parametrize(
    "method,path,body,status,named",
    [
        ("GET", "/users/u0/recommendations?k=0", None, 422, "k"),
        ("GET", "/users/u0/recommendations?k=abc", None, 422, "k"),
        ("GET", "/users/u0/recommendations?k=101", None, 422, "k"),
        ("GET", "/users/u0/recommendations?model=nope", None, 422, "nope"),
        ("GET", "/users/ghost/recommendations", None, 404, "ghost"),
        ("GET", "/items/ghost/similar", None, 404, "ghost"),
        ("GET", "/search?q=", None, 422, "q"),
        ("GET", "/search?q=red&reference_item=", None, 422, "reference_item"),
        ("GET", "/search?q=red&reference_item=i0", None, 422, "reference_item"),  # no mmdense
        ("POST", "/recommendations", {"items": []}, 422, "items"),
        ("POST", "/recommendations", {"items": ["i0"], "k": "5"}, 422, "k"),
        ("POST", "/recommendations", {"items": ["i0"], "colour": 1}, 422, "colour"),
        ("POST", "/recommendations", {"items": ["i0", "ghost"]}, 404, "ghost"),
        ("POST", "/recommendations", [1, 2], 422, "body"),
        ("POST", "/explain", {"item": "i0"}, 422, "user"),
        ("POST", "/evaluate", {"interactions": [["u0"]]}, 422, "interactions"),
        (
            "POST",
            "/evaluate",
            {"interactions": [["u0", "i1"]], "metrics": ["eval('1')"]},
            422,
            "metrics",
        ),
        (
            "POST",
            "/feedback",
            {"events": [{"event_id": "a", "user": "u0", "item": "i0"}]},
            503,
            "--feedback",
        ),
        ("POST", "/admin/reload", {"model": "ease"}, 422, "not loaded from an artifact"),
        ("GET", "/nowhere", None, 404, "no route"),
        ("GET", "/chat", None, 405, "POST"),
        ("POST", "/chat", {"text": "hi", "session": "x" * 65}, 422, "session"),
        ("DELETE", "/health", None, 405, "GET"),
    ],
)
def test_malformed_request_gets_a_json_error(client, method, path, body, status, named):
    answer = client.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert named in error["message"] or error["param"] == named
    assert "Traceback" not in answer.text and 'File "' not in answer.text


def test_body_that_is_not_json(client):
    answer = client.post(
        "/recommendations", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422 and "error" in answer.json()
