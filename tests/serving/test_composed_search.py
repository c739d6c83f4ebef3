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


# ---- a saved combiner served by `genrec serve --combiner SPEC=FILE` ---------------------------
@pytest.fixture(scope="module")
def combiner_file(model, tmp_path_factory):
    from genrec.models.multimodal.combiner import LearnedCombiner

    combiner = LearnedCombiner(epochs=1, hidden=8, projection=8)
    combiner.fit(model.image_[:4], model.image_[4:8], [[8], [9], [10], [11]], model.image_)
    return combiner.save(tmp_path_factory.mktemp("combiner") / "mm.npz")


def _settings(world, artifacts, **changes):
    from genrec.serving.app import ServeSettings

    values = dict(
        dataset=str(world.folder),
        models=("mmdense",),
        artifacts=str(artifacts),
        cache_dir=str(artifacts),
        filters={},
    )
    return ServeSettings(**{**values, **changes})


def test_a_saved_combiner_is_served_by_every_worker_and_kept_across_reloads(
    world, model, combiner_file, tmp_path
):
    from genrec.serving.app import ServeSettings, build_app

    folder = model.save(tmp_path / "mmdense")
    settings = _settings(world, tmp_path, combiners={"mmdense": str(combiner_file)})
    worker = ServeSettings.from_json(settings.to_json())  # what --workers N hands each worker
    assert worker == settings
    reference = world.data.items.ids[2]
    with TestClient(build_app(worker)) as c:
        before = c.get(f"/search?q=red&k=4&reference_item={reference}").json()
        reloaded = c.post("/admin/reload", json={"model": "mmdense", "path": str(folder)})
        after = c.get(f"/search?q=red&k=4&reference_item={reference}").json()
    assert reloaded.status_code == 200, reloaded.text
    assert before["method"] == after["method"] == "mmdense composed, learned"
    assert before["items"] == after["items"]


def test_a_reload_to_a_model_the_combiner_does_not_fit_is_refused(
    world, model, combiner_file, tmp_path
):
    from genrec.models.multimodal.combiner import LearnedCombiner

    config = {**FAST, "image_encoder": "pixels-4", "text_cache": "off", "epochs": 1}
    other = MultimodalDense(config).fit(world.data, options=RunOptions(seed=0, threads=1))
    folder = other.save(tmp_path / "narrow")
    served = {"mm": Served.fitted("mm", model)}
    service = RecService(world.data, served, combiners={"mm": LearnedCombiner.load(combiner_file)})
    with TestClient(create_app(service)) as c:
        refused = c.post("/admin/reload", json={"model": "mm", "path": str(folder)})
        still = c.get(f"/search?q=red&k=4&reference_item={world.data.items.ids[2]}")
    assert refused.status_code == 409
    assert "does not fit the combiner" in refused.json()["error"]["message"]
    assert still.json()["method"] == "mm composed, learned"


def test_a_combiner_for_an_unserved_or_unfitting_model_is_refused(world, model, combiner_file):
    from genrec.models.multimodal.combiner import LearnedCombiner
    from genrec.serving.service import load_combiners

    with pytest.raises(ConfigError, match=r"\['ease'\], which is not served; served: mmdense"):
        load_combiners({"ease": str(combiner_file)}, ["mmdense"])
    narrow = LearnedCombiner(epochs=1, hidden=4, projection=4)
    narrow.fit(np.eye(3, dtype="float32"), np.eye(3, dtype="float32"), [[1], [2], [0]], np.eye(3))
    with pytest.raises(ConfigError, match="combines 3-wide vectors"):
        RecService(world.data, {"mm": Served.fitted("mm", model)}, combiners={"mm": narrow})
    ease = {"ease": Served.fitted("ease", EASE().fit(world.data))}
    with pytest.raises(ConfigError, match="does not compose image and text queries"):
        RecService(world.data, ease, combiners={"ease": LearnedCombiner.load(combiner_file)})


def test_genrec_serve_parses_combiner_options(capsys, tmp_path):
    from genrec.cli import _combiner_files, main

    both = _combiner_files(["mmdense=a.npz, dense=b.npz", "vbpr = c.npz"])
    assert both == {"mmdense": "a.npz", "dense": "b.npz", "vbpr": "c.npz"}
    for bad in (["mmdense"], ["=a.npz"], ["mmdense=a.npz,mmdense=b.npz"]):
        with pytest.raises(ConfigError, match="--combiner"):
            _combiner_files(bad)
    argv = ["serve", "--dataset", "ml-100k", "--models", "ease", "--port", "0"]
    argv += ["--artifacts", str(tmp_path), "--combiner", "mmdense=x.npz"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "served: ease" in err and "mmdense" in err
