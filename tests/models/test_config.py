"""ModelConfig: coercion of CLI strings and JSON values, presets, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from genrec.build import build_model
from genrec.errors import ConfigError
from genrec.models.base import ModelConfig


@dataclass(frozen=True)
class _Config(ModelConfig):
    dims: tuple[int, ...] = (4,)
    rate: float = 0.1
    flag: bool = False
    presets: ClassVar = {"paper": {"dims": (8, 2), "rate": 0.5}}


def test_tuples_from_cli_strings_and_json_lists():
    assert _Config.from_dict({"dims": "64, 32"}).dims == (64, 32)
    assert _Config.from_dict({"dims": [64, 32]}).dims == (64, 32)
    assert _Config.from_dict({"dims": "16"}).dims == (16,)
    with pytest.raises(ConfigError, match="dims"):
        _Config.from_dict({"dims": "a,b"})


def test_scalars_and_bools_coerced_with_clear_errors():
    cfg = _Config.from_dict({"rate": "0.25", "flag": "yes"})
    assert cfg.rate == 0.25 and cfg.flag is True
    with pytest.raises(ConfigError, match="rate"):
        _Config.from_dict({"rate": "fast"})
    with pytest.raises(ConfigError, match="flag"):
        _Config.from_dict({"flag": "maybe"})


def test_presets_with_overrides_and_unknown_preset():
    assert _Config.from_preset("paper").dims == (8, 2)
    assert _Config.from_preset("paper", {"rate": 0.7}).rate == 0.7
    assert _Config.from_preset("default") == _Config()
    with pytest.raises(ConfigError, match="default, paper"):
        _Config.from_preset("nope")
    assert build_model("ease:default", {"reg": 5.0}).config.reg == 5.0
    with pytest.raises(ConfigError, match="no preset"):
        build_model("ease:paper")


def test_positive_int_fields_reject_zero_bool_and_float():
    from genrec.models import BPR, CDAE, SASRec

    for model_cls, field in ((BPR, "batch_size"), (CDAE, "hidden"), (SASRec, "max_len")):
        for bad in (0, -3, True, 2.5):
            with pytest.raises(ConfigError, match=f"{field}.*positive integer"):
                model_cls.Config(**{field: bad})
    with pytest.raises(ConfigError, match="divisor of dim"):
        SASRec(dim=10, n_heads=3)
