"""Bad data-parallel arguments of `genrec train` are one-line errors before any process starts:
a non-positive --nproc, --nproc under torchrun, and a torchrun environment that is not numbers."""

import multiprocessing

import pytest

from genrec.cli import main

TRAIN = ["train", "--model", "multvae", "--quiet"]
TORCHRUN = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}


class TestNprocArguments:
    @pytest.mark.parametrize("nproc", ["0", "-3"])
    def test_a_non_positive_process_count_is_refused(self, nproc, tmp_path, capsys):
        code = main([*TRAIN, "--nproc", nproc, "--output", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and f"--nproc must be a positive number of processes, got {nproc}" in err
        assert len(err.strip().splitlines()) == 1 and not multiprocessing.active_children()

    def test_nproc_under_torchrun_is_refused(self, tmp_path, capsys, monkeypatch):
        for name, value in TORCHRUN.items():
            monkeypatch.setenv(name, value)
        code = main([*TRAIN, "--nproc", "2", "--output", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and "under torchrun leave it out" in err

    def test_a_torchrun_environment_that_is_not_numbers_is_refused(
        self, tmp_path, capsys, monkeypatch
    ):
        for name, value in {**TORCHRUN, "RANK": "first"}.items():
            monkeypatch.setenv(name, value)
        code = main([*TRAIN, "--output", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and "'first'" in err and "start genrec through torchrun" in err
