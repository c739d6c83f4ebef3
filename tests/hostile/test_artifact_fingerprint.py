"""A saved model records the genrec version and its training data's fingerprint; loading checks
both.

Policy (see ``genrec.models.base.check_artifact``): other training data is an ArtifactDataError that says to
retrain (its user and item indices would point at other users and items); another genrec
version loads with a warning naming both versions.
"""

import json

import numpy as np
import pytest

import genrec
from genrec.build import load_model
from genrec.cli import main
from genrec.data import Dataset
from genrec.errors import ArtifactDataError, ArtifactError
from genrec.models import EASE, Pop
from genrec.models.base import data_fingerprint


def tiny_data(shift: int = 0, name: str = "tiny") -> Dataset:
    users = np.repeat(np.arange(8), 3)
    items = (users + np.tile([0, 1, 3 + shift], 8)) % 6
    return Dataset.from_interactions([f"u{u}" for u in users], [f"i{i}" for i in items], name=name)


def edit_meta(folder, **changes):
    path = folder / "config.json"
    meta = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))


def write_dataset(folder, shift: int):
    folder.mkdir()
    lines = [
        f"{u}\t{(u + j * (1 + shift)) % 7 + 1}\t4\t{880000000 + 10 * u + j}"
        for u in range(1, 13)
        for j in range(4)
    ]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    return folder


class TestArtifactFingerprint:
    def test_save_records_version_and_data(self, tmp_path):
        data = tiny_data()
        folder = EASE(reg=5.0).fit(data).save(tmp_path / "m")
        meta = json.loads((folder / "config.json").read_text())
        assert meta["genrec"] == genrec.__version__
        assert meta["data"] == {"dataset": "tiny", "checksum": data.checksum()}
        loaded = EASE.load(folder, expect_data=data)
        assert loaded.data_fingerprint_ == data_fingerprint(data)
        loaded.save(tmp_path / "again")  # a loaded model keeps its fingerprint when saved again
        assert load_model(tmp_path / "again", expect_data=data).n_items_ == data.n_items
        assert load_model(tmp_path / "again", expect_data=data.checksum()).n_items_ == data.n_items

    def test_other_data_is_refused_with_retrain(self, tmp_path):
        folder = Pop().fit(tiny_data()).save(tmp_path / "m")
        other = tiny_data(shift=1, name="other")
        with pytest.raises(
            ArtifactDataError, match=r"trained on different data \(tiny.*other.*retrain"
        ):
            Pop.load(folder, expect_data=other)
        assert Pop.load(folder).n_items_ == 6  # without expect_data nothing is checked

    def test_a_save_of_an_older_layout_is_still_checked(self, tmp_path):
        data = tiny_data()
        folder = Pop().fit(data).save(tmp_path / "m")
        edit_meta(folder, data=None, dataset="tiny", data_checksum=data.checksum())
        assert Pop.load(folder, expect_data=data).n_items_ == 6
        with pytest.raises(ArtifactDataError, match="different data"):
            Pop.load(folder, expect_data=tiny_data(shift=1))
        edit_meta(folder, data_checksum=None)
        with pytest.raises(ArtifactDataError, match="no fingerprint"):
            Pop.load(folder, expect_data=data)

    def test_another_genrec_version_warns_naming_both(self, tmp_path):
        folder = Pop().fit(tiny_data()).save(tmp_path / "m")
        edit_meta(folder, genrec="0.0.1")
        with pytest.warns(UserWarning, match=f"genrec 0.0.1 .* genrec {genrec.__version__}"):
            Pop.load(folder)

    def test_damaged_fingerprint_entries_are_errors_not_tracebacks(self, tmp_path):
        folder = Pop().fit(tiny_data()).save(tmp_path / "m")
        edit_meta(folder, data="not a mapping", data_checksum=None)
        with pytest.raises(ArtifactError):
            Pop.load(folder, expect_data=tiny_data())

    def test_cli_refuses_a_model_of_other_data_with_the_retrain_command(self, tmp_path, capsys):
        first, second = write_dataset(tmp_path / "a", 0), write_dataset(tmp_path / "b", 1)
        artifact = tmp_path / "pop"
        assert (
            main(
                [
                    "train",
                    "--dataset",
                    str(first),
                    "--model",
                    "pop",
                    "--output",
                    str(artifact),
                    "--quiet",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
        code = main(
            [
                "recommend",
                "--dataset",
                str(second),
                "--model",
                "pop",
                "--artifact",
                str(artifact),
                "--user",
                "1",
                "--quiet",
                "--threads",
                "1",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and "different data" in err and f"genrec train --dataset {second}" in err
        edit_meta(artifact, genrec="0.0.1")
        code = main(
            [
                "recommend",
                "--dataset",
                str(first),
                "--model",
                "pop",
                "--artifact",
                str(artifact),
                "--user",
                "1",
                "--k",
                "2",
                "--quiet",
                "--threads",
                "1",
            ]
        )
        captured = capsys.readouterr()
        assert code == 0 and captured.err.startswith("warning: ") and "0.0.1" in captured.err
        assert len(captured.out.splitlines()) == 2
