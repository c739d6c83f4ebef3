"""Experiments as files: every shipped file parses, and a file and the equivalent benchmark flags
run the same thing (same content hash, same numbers)."""

import json
from pathlib import Path

import numpy as np
import pytest

from genrec.cli import main
from genrec.errors import ConfigError
from genrec.experiment import Experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_experiment_parses(path):
    exp = Experiment.from_file(path)
    assert exp.models and exp.name == path.stem


def test_bad_files_name_the_problem(tmp_path):
    cases = {
        "models = 3": "needs",
        '[[models]]\nname = "nosuch"': "nosuch",
        'splitt = "loo"\n[[models]]\nname = "pop"': "splitt",
        '[[models]]\nname = "pop"\nsweep = { reg = [] }': "non-empty",
        '[[models]]\nname = "pop"\n[[models]]\nname = "pop"': "label",
        'k = [0]\n[[models]]\nname = "pop"': "k must be",
        '[outputs]\nresult = "x"\n[[models]]\nname = "pop"': "result",
        "name = ": "not valid TOML",
    }
    for i, (text, match) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=match):
            Experiment.from_file(path)


def _ratings(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [
        f"{u}\t{i}\t{rng.integers(1, 6)}\t{1000 + n}"
        for n, (u, i) in enumerate(
            (u, i) for u in range(1, 41) for i in rng.choice(np.arange(1, 31), 8, replace=False)
        )
    ]
    folder.mkdir()
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    return folder


def test_a_file_and_the_same_flags_give_the_same_run(tmp_path, capsys):
    data = _ratings(tmp_path / "data")
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(f"""
dataset = "{data}"
split_seed = 7
seed = 3
k = [5]
[outputs]
results = "{tmp_path / "file.json"}"
[[models]]
name = "pop"
[[models]]
name = "ease"
sweep = {{ reg = [1.0, 10.0] }}
""")
    assert main(["run", str(exp_file), "--quiet", "--threads", "1"]) == 0
    from_file = json.loads((tmp_path / "file.json").read_text())
    labels = [r["model"] for r in from_file["results"]]
    assert labels == ["pop", "ease[reg=1.0]", "ease[reg=10.0]"]
    assert from_file["protocol"]["split_seed"] == 7 and from_file["protocol"]["seed"] == 3

    assert (
        main(
            [
                "benchmark",
                "--dataset",
                str(data),
                "--models",
                "pop",
                "--k",
                "5",
                "--seed",
                "3",
                "--split-seed",
                "7",
                "--output",
                str(tmp_path / "flags.json"),
                "--quiet",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    from_flags = json.loads((tmp_path / "flags.json").read_text())
    assert from_flags["results"][0]["metrics"] == from_file["results"][0]["metrics"]
    one_model = Experiment.from_dict(
        {
            **{k: v for k, v in Experiment.from_file(exp_file).to_dict().items() if k != "models"},
            "models": [{"name": "pop"}],
        }
    )
    assert from_flags["protocol"]["experiment"]["sha256"] == one_model.sha256()
    capsys.readouterr()
