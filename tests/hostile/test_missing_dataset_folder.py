"""A dataset given as a path that does not exist is reported as a missing folder, not as an
"unknown dataset"; a file given where a folder is expected says so; a bare unknown word says it
is neither a dataset name nor a folder."""

import pytest

from genrec.cli import main
from genrec.data.sources import load_dataset
from genrec.errors import ConfigError, DataError


@pytest.mark.parametrize(
    "spec", ["data/ml-100k-typo", "./mine", "~/no-such-genrec-folder", "/no/such/folder"]
)
def test_a_missing_path_is_a_missing_folder(tmp_path, spec):
    with pytest.raises(DataError, match="no such folder") as error:
        load_dataset(spec, cache_dir=tmp_path)
    assert "unknown dataset" not in str(error.value) and "ml-100k" in str(error.value)


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(DataError, match="is a file, not a folder; pass the folder"):
        load_dataset(tmp_path / "ratings.csv", cache_dir=tmp_path)


def test_a_bare_unknown_word_is_neither_name_nor_folder(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"'mine': neither a dataset name \(.*ml-100k.*\) "
        r"nor a folder",
    ):
        load_dataset("mine", cache_dir=tmp_path)


@pytest.mark.parametrize(
    "command", [["data", "info"], ["benchmark", "--models", "pop", "--dataset"]]
)
def test_the_cli_says_no_such_folder(tmp_path, capsys, command):
    missing = str(tmp_path / "typo")
    assert main(command + [missing]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: no such folder" in err and "unknown dataset" not in err
    assert err.count("\n") == 1
