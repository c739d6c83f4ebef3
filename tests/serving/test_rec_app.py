"""genrec serve through FastAPI's TestClient: every endpoint on tiny planted-cluster data whose
right answers are known (an item's neighbours are its own cluster), keys, limits, reloads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
from fastapi.testclient import TestClient
from servekit import GENRES, WORDS, movielens_folder

from genrec.build import train_and_save
from genrec.data import load_movielens
from genrec.models import EASE, SASRec
from genrec.options import RunOptions
from genrec.serving.app import ServeLimits, create_app
from genrec.serving.feedback import FeedbackStore, read_feedback, with_feedback
from genrec.serving.keys import KeyRing, add_key
from genrec.serving.service import RecService


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_movielens(movielens_folder(tmp_path_factory.mktemp("ml") / "tiny"))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("artifacts")
    opts = RunOptions(seed=0, threads=1)
    train_and_save(EASE(reg=1.0), data, root / "ease", options=opts)
    train_and_save(
        SASRec(dim=16, n_blocks=1, max_epochs=30, max_len=8, dropout=0.0),
        data,
        root / "sasrec",
        options=opts,
    )
    return root


def make_service(data, artifacts) -> RecService:
    from genrec.serving.service import load_served

    return RecService(data, load_served(data, ["ease", "sasrec"], artifacts))


@pytest.fixture
def client(data, artifacts, tmp_path):
    app = create_app(make_service(data, artifacts), feedback=FeedbackStore(tmp_path / "fb.db"))
    with TestClient(app) as c:
        yield c


def cluster(item_id: str) -> int:
    return (int(item_id) - 1) % 4


def test_health_ready_version(client, data):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "models": ["ease", "sasrec"]}
    version = client.get("/version").json()
    assert version["data_checksum"] == data.checksum()
    assert [m["name"] for m in version["models"]] == ["ease", "sasrec"]
    assert version["models"][0]["config"]["reg"] == 1.0
    assert version["models"][0]["data_checksum"] == data.checksum()


def test_user_recommendations_exclude_seen_and_titles(client, data):
    user = "1"
    seen = set(data.items.ids[data.user_items[data.users.index([user])[0]].indices])
    body = client.get(f"/users/{user}/recommendations?k=5").json()
    assert body["model"] == "ease" and body["user"] == "1" and len(body["items"]) == 5
    assert not seen & {x["id"] for x in body["items"]}
    assert all(x["title"].startswith("The ") for x in body["items"])
    scores = [x["score"] for x in body["items"]]
    assert scores == sorted(scores, reverse=True)
    again = client.get(f"/users/{user}/recommendations?k=5&exclude_seen=false").json()
    assert {x["id"] for x in again["items"]} <= seen  # its own cluster first


def test_filter_by_genre_keeps_only_matching_items(client):
    body = client.get("/users/1/recommendations?k=5&filter=genres:Animation").json()
    assert body["items"] and all(
        cluster(x["id"]) == GENRES.index("Animation") for x in body["items"]
    )
    bad = client.get("/users/1/recommendations?filter=colour:red")
    assert bad.status_code == 422 and "genres" in bad.json()["error"]["message"]


def test_anonymous_history(client):
    history = ["1", "5", "9"]  # cluster 0
    body = client.post("/recommendations", json={"items": history, "k": 3}).json()
    assert body["model"] == "ease"
    assert [cluster(x["id"]) for x in body["items"]] == [0, 0, 0]
    assert not set(history) & {x["id"] for x in body["items"]}


def test_sequence_model_reads_the_order(client, data, artifacts):
    """The answer equals SASRec's own for the history in that order (positions as values)."""
    from genrec.build import load_model
    from genrec.data import as_history_matrix

    sasrec = load_model(artifacts / "sasrec")
    for history in (["1", "5", "9", "2"], ["2", "9", "5", "1"]):
        body = client.post(
            "/recommendations", json={"items": history, "k": 4, "model": "sasrec"}
        ).json()
        row = as_history_matrix([data.items.index(history)], data.n_items)
        top, _ = sasrec.recommend(row, k=4)
        assert [x["id"] for x in body["items"]] == list(data.items.ids[top[0]])
        assert not set(history) & {x["id"] for x in body["items"]}


def test_similar_items_are_the_items_cluster(client):
    body = client.get("/items/2/similar?k=4").json()
    assert [cluster(x["id"]) for x in body["items"]] == [1, 1, 1, 1]
    assert "2" not in {x["id"] for x in body["items"]}


def test_search_finds_titles_by_word(client):
    body = client.get(f"/search?q={WORDS[2]}&k=3").json()
    assert body["method"] == "bm25" and len(body["items"]) == 3
    assert all(WORDS[2] in x["title"].lower() for x in body["items"])
    assert client.get("/search?q=zzzz").json()["items"] == []


def test_explain_names_catalog_facts(client):
    body = client.post("/explain", json={"item": "5", "user": "1"}).json()
    assert body["title"] in body["text"] and body["text"].startswith("Because you")
    assert {"item": "5", "field": "genres", "value": "Action"} in body["facts"]
    anon = client.post("/explain", json={"item": "5", "history": ["1", "9"]})
    assert anon.status_code == 200 and anon.json()["related"]


def test_evaluate_posted_interactions(client, data):
    # hold out nothing: post pairs of (user, unseen item of the user's cluster) -> none exist,
    # so post each user's cluster items with exclude_seen: those are seen; use other users.
    pairs = [["1", "2"], ["2", "3"]]  # user 1 is cluster 0, item 2 cluster 1: a miss
    body = client.post(
        "/evaluate", json={"interactions": pairs, "metrics": ["hit", "ndcg"], "k": [1, 5]}
    ).json()
    assert body["users"] == 2 and set(body["results"]) == {"hit@1", "ndcg@1", "hit@5", "ndcg@5"}
    assert all(0.0 <= v <= 1.0 for v in body["results"].values())
    bad = client.post("/evaluate", json={"interactions": pairs, "metrics": ["__import__"]})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "metrics"


def test_feedback_is_idempotent_and_refits(client, data, tmp_path):
    events = [{"event_id": f"e{i}", "user": "new-user", "item": str(i + 1)} for i in range(3)]
    first = client.post("/feedback", json={"events": events}).json()
    assert first == {"stored": 3, "duplicates": 0, "total": 3}
    again = client.post("/feedback", json={"events": events[:2]}).json()
    assert again == {"stored": 0, "duplicates": 2, "total": 3}
    unknown = client.post(
        "/feedback", json={"events": [{"event_id": "x", "user": "1", "item": "999"}]}
    )
    assert unknown.status_code == 404 and "999" in unknown.json()["error"]["message"]
    stored = read_feedback(tmp_path / "fb.db")
    combined, added = with_feedback(data, stored)
    assert added == 3 and combined.n_users == data.n_users + 1
    assert len(combined) == len(data) + 3


def test_metrics_count_requests_per_endpoint_and_model(client):
    client.get("/users/1/recommendations?k=2&model=sasrec")
    client.get("/users/nobody/recommendations")
    text = client.get("/metrics").text
    assert (
        'genrec_requests_total{endpoint="/users/{user_id}/recommendations",model="sasrec",'
        'status="200"} 1'
    ) in text
    assert 'status="404"} 1' in text
    assert (
        'genrec_request_seconds_bucket{endpoint="/users/{user_id}/recommendations",'
        'model="sasrec",le="+Inf"} 1' in text
    )


def test_docs_and_openapi_have_examples(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/users/{user_id}/recommendations" in spec["paths"]
    assert "/chat" in spec["paths"]
    assert spec["components"]["schemas"]["HistoryRequest"]["example"]["model"] == "sasrec"
    assert spec["components"]["schemas"]["ChatRequest"]["example"]["user"] == "196"


def test_page_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "width=device-width" in page.text


# ---- keys and limits -------------------------------------------------------------------------
@pytest.fixture
def keyed(data, artifacts, tmp_path):
    path = tmp_path / "keys.json"
    keys = {scope: add_key(path, scope, scope=scope) for scope in ("read", "write", "admin")}
    assert all(k not in path.read_text() for k in keys.values())  # only hashes are stored
    app = create_app(
        make_service(data, artifacts),
        keys=KeyRing.from_file(path),
        feedback=FeedbackStore(tmp_path / "fb.db"),
        limits=ServeLimits(rate_limit=0.001, burst=3, max_body_bytes=2000),
    )
    with TestClient(app) as c:
        yield c, keys


def test_keys_scopes_and_rate_limit(keyed):
    client, keys = keyed
    assert client.get("/users/1/recommendations").status_code == 401
    assert (
        client.get("/users/1/recommendations", headers={"X-API-Key": "grk_wrong"}).status_code
        == 401
    )
    assert client.get("/health").status_code == 200  # public
    event = {"events": [{"event_id": "a", "user": "1", "item": "2"}]}
    denied = client.post("/feedback", json=event, headers={"X-API-Key": keys["read"]})
    assert denied.status_code == 403 and "write" in denied.json()["error"]["message"]
    ok = client.post("/feedback", json=event, headers={"X-API-Key": keys["write"]})
    assert ok.status_code == 200
    answers = [
        client.get("/users/1/recommendations", headers={"X-API-Key": keys["admin"]})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1


def test_body_limit_is_413(keyed):
    client, keys = keyed
    big = {"items": ["1"] * 1000, "k": 3}
    answer = client.post("/recommendations", json=big, headers={"X-API-Key": keys["read"]})
    assert answer.status_code == 413 and "2000 bytes" in answer.json()["error"]["message"]


def test_reload_swaps_a_new_artifact_and_refuses_bad_ones(data, artifacts, tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(artifacts, root)
    service = make_service(data, root)
    path = tmp_path / "keys.json"
    admin, read = add_key(path, "a", scope="admin"), add_key(path, "r", scope="read")
    app = create_app(service, keys=KeyRing.from_file(path))
    with TestClient(app) as client:
        before = client.get("/users/1/recommendations?k=3", headers={"X-API-Key": read}).json()[
            "items"
        ]
        assert (
            client.post(
                "/admin/reload", json={"model": "ease"}, headers={"X-API-Key": read}
            ).status_code
            == 403
        )
        train_and_save(EASE(reg=500.0), data, root / "ease", options=RunOptions(threads=1))
        done = client.post("/admin/reload", json={"model": "ease"}, headers={"X-API-Key": admin})
        assert done.status_code == 200 and done.json()["model"]["config"]["reg"] == 500.0
        (root / "ease" / "weights.npz").write_bytes(b"not an npz")  # corrupt
        refused = client.post("/admin/reload", json={"model": "ease"}, headers={"X-API-Key": admin})
        assert refused.status_code == 409 and "old model keeps serving" in refused.text
        other = tmp_path / "other"
        train_and_save(EASE(), data.subset(np.arange(len(data) - 5)), other)
        wrong = client.post(
            "/admin/reload",
            json={"model": "ease", "path": str(other)},
            headers={"X-API-Key": admin},
        )
        assert wrong.status_code == 409 and "other data" in wrong.json()["error"]["message"]
        after = client.get("/users/1/recommendations?k=3", headers={"X-API-Key": read}).json()[
            "items"
        ]
        assert [x["id"] for x in after] == [x["id"] for x in before]  # still serving
        version = client.get("/version").json()
        assert version["models"][0]["config"]["reg"] == 500.0


def test_reload_accepts_a_refit_with_feedback(data, artifacts, tmp_path):
    from genrec.serving.feedback import Event

    root = tmp_path / "artifacts"
    shutil.copytree(artifacts, root)
    service = make_service(data, root)
    store = FeedbackStore(tmp_path / "fb.db")
    store.add([Event("e1", "1", "2", 1.0, 10**9)])
    combined, _ = with_feedback(data, read_feedback(tmp_path / "fb.db"))
    train_and_save(
        EASE(reg=1.0), combined, root / "ease", metadata={"base_data_checksum": data.checksum()}
    )
    fresh = service.reload("ease")
    assert fresh.meta["base_data_checksum"] == data.checksum()
    assert (
        json.loads((root / "ease" / "config.json").read_text())["data"]["checksum"]
        != data.checksum()
    )
