"""Outputs never replace special files, and write through symlinks.

Saving renames a temp file over its target. Pointed at a FIFO, a device node or a socket, that
rename used to replace the special file with a regular one (as root, ``--output /dev/full``
replaced the system's device node); pointed at a symlink, it replaced the link. Now a symlink is
followed to its target, and any target that is not a regular file (or a folder, for a model) is
refused with a ConfigError (exit code 2 at the CLI) before anything is written. Each case makes
its special file inside the test's temp folder; none touches a system file.
"""

import os
import socket
import stat

import numpy as np
import pytest

from genrec.cli import main
from genrec.data import Dataset
from genrec.errors import ArtifactError, ConfigError
from genrec.io import atomic_write, check_writable
from genrec.models import Pop
from genrec.retrieval.index import ExactIndex


def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def unix_socket(tmp_path):
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return path


def char_device(tmp_path):
    path = tmp_path / "null"
    try:  # the numbers of /dev/null, made here: a regression replaces only this copy
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root (CAP_MKNOD)")
    return path


SPECIAL = {
    "fifo": (fifo, stat.S_ISFIFO),
    "socket": (unix_socket, stat.S_ISSOCK),
    "device": (char_device, stat.S_ISCHR),
}


def tiny_data(n_users=6, n_items=5) -> Dataset:
    users = np.repeat(np.arange(n_users), 2)
    items = (users + np.tile([0, 1], n_users)) % n_items
    return Dataset.from_interactions(
        [f"u{u}" for u in users], [f"i{i}" for i in items], name="tiny"
    )


def write_dataset(folder):
    folder.mkdir()
    lines = [
        f"{u}\t{(u + j) % 7 + 1}\t{1 + (u + j) % 5}\t{880000000 + 10 * u + j}"
        for u in range(1, 13)
        for j in range(4)
    ]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    return folder


class TestSpecialOutputs:
    @pytest.mark.parametrize("kind", SPECIAL)
    @pytest.mark.parametrize("via_symlink", [False, True])
    def test_atomic_write_refuses_and_keeps_the_special_file(self, tmp_path, kind, via_symlink):
        make, is_kind = SPECIAL[kind]
        special = make(tmp_path)
        target = special
        if via_symlink:
            target = tmp_path / "link"
            target.symlink_to(special)
        with pytest.raises(ConfigError, match="regular file"):
            atomic_write(target, "x")
        with pytest.raises(ConfigError, match="regular file"):
            check_writable(target, what="--output")
        assert is_kind(special.lstat().st_mode)
        assert not via_symlink or target.is_symlink()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left

    def test_a_symlink_is_written_through_and_kept(self, tmp_path):
        real = tmp_path / "real" / "results.json"
        real.parent.mkdir()
        real.write_text("old")
        link = tmp_path / "link.json"
        link.symlink_to(real)
        assert atomic_write(link, "new") == real
        assert link.is_symlink() and real.read_text() == "new"
        dangling = tmp_path / "dangling.json"
        dangling.symlink_to(tmp_path / "made" / "later.json")
        atomic_write(dangling, "made")
        assert dangling.is_symlink() and (tmp_path / "made" / "later.json").read_text() == "made"

    def test_library_writers_refuse_a_fifo(self, tmp_path):
        target = fifo(tmp_path)
        with pytest.raises(ConfigError, match="FIFO"):
            ExactIndex.from_vectors(np.eye(3, dtype=np.float32)).save(target)
        with pytest.raises(ArtifactError, match="FIFO"):
            Pop().fit(tiny_data()).save(target)
        assert stat.S_ISFIFO(target.lstat().st_mode)

    def test_a_model_saved_through_a_symlinked_folder_keeps_the_link(self, tmp_path):
        real = tmp_path / "store" / "pop"
        link = tmp_path / "pop-link"
        link.symlink_to(real, target_is_directory=True)
        model = Pop().fit(tiny_data())
        model.save(link)
        model.save(link)  # replacing a saved model keeps the link too
        assert link.is_symlink() and (real / "config.json").is_file()
        assert Pop.load(link).n_items_ == model.n_items_

    @pytest.mark.parametrize("flag", ["--output", "--save-rankings", "--report"])
    def test_cli_refuses_before_any_work(self, tmp_path, capsys, flag):
        data = write_dataset(tmp_path / "data")
        target = fifo(tmp_path)
        if flag == "--report":  # --report PATH writes PATH.md and PATH.html
            os.rename(target, tmp_path / "fifo.md")
            target, fifo_file = tmp_path / "fifo", tmp_path / "fifo.md"
        else:
            fifo_file = target
        code = main(
            [
                "benchmark",
                "--dataset",
                str(data),
                "--models",
                "pop",
                "--k",
                "3",
                flag,
                str(target),
                "--threads",
                "1",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and "FIFO" in err and "[pop] fit" not in err, err
        assert stat.S_ISFIFO(fifo_file.lstat().st_mode)

    def test_cli_writes_results_through_a_symlink(self, tmp_path, capsys):
        data = write_dataset(tmp_path / "data")
        real = tmp_path / "results.json"
        link = tmp_path / "latest.json"
        link.symlink_to(real)
        code = main(
            [
                "benchmark",
                "--dataset",
                str(data),
                "--models",
                "pop",
                "--k",
                "3",
                "--output",
                str(link),
                "--threads",
                "1",
                "--quiet",
            ]
        )
        assert code == 0, capsys.readouterr().err
        assert link.is_symlink() and '"protocol"' in real.read_text()
