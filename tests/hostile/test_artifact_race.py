"""A model folder is written as one unit.

Saving used to write ``weights.npz`` and then ``config.json`` into the folder one file at a time,
so two runs saving into one folder could leave one run's config beside the other run's weights,
which loaded without complaint. Now a save writes a whole folder aside and swaps it in under a
lock, readers share that lock, and both files carry one save id that loading compares.
"""

import dataclasses
import multiprocessing
import threading

import numpy as np
import pytest

from genrec.data import Dataset
from genrec.errors import ArtifactError
from genrec.models.base import ModelConfig, Recommender

SAVES = 15  # per writer: enough interleavings to catch a mix, bounded in time


@dataclasses.dataclass(frozen=True)
class TagConfig(ModelConfig):
    tag: int = 0  # written into every weight, so config and weights can be matched after load


class Tagged(Recommender):
    """A model whose weights repeat its config's tag (large enough that a save takes a while)."""

    name = "tagged"
    Config = TagConfig

    def _fit(self, train, valid, options):
        self.weights_ = np.full(400_000, self.config.tag, np.float32)

    def _score(self, histories, users):
        return np.zeros((histories.shape[0], self.n_items_), np.float32)

    def _state(self):
        return {"weights": self.weights_}

    def _load_state(self, state):
        self.weights_ = state["weights"]


def tiny_data() -> Dataset:
    return Dataset.from_interactions(["a", "a", "b"], ["x", "y", "y"], name="tiny")


def keep_saving(tag: int, folder) -> None:
    model = Tagged(tag=tag).fit(tiny_data())
    for _ in range(SAVES):
        model.save(folder)


class TestArtifactRace:
    def test_two_processes_saving_into_one_folder_never_mix(self, tmp_path):
        folder = tmp_path / "model"
        Tagged(tag=0).fit(tiny_data()).save(folder)
        context = multiprocessing.get_context("fork")
        writers = [context.Process(target=keep_saving, args=(tag, folder)) for tag in (1, 2)]
        for writer in writers:
            writer.start()
        seen = set()
        while any(w.is_alive() for w in writers):  # read while they write
            loaded = Tagged.load(folder)
            assert np.all(loaded.weights_ == loaded.config.tag)
            seen.add(loaded.config.tag)
        for writer in writers:
            writer.join(timeout=120)
            assert writer.exitcode == 0
        final = Tagged.load(folder)
        assert final.config.tag in (1, 2) and np.all(final.weights_ == final.config.tag)
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.npz"]
        assert [p.name for p in tmp_path.iterdir() if p.name != ".model.lock"] == ["model"]

    def test_two_threads_saving_into_one_folder_never_mix(self, tmp_path):
        folder = tmp_path / "model"
        threads = [threading.Thread(target=keep_saving, args=(tag, folder)) for tag in (3, 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive()
        final = Tagged.load(folder)
        assert final.config.tag in (3, 4) and np.all(final.weights_ == final.config.tag)

    def test_an_interrupted_save_leaves_the_previous_model(self, tmp_path, monkeypatch):
        folder = tmp_path / "model"
        Tagged(tag=5).fit(tiny_data()).save(folder)

        def fail(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(np, "savez", fail)
        with pytest.raises(KeyboardInterrupt):
            Tagged(tag=6).fit(tiny_data()).save(folder)
        monkeypatch.undo()
        assert Tagged.load(folder).config.tag == 5
        assert [p.name for p in tmp_path.iterdir() if p.name != ".model.lock"] == ["model"]

    def test_files_of_two_saves_are_refused(self, tmp_path):
        for tag in (7, 8):
            Tagged(tag=tag).fit(tiny_data()).save(tmp_path / f"m{tag}")
        (tmp_path / "m7" / "weights.npz").write_bytes(
            (tmp_path / "m8" / "weights.npz").read_bytes()
        )
        with pytest.raises(ArtifactError, match="two different saves"):
            Tagged.load(tmp_path / "m7")

    def test_a_folder_of_other_files_is_not_replaced(self, tmp_path):
        folder = tmp_path / "work"
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        with pytest.raises(ArtifactError, match="notes.txt"):
            Tagged(tag=9).fit(tiny_data()).save(folder)
        assert [p.name for p in folder.iterdir()] == ["notes.txt"]
