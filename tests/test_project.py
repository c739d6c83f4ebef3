"""Project files agree with each other: license, version, type marker, citation, test markers."""

import re
from pathlib import Path

import pytest

import genrec

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_lives_only_in_genrec_init(pyproject):
    project = pyproject["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "genrec.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", genrec.__version__)
    assert not re.search(r"^version:", (ROOT / "CITATION.cff").read_text(encoding="utf-8"), re.M)


def test_license_file_citation_and_metadata_name_the_same_license(pyproject):
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert pyproject["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(r"^license: Apache-2.0$", citation, re.M)
    assert re.search(r"^cff-version: 1\.2\.0$", citation, re.M)


def test_type_marker_ships_with_the_package(pyproject):
    assert (Path(genrec.__file__).parent / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["genrec"]


def test_dev_extra_installs_every_cross_check_the_tests_import(pyproject):
    dev = {
        re.split(r"[<>=\[ ]", req, maxsplit=1)[0]
        for req in pyproject["project"]["optional-dependencies"]["dev"]
    }
    assert {"pytest", "hypothesis", "sacrebleu", "nltk", "rouge-score", "bm25s", "ruff"} <= dev


class _Item:
    def __init__(self, fixturenames):
        self.fixturenames = fixturenames
        self.markers = []

    def add_marker(self, marker):
        self.markers.append(marker.name)


def test_real_data_tests_are_marked_slow_through_any_fixture(request):
    conftest = next(
        p for p in request.config.pluginmanager.get_plugins() if hasattr(p, "REAL_DATA_FIXTURES")
    )  # tests/conftest.py
    direct, indirect, synthetic = _Item(["ml100k"]), _Item(["env", "ml100k_cache"]), _Item(["x"])
    conftest.pytest_collection_modifyitems(request.config, [direct, indirect, synthetic])
    assert direct.markers == ["slow"] and indirect.markers == ["slow"]
    assert synthetic.markers == []
