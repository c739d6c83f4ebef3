"""``genrec train`` checks its output folder before training, as ``benchmark`` checks its files.

It used to train first and fail (or replace something) only when saving.
"""

import os
import stat

import pytest

from genrec.cli import main


def write_dataset(folder):
    folder.mkdir()
    lines = [
        f"{u}\t{(u + j) % 7 + 1}\t4\t{880000000 + 10 * u + j}"
        for u in range(1, 13)
        for j in range(4)
    ]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    return folder


def a_file(tmp_path):
    (tmp_path / "out").write_text("keep me")
    return tmp_path / "out", "not a folder"


def a_fifo(tmp_path):
    os.mkfifo(tmp_path / "out")
    return tmp_path / "out", "FIFO"


def a_folder_of_other_files(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("keep me")
    return tmp_path / "out", "holds other files (thesis.tex)"


def under_a_file(tmp_path):
    (tmp_path / "blocker").write_text("keep me")
    return tmp_path / "blocker" / "out", "not a writable folder"


class TestTrainOutputChecked:
    @pytest.mark.parametrize("make", [a_file, a_fifo, a_folder_of_other_files, under_a_file])
    def test_a_bad_output_fails_before_training(self, tmp_path, capsys, make):
        data = write_dataset(tmp_path / "data")
        output, message = make(tmp_path)
        before = output.lstat() if os.path.lexists(output) else None
        code = main(
            [
                "train",
                "--dataset",
                str(data),
                "--model",
                "pop",
                "--output",
                str(output),
                "--threads",
                "1",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and message in err and "training pop" not in err, err
        after = output.lstat() if os.path.lexists(output) else None
        assert (
            before
            and after
            and stat.S_IFMT(before.st_mode) == stat.S_IFMT(after.st_mode)
            and before.st_ino == after.st_ino
        ) or before is after is None

    def test_a_saved_model_is_replaced_and_a_symlink_followed(self, tmp_path, capsys):
        data = write_dataset(tmp_path / "data")
        real = tmp_path / "models" / "pop"
        link = tmp_path / "pop"
        link.symlink_to(real, target_is_directory=True)
        for _ in range(2):  # the second run replaces the first run's model
            assert (
                main(
                    [
                        "train",
                        "--dataset",
                        str(data),
                        "--model",
                        "pop",
                        "--output",
                        str(link),
                        "--threads",
                        "1",
                        "--quiet",
                    ]
                )
                == 0
            )
        assert link.is_symlink() and sorted(p.name for p in real.iterdir()) == [
            "config.json",
            "weights.npz",
        ]
