"""A NaN or an infinity planted in a saved model's weights is refused at load, naming the array.

It used to load without complaint whenever the probe scoring happened not to touch the damaged
entry (a similarity matrix, an embedding row of one item), and then ranked that item anywhere.
"""

import numpy as np
import pytest

from genrec.build import load_model
from genrec.data import Dataset
from genrec.errors import ArtifactError
from genrec.models import BPR, EASE, ItemKNN


def tiny_data() -> Dataset:
    users = np.repeat(np.arange(8), 3)
    items = (users + np.tile([0, 1, 3], 8)) % 6
    return Dataset.from_interactions(
        [f"u{u}" for u in users], [f"i{i}" for i in items], name="tiny"
    )


def plant(folder, value) -> str:
    """Put ``value`` into one entry of the first float array of ``folder``'s weights."""
    path = folder / "weights.npz"
    with np.load(path, allow_pickle=False) as npz:
        state = {k: npz[k] for k in npz.files}
    name = next(k for k, v in state.items() if np.issubdtype(v.dtype, np.floating) and v.size)
    damaged = state[name].copy()
    damaged.reshape(-1)[damaged.size // 2] = value
    state[name] = damaged
    with open(path, "wb") as f:
        np.savez(f, **state)
    return name


class TestNanWeights:
    @pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
    @pytest.mark.parametrize(
        "model_cls, config",
        [(EASE, {"reg": 10.0}), (ItemKNN, {"k_neighbors": 3}), (BPR, {"dim": 4, "max_epochs": 2})],
        ids=["ease", "itemknn", "bpr"],
    )
    def test_a_planted_value_is_refused_naming_the_array(self, tmp_path, model_cls, config, value):
        folder = model_cls(config).fit(tiny_data()).save(tmp_path / "m")
        name = plant(folder, value)
        for load in (load_model, model_cls.load):
            with pytest.raises(ArtifactError, match=f"array '{name}' holds 1 NaN or infinite"):
                load(folder)

    def test_an_intact_model_still_loads(self, tmp_path):
        model = EASE(reg=10.0).fit(tiny_data())
        loaded = EASE.load(model.save(tmp_path / "m"))
        history = np.eye(6, dtype=np.float32)[:2]
        np.testing.assert_array_equal(loaded.score(history), model.score(history))
