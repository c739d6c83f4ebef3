"""A bad sampled-softmax setting is refused with a ConfigError naming the field.

``sampled_above`` (the catalogue size above which a model samples) must be a non-negative
integer and ``n_sampled`` (items drawn per batch) a positive integer, for every model that has
them; a negative, zero, NaN, boolean or text value is refused before any training, from Python
and from a JSON / command-line config alike.
"""

from __future__ import annotations

import pytest

from genrec.build import build_model
from genrec.errors import ConfigError

MODELS = ("multvae", "multdae", "recvae", "sasrec")
CASES = {
    "negative sample size": (
        {"n_sampled": -5},
        r"n_sampled = -5 is invalid; it must be a positive",
    ),
    "zero sample size": ({"n_sampled": 0}, r"n_sampled = 0 is invalid"),
    "NaN sample size": ({"n_sampled": float("nan")}, r"'n_sampled' expects int, got nan"),
    "fractional sample size": ({"n_sampled": 2.5}, r"'n_sampled' expects int, got 2.5"),
    "text sample size": ({"n_sampled": "many"}, r"'n_sampled' expects int, got 'many'"),
    "negative threshold": ({"sampled_above": -1}, r"sampled_above = -1 is invalid; it must be"),
    "NaN threshold": ({"sampled_above": float("nan")}, r"'sampled_above' expects int, got nan"),
    "boolean threshold": ({"sampled_above": True}, r"'sampled_above' expects int, got True"),
}


class TestBadSamplingSettings:
    @pytest.mark.parametrize("name", MODELS)
    @pytest.mark.parametrize("case", CASES)
    def test_refused_with_the_field_named(self, name, case):
        overrides, message = CASES[case]
        with pytest.raises(ConfigError, match=message):
            build_model(name, overrides)

    @pytest.mark.parametrize("name", MODELS)
    def test_text_values_from_the_command_line_are_read(self, name):
        model = build_model(name, {"sampled_above": "0", "n_sampled": "64"})
        assert (model.config.sampled_above, model.config.n_sampled) == (0, 64)
