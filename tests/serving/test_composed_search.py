"""Composed search over HTTP ("like this item, but blue"): GET /search with reference_item on a
served mmdense, answered as the library answers; bad input is a JSON 4xx naming the field."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
pytest.importorskip("PIL", reason="needs the multimodal extra")
from fastapi.testclient import TestClient  # noqa: E402

from genrec.data.synthetic_multimodal import multimodal_world  # noqa: E402
from genrec.errors import ConfigError  # noqa: E402
from genrec.models import EASE, MultimodalDense  # noqa: E402
from genrec.models.multimodal.combiner import composed_search  # noqa: E402
from genrec.options import RunOptions  # noqa: E402
from genrec.serving.app import create_app  # noqa: E402
from genrec.serving.service import RecService, Served  # noqa: E402

FAST = {"image_encoder": "pixels-8", "image_cache": "off", "text_encoder": "hashing"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return multimodal_world(tmp_path_factory.mktemp("world"), n_users=24, n_items=48, seed=0)


@pytest.fixture(scope="module")
def model(world):
    config = {**FAST, "text_cache": "off", "epochs": 10}
    return MultimodalDense(config).fit(world.data, options=RunOptions(seed=0, threads=1))


@pytest.fixture(scope="module")
def client(world, model):
    served = {
        "ease": Served.fitted("ease", EASE().fit(world.data)),
        "mm": Served.fitted("mm", model),
    }
    with TestClient(create_app(RecService(world.data, served))) as c:
        yield c


def test_composed_search_answers_as_the_library_does(client, world, model):
    reference = str(world.data.items.ids[3])
    answer = client.get(f"/search?q=blue&k=5&reference_item={reference}")
    assert answer.status_code == 200
    body = answer.json()
    assert body["method"] == "mm composed" and body["reference_item"] == reference
    ids = [x["id"] for x in body["items"]]
    top, scores = composed_search(model, [3], ["blue"], k=5)
    assert ids == [str(world.data.items.ids[i]) for i in top[0]] and reference not in ids
    np.testing.assert_allclose([x["score"] for x in body["items"]], scores[0], rtol=1e-5)


def test_plain_search_is_unchanged_without_a_reference(client):
    body = client.get("/search?q=circle&k=3").json()
    assert body["method"] == "bm25" and body["reference_item"] is None


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("q=blue&reference_item=nope", 404),  # not an item of the data
        ("q=blue&reference_item=", 422),  # empty
        ("q=&reference_item=i1", 422),  # no modifier text
    ],
)
def test_bad_composed_search_is_a_json_error_naming_the_field(client, query, status):
    answer = client.get(f"/search?{query}")
    error = answer.json()["error"]
    assert answer.status_code == status
    assert error["param"] == ("q" if query.startswith("q=&") else "reference_item")


def test_composed_search_without_a_composing_model_is_422(world):
    service = RecService(world.data, {"ease": Served.fitted("ease", EASE().fit(world.data))})
    with TestClient(create_app(service)) as c:
        answer = c.get(f"/search?q=blue&reference_item={world.data.items.ids[0]}")
    assert answer.status_code == 422 and answer.json()["error"]["param"] == "reference_item"
    assert "mmdense" in answer.json()["error"]["message"]


def test_a_learned_combiner_given_to_the_service_answers_composed_queries(world, model):
    from genrec.models.multimodal.combiner import LearnedCombiner

    combiner = LearnedCombiner(epochs=1, hidden=8, projection=8)
    combiner.fit(model.image_[:4], model.image_[4:8], [[8], [9], [10], [11]], model.image_)
    served = {"mm": Served.fitted("mm", model)}
    service = RecService(world.data, served, combiners={"mm": combiner})
    with TestClient(create_app(service)) as c:
        body = c.get(f"/search?q=red&k=4&reference_item={world.data.items.ids[2]}").json()
    top, _ = composed_search(model, [2], ["red"], k=4, combiner=combiner)
    assert body["method"] == "mm composed, learned"
    assert [x["id"] for x in body["items"]] == [str(world.data.items.ids[i]) for i in top[0]]
    with pytest.raises(ConfigError, match="name no served model"):
        RecService(world.data, served, combiners={"nope": combiner})
