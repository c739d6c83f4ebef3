"""`genrec tune` end to end on a tiny MovieLens folder and a tiny local base model; the tuned
adapter then ranks in `genrec benchmark` through --set llm.lm=tuned:DIR."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("peft", reason="needs the llm extra: pip install 'genrec[llm]'")

from genrec.cli import main  # noqa: E402
from genrec.text.transformers_lm import tiny_test_model  # noqa: E402


@pytest.fixture
def movielens(tmp_path):
    """A 30-user, 20-movie ML-100K-format folder and a tiny base model folder."""
    rng = np.random.default_rng(0)
    rows = [
        f"{u}\t{i}\t{rng.integers(1, 6)}\t{1000 + k}"
        for u in range(1, 31)
        for k, i in enumerate(rng.choice(np.arange(1, 21), 8, replace=False))
    ]
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    (folder / "u.item").write_text(
        "".join(
            f"{i}|Film {i} (1995)|01-Jan-1995||url|" + "|".join(["0"] * 19) + "\n"
            for i in range(1, 21)
        ),
        encoding="latin-1",
    )
    model, tokenizer = tiny_test_model()
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    return tmp_path


def test_tune_then_benchmark_the_tuned_model(movielens, capsys):
    out = movielens / "adapter"
    code = main(
        [
            "tune",
            "--dataset",
            str(movielens / "ml"),
            "--base",
            str(movielens / "base"),
            "--method",
            "lora",
            "--steps",
            "3",
            "--output",
            str(out),
            "--threads",
            "1",
            "--quiet",
            "--set",
            "dtype=float32",
            "--set",
            "eval_every=3",
            "--set",
            "per_user=1",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and f"tuned:{out}" in text
    assert json.loads((out / "genrec_adapter.json").read_text())["steps"] == 3
    code = main(
        [
            "benchmark",
            "--dataset",
            str(movielens / "ml"),
            "--models",
            "ease+llm",
            "--set",
            f"llm.lm=tuned:{out}",
            "--set",
            "llm.history_len=3",
            "--k",
            "5",
            "--users",
            "4",
            "--threads",
            "1",
            "--quiet",
        ]
    )
    assert code == 0 and "ease+llm" in capsys.readouterr().out


def test_tune_errors_are_one_line(movielens, capsys):
    code = main(
        [
            "tune",
            "--dataset",
            str(movielens / "ml"),
            "--method",
            "full",
            "--output",
            str(movielens / "x"),
        ]
    )
    assert code == 2 and "method" in capsys.readouterr().err
    code = main(
        [
            "tune",
            "--dataset",
            str(movielens / "ml"),
            "--output",
            str(movielens / "y"),
            "--set",
            "rank=4",
        ]
    )
    assert code == 2 and "unknown config key" in capsys.readouterr().err
