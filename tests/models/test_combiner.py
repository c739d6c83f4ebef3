"""The learned combiner of composed queries: triples from catalog attributes, a held-out split
without leakage, and on held-out references it beats the sum (CIRR-style R@K)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("torch")

from genrec.data.dataset import ItemCatalog  # noqa: E402
from genrec.data.synthetic_multimodal import composed_queries  # noqa: E402
from genrec.data.vocabulary import Vocabulary  # noqa: E402
from genrec.errors import ArtifactError, ConfigError, DataError, NotFittedError  # noqa: E402
from genrec.evaluation.composed import composed_recall  # noqa: E402
from genrec.models import MultimodalDense  # noqa: E402
from genrec.models.multimodal.combiner import (  # noqa: E402
    LearnedCombiner,
    catalog_triples,
    composed_search,
    fit_combiner,
    held_out_triples,
)

from .contract import OPTIONS  # noqa: E402
from .multimodal_fixtures import FAST, shared_world  # noqa: E402

TINY = {"epochs": 15, "hidden": 64, "projection": 64}


def triples(traits):
    parts = [composed_queries(traits, trait=t, per_item=2, seed=0) for t in ("colour", "pattern")]
    return (
        np.concatenate([p[0] for p in parts]),
        [t for p in parts for t in p[1]],
        [t for p in parts for t in p[2]],
    )


@pytest.fixture(scope="module")
def model():
    return MultimodalDense({**FAST, "epochs": 30}).fit(shared_world().split.train, options=OPTIONS)


def test_held_out_split_has_no_leakage():
    world = shared_world()
    held = np.random.default_rng(0).permutation(world.data.n_items)[:20]
    train, test = held_out_triples(*triples(world.traits), held, n_items=world.data.n_items)
    assert len(train[0]) and len(test[0])
    assert not np.isin(train[0], held).any()
    assert not np.isin(np.concatenate(train[2]), held).any()
    assert np.isin(test[0], held).all()


def test_learned_combiner_beats_the_sum_on_held_out_references(model):
    world = shared_world()
    n = world.data.n_items
    held = np.random.default_rng(0).permutation(n)[: n // 5]
    train, (refs, texts, targets) = held_out_triples(*triples(world.traits), held, n_items=n)
    combiner = fit_combiner(
        model, train, items=np.setdiff1d(np.arange(n), held), config=TINY, options=OPTIONS
    )

    def recall(scores):
        return composed_recall(scores, references=refs, targets=targets, ks=(5,))["R@5"]

    summed = recall(model.score_composed(refs, texts))
    learned = recall(model.score_composed(refs, texts, combiner=combiner))
    assert learned > summed + 0.1  # measured 0.86 vs 0.53


def test_composed_search_never_returns_the_reference(model):
    top, scores = composed_search(model, [0, 5], ["red", "striped"], k=1000)
    assert top.shape == (2, shared_world().data.n_items - 1)
    assert 0 not in top[0] and 5 not in top[1] and np.isfinite(scores).all()
    with pytest.raises(DataError, match="k must be"):
        composed_search(model, [0], ["red"], k=0)


def catalog(columns):
    n = len(next(iter(columns.values())))
    return ItemCatalog(Vocabulary([f"i{i}" for i in range(n)]), columns)


def test_triples_from_a_user_catalog():
    shop = catalog(
        {
            "colour": ["red", None, "blue", "red", "blue", "green"],
            "size": ["S", "M", "S", "M", "M", "S"],
            "title": ["a", "x", "b", "c", "d", "e"],
        }
    )
    refs, texts, targets = catalog_triples(shop, ["colour", "size"], vary="size", per_item=1)
    pairs = {(int(r), t, tuple(int(x) for x in g)) for r, t, g in zip(refs, texts, targets)}
    assert pairs == {(0, "M", (3,)), (2, "M", (4,)), (3, "S", (0,)), (4, "S", (2,))}  # not 1


def test_catalog_without_one_attribute_pairs_cannot_train_a_combiner():
    shop = catalog({"colour": ["red", "blue"], "size": ["S", "M"]})
    with pytest.raises(DataError, match="needs such triples"):
        catalog_triples(shop, ["colour", "size"], vary="colour")
    with pytest.raises(DataError, match="missing \\['material'\\]"):
        catalog_triples(shop, ["colour", "material"], vary="colour")


def test_bad_input_and_unfitted_use_are_genrec_errors():
    with pytest.raises(ConfigError, match="dropout"):
        LearnedCombiner(dropout=1.0)
    with pytest.raises(DataError, match="triples"):
        LearnedCombiner().fit(np.zeros((0, 4)), np.zeros((0, 4)), [], np.zeros((3, 4)))
    with pytest.raises(DataError, match="gallery row"):
        LearnedCombiner().fit(np.zeros((1, 4)), np.zeros((1, 4)), [[7]], np.zeros((3, 4)))
    with pytest.raises(NotFittedError, match="fit"):
        LearnedCombiner().combine(np.zeros((1, 4)), np.zeros((1, 4)))


def test_saved_combiner_combines_identically(tmp_path):
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(10, 6)).astype(np.float32)
    combiner = LearnedCombiner(epochs=2, hidden=8, projection=8, dropout=0.2)
    combiner.fit(gallery[:4], gallery[4:8], [[8], [9], [8], [9]], gallery, options=OPTIONS)
    loaded = LearnedCombiner.load(combiner.save(tmp_path / "combiner.npz"))
    assert loaded.config == combiner.config
    np.testing.assert_array_equal(
        loaded.combine(gallery[:3], gallery[3:6]), combiner.combine(gallery[:3], gallery[3:6])
    )
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "combiner.npz").read_bytes()[:300])
    for name in ("broken.npz", "cut.npz", "missing.npz"):
        with pytest.raises(ArtifactError, match="LearnedCombiner.save"):
            LearnedCombiner.load(tmp_path / name)
