"""A wrong fusion setting of a retrieve -> rerank pipeline is refused with the allowed values.

An unknown fusion, a weight outside 0..1 or no validation users to learn on used to be
possible to write; each is now a ConfigError naming the setting, its allowed values and the fix,
and at the command line one line with exit code 2.
"""

import pytest

from genrec.build import build_model
from genrec.cli import main
from genrec.errors import ConfigError

CASES = {
    "unknown fusion": (
        {"fusion": "average"},
        r"fusion 'average' is unknown; choose from \['linear'",
    ),
    "weight above 1": ({"fusion_weight": 1.5}, r"fusion weight 1.5 must be a number in 0..1"),
    "negative weight": ({"fusion_weight": "-0.1"}, r"fusion weight -0.1 must be a number in 0..1"),
    "weight not a number": (
        {"fusion_weight": "half"},
        r"'fusion_weight' expects float, got 'half'",
    ),
    "no validation users": ({"fusion_users": 0}, r"fusion_users"),
    "negative rrf constant": ({"fusion_k": -1}, r"fusion_k"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_fusion_setting_is_a_config_error(case):
    overrides, message = CASES[case]
    with pytest.raises(ConfigError, match=message):
        build_model("ease+llm", {"llm.lm": "fake", **overrides})


def test_cli_reports_a_bad_fusion_in_one_line(capsys, ml100k_cache, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(ml100k_cache))
    code = main(
        [
            "benchmark",
            "--models",
            "ease+llm",
            "--set",
            "llm.lm=fake",
            "--set",
            "ease+llm.fusion=average",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "fusion 'average' is unknown" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
