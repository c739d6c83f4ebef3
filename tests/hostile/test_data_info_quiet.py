"""``genrec data info`` accepts ``--quiet`` like every other subcommand that loads data."""

import json

from genrec.cli import main


def test_data_info_quiet(tmp_path, capsys):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text("1\t10\t4\t881250949\n1\t10\t5\t881250950\n2\t20\t3\t1\n")
    assert main(["data", "info", str(folder), "--quiet"]) == 0
    captured = capsys.readouterr()
    stats = json.loads(captured.out)
    assert stats["interactions"] == 3 and stats["duplicates"] == 1
    assert captured.err == ""
