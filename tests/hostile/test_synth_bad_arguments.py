"""`genrec data synth interactions` with bad arguments: a ConfigError naming the argument and the
fix in the library, one line and exit 2 at the CLI, and nothing left on disk."""

import pytest

from genrec.cli import main
from genrec.data.generator import InteractionWorld, write_interactions
from genrec.errors import ConfigError

GOOD = {"n_users": 10, "n_items": 8, "n_interactions": 60}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"n_users": 0}, ["n_users=0", "--users", ">= 1"]),
        ({"n_items": -3}, ["n_items=-3", "--items"]),
        ({"n_interactions": 0}, ["n_interactions=0", "--interactions"]),
        ({"n_interactions": 81}, ["--interactions", "80", "--repeats", "raise --users"]),
        ({"n_interactions": 49}, ["below", "--min-per-user", "raise --interactions"]),
        ({"min_per_user": 9, "n_interactions": 80}, ["--min-per-user", "--items"]),
        ({"item_exponent": -1.0}, ["--item-exponent", "[0, 5]"]),
        ({"taste": 1.5}, ["--taste", "[0, 1]"]),
        ({"activity_sigma": float("nan")}, ["--activity-sigma"]),
        ({"seed": -1}, ["--seed"]),
    ],
)
def test_bad_world_names_the_argument_and_the_fix(change, words):
    with pytest.raises(ConfigError) as err:
        InteractionWorld(**(GOOD | change))
    for word in words:
        assert word in str(err.value)


def test_repeats_lift_the_pair_limit():
    assert InteractionWorld(**(GOOD | {"n_interactions": 500, "repeats": True}))


def test_bad_format_chunk_and_folders(tmp_path):
    world = InteractionWorld(**GOOD)
    with pytest.raises(ConfigError, match="unknown format 'ml-100k'.*--format.*ml-1m"):
        write_interactions(tmp_path / "a", world, format="ml-100k")
    with pytest.raises(ConfigError, match="chunk_rows=0 \\(--chunk-rows\\)"):
        write_interactions(tmp_path / "a", world, chunk_rows=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--output.*notes.txt.*new or empty folder"):
        write_interactions(tmp_path / "full", world)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="--output.*cannot be written"):
        write_interactions(tmp_path / "file" / "out", world)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]  # no staging left


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--users", "0"], ["--users"]),
        (["--interactions", "1000"], ["--interactions", "--repeats"]),
        (["--chunk-rows", "-1"], ["--chunk-rows"]),
        (["--taste", "2"], ["--taste"]),
        (["--format", "ml-100k"], ["ml-100k", "--format", "parquet, ml-1m"]),
    ],
)
def test_cli_says_one_line_and_exits_2(tmp_path, capsys, argv, words):
    base = ["data", "synth", "interactions", "--users", "10", "--items", "8"]
    base += ["--interactions", "60", "--output", str(tmp_path / "o"), "--quiet"]
    code = main(base + argv)  # argparse keeps the last value of a repeated flag
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    for word in words:
        assert word in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_folder_with_files(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.csv").write_text("1,2\n")
    argv = ["data", "synth", "interactions", "--users", "10", "--items", "8"]
    argv += ["--interactions", "60", "--output", str(tmp_path / "o"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "keep.csv" in err and "--output" in err
