"""``--device`` names a device this machine has, or the command stops before any work.

A misspelt device (``gpu``) or a GPU the machine lacks (``cuda`` on a CPU-only machine, where
torch would fail deep inside the first fit) is a one-line error naming the allowed values and
the fix, with exit code 2; nothing is fetched, trained or written.
"""

import pytest
import torch

from genrec.cli import main


class TestDeviceOption:
    COMMANDS = [
        ["benchmark", "--models", "pop"],
        ["train", "--model", "multvae"],
        ["recommend", "--model", "pop", "--user", "1"],
    ]

    @pytest.mark.parametrize("command", COMMANDS)
    @pytest.mark.parametrize(
        ("device", "message"),
        [
            ("gpu", "device must be one of cpu, cuda, cuda:N, mps, auto, got 'gpu'"),
            ("cuda:one", "device must be one of cpu, cuda, cuda:N, mps, auto"),
            ("cuda", "no CUDA GPU"),
            ("cuda:1", "use --device cpu or --device auto"),
        ],
    )
    def test_cli_refuses_before_any_work(
        self, tmp_path, capsys, monkeypatch, command, device, message
    ):
        assert not torch.cuda.is_available()  # the premise: a CPU-only machine
        monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "empty-cache"))  # nothing to load
        monkeypatch.setenv("GENREC_ARTIFACTS", str(tmp_path / "artifacts"))
        code = main([*command, "--device", device])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "empty-cache").exists() and not (tmp_path / "artifacts").exists()

    def test_an_experiment_file_with_a_bad_device_fails_before_loading(self, tmp_path, capsys):
        path = tmp_path / "exp.toml"
        path.write_text('device = "tpu"\n[[models]]\nname = "pop"\n')
        assert main(["run", str(path)]) == 2
        assert "got 'tpu'" in capsys.readouterr().err

    def test_serve_says_where_its_models_run(self, tmp_path, capsys, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "empty-cache"))
        assert main(["serve", "--models", "pop", "--device", "cuda"]) == 2
        assert "genrec serve runs its models on the CPU" in capsys.readouterr().err
        assert not (tmp_path / "empty-cache").exists()
