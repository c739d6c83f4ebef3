"""`genrec data synth multimodal` writes an item folder that `genrec benchmark` reads."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("PIL")

from genrec.cli import main  # noqa: E402


def test_synth_then_benchmark_cold_items(tmp_path, capsys):
    folder = tmp_path / "world"
    assert (
        main(
            [
                "data",
                "synth",
                "multimodal",
                "--users",
                "24",
                "--items",
                "48",
                "--output",
                str(folder),
            ]
        )
        == 0
    )
    assert (folder / "images" / "i0.png").is_file() and (folder / "traits.csv").is_file()
    fast = [
        "--set",
        "mmdense.image_encoder=pixels-8",
        "--set",
        "mmdense.image_cache=off",
        "--set",
        "mmdense.text_encoder=hashing",
        "--set",
        "mmdense.text_cache=off",
        "--set",
        "mmdense.epochs=5",
    ]
    out = tmp_path / "results.json"
    assert (
        main(
            [
                "benchmark",
                "--dataset",
                str(folder),
                "--split",
                "cold-items",
                "--models",
                "mmdense,pop",
                "--quiet",
                "--threads",
                "1",
                "--output",
                str(out),
                *fast,
            ]
        )
        == 0
    )
    rows = {r["model"]: r["metrics"] for r in json.loads(out.read_text())["results"]}
    assert rows["mmdense"]["hit@10"]["mean"] > rows["pop"]["hit@10"]["mean"]


def test_synth_with_too_few_items_is_one_line_and_exit_2(tmp_path, capsys):
    assert (
        main(["data", "synth", "multimodal", "--items", "10", "--output", str(tmp_path / "w")]) == 2
    )
    err = capsys.readouterr().err
    assert "n_items >= 48" in err and "Traceback" not in err
