"""A new user is told what happened and what exists: an empty recommendation list says why, and
help texts list the model names."""

from genrec.cli import main


def test_nothing_left_to_recommend_is_said(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENREC_ARTIFACTS", str(tmp_path / "artifacts"))
    folder = tmp_path / "tiny"
    folder.mkdir()
    rows = [f"{u}\t{i}\t5\t{100 * u + i}" for u in (1, 2, 3) for i in (1, 2, 3)]
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    code = main(
        [
            "recommend",
            "--dataset",
            str(folder),
            "--model",
            "pop",
            "--user",
            "1",
            "--k",
            "3",
            "--quiet",
            "--threads",
            "1",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and out == ""
    assert "nothing left to recommend" in err and "all 3 items" in err


def test_help_lists_the_model_names(capsys):
    try:
        main(["benchmark", "--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    for name in ("ease", "multvae", "sasrec", "llm", "hybrid"):
        assert name in out
