"""The conditional image generator on the procedural world, where every user's colour and shape
are known: its drawings carry the user's colour, the unconditioned generator's do not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.cli import main
from genrec.data.synthetic_multimodal import multimodal_world, write_multimodal_world
from genrec.errors import ArtifactDataError, ArtifactError, ConfigError, NotFittedError
from genrec.multimodal.generator import (
    GeneratorConfig,
    ImageGenerator,
    TraitClassifier,
    evaluate_generation,
    frechet_distance,
    load_generator,
    read_traits,
    saved_or_trained_generator,
)
from genrec.options import RunOptions

pytest.importorskip("PIL")
pytest.importorskip("torch")
TINY = {"epochs": 2, "channels": 4, "latent_dim": 4}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return multimodal_world(tmp_path_factory.mktemp("w"), n_users=36, n_items=96, seed=0)


@pytest.fixture(scope="module")
def generator(world):
    config = GeneratorConfig(epochs=40, batch_size=16, lr=3e-3)
    return ImageGenerator(config).fit(world.split.train, options=RunOptions(seed=0, threads=1))


def test_drawings_carry_the_users_colour(world, generator):
    pictures_traits = read_traits(world.folder, world.split.train)
    assert all((pictures_traits[t] == world.traits[t]).all() for t in world.traits)
    report = evaluate_generation(
        generator,
        world.split.train,
        world.split.test,
        world.traits,
        samples=3,
        classifier=_classifier(world, generator),
        options=RunOptions(seed=0, threads=1),
    )
    acc = report["accuracy"]
    assert report["users"] == 36 and acc["real held-out image"]["colour"] >= 0.9
    assert acc["generated"]["colour"] >= acc["unconditioned"]["colour"] + 0.25
    assert acc["generated"]["colour"] >= acc["chance"]["colour"] + 0.25
    assert acc["popularity"]["colour"] <= 0.5  # one colour for everyone fits a quarter of users
    assert report["frechet"]["generated"] < report["frechet"]["unconditioned"]
    assert report["frechet"]["real (shifted renders)"] < report["frechet"]["generated"]


def _classifier(world, generator):
    from genrec.multimodal.generator import item_pictures

    pictures = item_pictures(world.split.train, side=generator.config.side)
    with RunOptions(threads=1).capped_threads():
        return TraitClassifier(steps=150, seed=0).fit(pictures, world.traits)


def test_batch_equals_single_and_empty_history_is_unconditioned(world, generator):
    histories = world.split.train.user_items[:4]
    batch = generator.generate(histories, n=2, seed=5)
    assert batch.shape == (4, 2, 32, 32, 3) and 0.0 <= batch.min() and batch.max() <= 1.0
    np.testing.assert_allclose(
        generator.generate(histories[2], n=2, seed=5)[0], batch[2], atol=1e-6
    )
    empty = sp.csr_matrix((1, world.data.n_items), dtype=np.float32)
    np.testing.assert_allclose(
        generator.generate(empty, seed=1),
        generator.generate(histories[:1], seed=1, conditioned=False),
        atol=1e-6,
    )


def test_saved_generator_is_reused_and_checked_against_the_data(world, generator, tmp_path):
    generator.save(tmp_path / "g")
    loaded = load_generator(tmp_path / "g", expect_data=world.split.train)
    histories = world.split.train.user_items[:3]
    np.testing.assert_array_equal(
        loaded.generate(histories, seed=2), generator.generate(histories, seed=2)
    )
    notices = []
    again = saved_or_trained_generator(world.split.train, tmp_path / "g", notice=notices.append)
    assert notices == [] and again.config == generator.config
    with pytest.raises(ArtifactDataError, match="other data.*retrain"):
        load_generator(tmp_path / "g", expect_data=world.data)
    meta = json.loads((tmp_path / "g" / "config.json").read_text())
    (tmp_path / "g" / "config.json").write_text(json.dumps({**meta, "save_id": "x"}))
    with pytest.raises(ArtifactError, match="two different saves"):
        load_generator(tmp_path / "g")


def test_config_and_state_errors_name_the_fix():
    with pytest.raises(ConfigError, match="allowed keys.*epochs"):
        GeneratorConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="side must be a multiple of 8"):
        GeneratorConfig(side=30)
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        GeneratorConfig.from_dict({"epochs": "0"})
    with pytest.raises(NotFittedError, match="call fit"):
        ImageGenerator().generate(sp.csr_matrix((1, 3)))
    a, b = np.random.default_rng(0).normal(size=(2, 400, 3))
    assert frechet_distance(a, b) < 0.2 < frechet_distance(a, b + 1.0)


def test_cli_generates_trains_once_and_refuses_bad_input(tmp_path, capsys, monkeypatch):
    folder = write_multimodal_world(tmp_path / "w", n_users=12, n_items=48, seed=0)
    monkeypatch.setenv("GENREC_ARTIFACTS", str(tmp_path / "art"))
    out = tmp_path / "u3.png"
    base = ["generate-image", "--dataset", str(folder), "--output", str(out), "--quiet"]
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    assert main([*base, "--user", "u3", "--n", "2", "--scale", "2", *sets, "--threads", "1"]) == 0
    assert "training one" in capsys.readouterr().err
    from PIL import Image

    assert Image.open(out).size == (2 * 32 * 2, 32 * 2)
    assert main([*base, "--user", "u4"]) == 0
    assert "training" not in capsys.readouterr().err  # the saved generator was reused
    assert (tmp_path / "art" / "w" / "image-generator" / "weights.npz").is_file()
    assert main([*base, "--user", "nobody"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nobody" in err and "\n" not in err
    assert main([*base[:2], str(tmp_path / "missing"), *base[3:], "--user", "u3"]) == 2
    assert capsys.readouterr().err.startswith("error:")
    (tmp_path / "plain").mkdir()  # interactions without images: refused before any training
    (tmp_path / "plain" / "u.data").write_text("1\t1\t5\t1\n1\t2\t4\t2\n2\t1\t3\t3\n")
    assert main([*base[:2], str(tmp_path / "plain"), *base[3:], "--user", "1"]) == 2
    err = capsys.readouterr().err
    assert "training" not in err and "synth multimodal" in err and "\n" not in err.strip()
    assert not (tmp_path / "art" / "plain").exists()
