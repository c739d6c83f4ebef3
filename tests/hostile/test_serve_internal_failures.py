"""A model that fails inside genrec serve: the client gets a 500 that names no path, data or
stack frame, and the server keeps answering."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient

from genrec.data.synthetic import planted_clusters
from genrec.models import EASE
from genrec.serving.app import create_app
from genrec.serving.service import RecService, Served


class Broken(EASE):
    def _score(self, histories, users):
        raise RuntimeError("/secret/path/weights.npz exploded")


def test_a_failing_model_is_a_plain_500(caplog):
    data = planted_clusters(n_users=8, n_items=12, n_clusters=2).data
    app = create_app(RecService(data, {"broken": Served.fitted("broken", Broken().fit(data))}))
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/users/u0/recommendations")
        assert answer.status_code == 500
        assert answer.json()["error"]["type"] == "server_error"
        assert "secret" not in answer.text and "Traceback" not in answer.text
        assert client.get("/health").status_code == 200
