"""A broken learned-combiner file given to ``genrec serve --combiner SPEC=FILE`` stops the server
before it loads data or models: one line naming the file, exit code 2, no traceback."""

import numpy as np
import pytest

from genrec.cli import main
from genrec.models.multimodal.combiner import LearnedCombiner


def saved_combiner(path):
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(6, 4)).astype("float32")
    combiner = LearnedCombiner(epochs=1, hidden=4, projection=4)
    combiner.fit(gallery[:2], gallery[2:4], [[4], [5]], gallery)
    return combiner.save(path)


def truncated(path):
    data = saved_combiner(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def without_config(path):
    np.savez(path, dim=np.array(4))


def with_a_pickled_array(path):
    with open(path, "wb") as f:
        np.savez(f, config=np.array([{"a": 1}], dtype=object), dim=np.array(4))


def wrong_weights(path):
    saved = saved_combiner(path)
    with np.load(saved) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["dim"] = np.array(7)  # weights no longer fit the network their config builds
    with open(path, "wb") as f:
        np.savez(f, **arrays)


BREAKS = {
    "missing": lambda path: None,
    "empty": lambda path: path.write_bytes(b""),
    "text": lambda path: path.write_text("not a combiner"),
    "truncated": truncated,
    "no-config": without_config,
    "pickled": with_a_pickled_array,
    "wrong-weights": wrong_weights,
}


class TestBrokenCombinerFile:
    @pytest.mark.parametrize("damage", list(BREAKS), ids=list(BREAKS))
    def test_serve_refuses_it_in_one_line_naming_the_file(self, tmp_path, capsys, damage):
        path = tmp_path / "combiner.npz"
        BREAKS[damage](path)
        argv = ["serve", "--dataset", "not-loaded", "--models", "mmdense", "--port", "0"]
        argv += ["--artifacts", str(tmp_path / "artifacts"), "--combiner", f"mmdense={path}"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err
        assert "not a saved LearnedCombiner" in err
        assert not (tmp_path / "artifacts" / "mmdense").exists()  # no model trained

    def test_an_intact_file_loads(self, tmp_path):
        combiner = LearnedCombiner.load(saved_combiner(tmp_path / "c.npz"))
        assert combiner.dim == 4
