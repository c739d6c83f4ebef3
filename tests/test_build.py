"""The build layer: one spec language for models and pipelines, artifacts back into models."""

import pytest

from genrec.build import (
    audit_model,
    build_model,
    load_model,
    model_class,
    model_names,
    parse_names,
    parse_overrides,
    saved_or_trained,
)
from genrec.data.synthetic import planted_clusters
from genrec.errors import ArtifactError, ConfigError, DataError
from genrec.models import EASE, MODELS, TIGER
from genrec.options import RunOptions
from genrec.pipelines.hybrid import Hybrid
from genrec.pipelines.two_stage import TwoStage

OPTIONS = RunOptions(seed=0, threads=1, progress=False)


def test_every_name_builds_its_class():
    for name in model_names():
        assert type(
            build_model(name, {"lm": "fake"} if name in ("llm", "gpt4rec") else {})
        ) is model_class(name)
    assert model_class("ease+llm") is TwoStage and model_class("hybrid") is Hybrid
    assert "hybrid" not in MODELS  # the table lists leaf models only


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match="ease"):
        build_model("nosuch")
    with pytest.raises(ConfigError, match="nosuch"):
        parse_names("ease,nosuch+llm")
    with pytest.raises(ConfigError, match="empty"):
        parse_names(" , ")
    assert parse_names("EASE, pop,ease") == ["ease", "pop"]


def test_overrides_reach_models_and_pipeline_parts():
    out = parse_overrides(["ease.reg=5", "llm.shots=2"], ["ease", "ease+llm"])
    assert out == {"ease": {"reg": "5"}, "ease+llm": {"ease.reg": "5", "llm.shots": "2"}}
    with pytest.raises(ConfigError, match="MODEL.KEY=VALUE"):
        parse_overrides(["bpr.dim=3"], ["ease"])


def test_overrides_reach_agents_and_presets_over_the_model():
    names = ["ease", "chat:ease", "chat:ease+llm", "ease:default", "chat:pop"]
    out = parse_overrides(["ease.reg=5"], names)
    assert out == {
        "ease": {"reg": "5"},
        "chat:ease": {"reg": "5"},
        "chat:ease+llm": {"ease.reg": "5"},
        "ease:default": {"reg": "5"},
        "chat:pop": {},
    }
    assert audit_model("chat:ease", out["chat:ease"]).ranker.config.reg == 5


def test_artifacts_load_through_one_function_and_check_the_data(tmp_path):
    world = planted_clusters(n_users=20, n_items=12, n_clusters=2)
    data = world.split.train
    model = saved_or_trained(
        "ease", data, tmp_path / "ease", overrides={"reg": 3.0}, options=OPTIONS
    )
    again = saved_or_trained("ease", data, tmp_path / "ease", options=OPTIONS)
    assert isinstance(again, EASE) and again.config.reg == 3.0
    assert (
        load_model(tmp_path / "ease").score(data.user_item_order[:2])
        == model.score(data.user_item_order[:2])
    ).all()
    other = planted_clusters(n_users=20, n_items=12, n_clusters=2, seed=5).split.train
    with pytest.raises(ArtifactError, match="different data"):
        saved_or_trained("ease", other, tmp_path / "ease", options=OPTIONS)
    with pytest.raises(ArtifactError, match="holds a 'ease' model"):
        saved_or_trained("pop", data, tmp_path / "ease", options=OPTIONS)


def test_a_text_model_without_item_text_says_what_it_needs():
    world = planted_clusters(n_users=20, n_items=12, n_clusters=2)
    bare = world.split.train
    bare.catalog = None
    with pytest.raises(DataError, match="item catalog with text"):
        TIGER(text_encoder="hashing", text_cache="off", max_epochs=1).fit(bare, options=OPTIONS)
