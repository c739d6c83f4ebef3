"""Help texts name the datasets a user can pass (from ``genrec.data.sources.SOURCES``)."""

import pytest

from genrec.cli import main
from genrec.data.sources import SOURCES


@pytest.mark.parametrize("command", [["benchmark"], ["train"], ["recommend"], ["data", "info"]])
def test_help_lists_every_dataset_name(capsys, command):
    with pytest.raises(SystemExit) as done:
        main(command + ["--help"])
    assert done.value.code == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens
    for name in SOURCES:
        assert name in text
