"""Bad search, Ray and tracking arguments on the command line: one line on stderr naming the bad
value and exit code 2, before any data is loaded or any trial runs."""

import pytest

from genrec.cli import main

GOOD = """dataset = "{data}"
[[models]]
name = "ease"
[search]
ease.reg = {{ low = 1.0, high = 100.0, log = true }}
"""


@pytest.mark.parametrize(
    ("text", "args", "named"),
    [
        (GOOD.replace("ease.reg", "ease.l2"), [], "ease.l2"),
        (GOOD.replace("low = 1.0", "low = -1.0"), [], "ease.reg"),
        (GOOD.replace("[search]\n", "[search]\nmetric = 'ndgc@10'\n"), [], "ndgc@10"),
        (GOOD.replace("[search]\n", ""), [], "['ease']"),  # the range left in [[models]]
        (GOOD, ["--trials", "0"], "--trials"),
        (GOOD, ["--timeout", "-3"], "--timeout"),
        (GOOD, ["--track", "wandb:x"], "wandb:x"),
    ],
)
def test_bad_search_arguments_are_one_line_and_exit_2(tmp_path, capsys, text, args, named):
    path = tmp_path / "exp.toml"
    path.write_text(text.format(data=tmp_path / "no-data"))
    code = main(["search", str(path), "--quiet", "--output", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and len(err.splitlines()) == 1
    assert named in err


def test_a_bad_track_spec_fails_genrec_run_before_training(tmp_path, capsys):
    path = tmp_path / "exp.toml"
    path.write_text('dataset = "nowhere"\n[[models]]\nname = "pop"\n')
    assert main(["run", str(path), "--quiet", "--track", "mlflow"]) == 2
    assert "mlflow:DIR or tensorboard:DIR" in capsys.readouterr().err
