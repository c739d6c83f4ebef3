"""EASE asked to fit more items than its memory allows: one line at the CLI, exit 2, saying what
it would need, what there is and what to use instead; nothing is allocated first."""

from genrec.cli import main
from genrec.data.generator import InteractionWorld, write_interactions


def test_cli_refuses_ease_above_its_memory_naming_need_have_and_alternatives(tmp_path, capsys):
    world = InteractionWorld(n_users=40, n_items=30, n_interactions=400, seed=0)
    folder = write_interactions(tmp_path / "ml", world, format="ml-1m")
    argv = ["benchmark", "--dataset", str(folder), "--models", "ease", "--quiet"]
    code = main([*argv, "--set", "ease.memory_gb=0.00001", "--output", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    for words in ("30 items", "0.0108 MB", "0.01 MB is allowed", "memory_gb", "use ials"):
        assert words in err
