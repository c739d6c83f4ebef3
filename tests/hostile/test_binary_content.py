"""Binary or huge content in a data file gives a short error, never a line of raw bytes.

A corrupt archive read as text, or a field of 60,000 characters, used to be quoted whole in the
error message. Every message that quotes file content is capped.
"""

import io
import json
import zipfile
from pathlib import Path

import pytest

from genrec.cli import main
from genrec.data import load_amazon_2018, load_movielens, load_recbole_atomic, load_table
from genrec.errors import DataError

LIMIT = 600  # characters; the path of the file comes on top
HUGE = "\x01\x02garbage\x7f" * 6000  # 60,000 characters, no separator and no newline


def corrupt_zip() -> bytes:
    """A zip archive of a u.data file whose header (magic number included) is damaged."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("u.data", "1\t10\t4\t881250949\n" * 2000)
    data = bytearray(buffer.getvalue())
    data[0:12] = b"\x00" * 12
    return bytes(data)


def write(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("latin-1"))
    return path


CASES = {
    "rating cell": lambda d: load_movielens(
        write(d, "u.data", f"1\t10\t{HUGE}\t881250949\n").parent
    ),
    "id cell": lambda d: load_table(
        write(d, "log.csv", f"u,i,r\n1,a,{HUGE}\n"), user="u", item="i", rating="r"
    ),
    "header": lambda d: load_table(write(d, "log.csv", f"{HUGE}\n1\n"), user="u", item="i"),
    "atomic header": lambda d: load_recbole_atomic(write(d, "x.inter", f"{HUGE}\n1\n")),
    "json line": lambda d: load_amazon_2018(write(d, "r.json", "{" + HUGE + "\n")),
    "json record": lambda d: load_amazon_2018(write(d, "r.json", json.dumps([HUGE]) + "\n")),
    "corrupt zip as u.data": lambda d: load_movielens(write(d, "u.data", corrupt_zip()).parent),
    "corrupt zip named .zip": lambda d: load_table(
        write(d, "log.csv.zip", corrupt_zip()), user="u", item="i"
    ),
    "timestamp cell": lambda d: load_table(
        write(d, "log.csv", f"u,i,t\n1,a,{HUGE[:3000]}9\n"), user="u", item="i", timestamp="t"
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_error_is_short(tmp_path, case):
    with pytest.raises(DataError) as error:
        CASES[case](tmp_path / "data")
    message = str(error.value).replace(str(tmp_path), "")
    assert len(message) < LIMIT, message[:LIMIT]
    assert "\x01" not in message


def test_the_cli_prints_one_short_line(tmp_path, capsys):
    folder = tmp_path / "ml"
    write(folder, "u.data", corrupt_zip())
    assert main(["data", "info", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < LIMIT + len(str(folder)), err[:LIMIT]
