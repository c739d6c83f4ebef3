"""``--threads 0`` (or any count below 1) is an error, not a silent "use the default".

The CLI used to read ``--threads 0`` as false and fall back to the free cores without a word.
"""

import pytest

from genrec.cli import main
from genrec.errors import ConfigError
from genrec.options import RunOptions


class TestThreadsOption:
    @pytest.mark.parametrize("threads", [0, -2, True, 1.5, "2"])
    def test_run_options_want_a_positive_integer(self, threads):
        with pytest.raises(ConfigError, match="threads must be a positive integer"):
            RunOptions(threads=threads)

    def test_none_and_positive_counts_are_fine(self):
        assert RunOptions(threads=3).n_threads == 3
        assert RunOptions(threads=None).n_threads >= 1

    @pytest.mark.parametrize(
        "command",
        [
            ["benchmark", "--models", "pop"],
            ["train", "--model", "pop"],
            ["recommend", "--model", "pop", "--user", "1"],
            ["explain", "--model", "pop", "--user", "1"],
            ["serve-lm", "--model", "fake"],
        ],
    )
    @pytest.mark.parametrize("threads", ["0", "-1"])
    def test_cli_refuses_before_any_work(self, tmp_path, capsys, monkeypatch, command, threads):
        monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "empty-cache"))  # nothing to load
        monkeypatch.setenv("GENREC_ARTIFACTS", str(tmp_path / "artifacts"))
        code = main([*command, "--threads", threads])
        err = capsys.readouterr().err
        assert code == 2 and f"--threads must be a positive number of threads, got {threads}" in err
        assert not (tmp_path / "empty-cache").exists() and not (tmp_path / "artifacts").exists()
