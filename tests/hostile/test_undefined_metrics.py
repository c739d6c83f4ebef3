"""A metric no user can have (AUC when every user has seen every item but the target) is left
out of the results and named in the protocol, instead of crashing the report."""

import json

from genrec.cli import main


def test_benchmark_survives_a_metric_with_no_value(tmp_path, capsys):
    folder = tmp_path / "dense"
    folder.mkdir()
    items = range(1, 6)
    rows = [
        f"{u}\t{i}\t{1 + (u + i) % 5}\t{10 * u + (u + i) % 5}" for u in range(1, 31) for i in items
    ]  # each user ends on another item
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.json"
    code = main(
        [
            "benchmark",
            "--dataset",
            str(folder),
            "--models",
            "pop,itemknn",
            "--split",
            "loo",
            "--k",
            "1",
            "--output",
            str(out),
            "--report",
            str(tmp_path / "rep"),
            "--quiet",
            "--threads",
            "1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    results = json.loads(out.read_text())
    assert "auc" in results["protocol"]["undefined_metrics"]
    assert "auc" not in results["results"][0]["metrics"]
    assert "ndcg@1" in results["results"][0]["metrics"]
    assert (tmp_path / "rep.md").exists()
