"""The contract every genrec model passes: one reusable suite, one subclass per model.

A model's own test file only names the class, a tiny config and a quality floor::

    class TestEASE(ModelContract):
        model_cls = EASE
        config = {"reg": 10.0}
        quality_floor = 0.95

and adds tests of what is special about the model. The suite checks, on a synthetic world with a
known answer (noisy ``planted_clusters`` unless ``world()`` is overridden):

* ``fit`` returns self; ``score`` / ``recommend`` / ``save`` before ``fit`` raise NotFittedError;
* scoring rows together equals scoring them one at a time (with and without user indices);
* ``recommend`` never returns a seen item and respects shared (1-D) and per-row (2-D) candidates;
* ``k`` outside 1..n_items and unknown or invalid config keys raise ConfigError;
* save -> load (through ``genrec.build.load_model``, checking the training data, and
  ``model_cls.load``) gives identical scores;
* the same ``RunOptions(seed, threads)`` gives bit-identical scores and rankings for every user,
  whatever the global random generators hold (and, for ``stochastic`` models, another seed gives
  different scores);
* histories of users unknown to the model (``users=None``, even an empty one) get finite scores;
  a history with the wrong number of item columns raises DataError;
* the known answer is found: Hit@``quality_k`` of the world's answer >= ``quality_floor``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from genrec.build import build_model, load_model
from genrec.data.synthetic import World, planted_clusters
from genrec.errors import ConfigError, DataError, NotFittedError
from genrec.models.base import Recommender
from genrec.options import RunOptions

OPTIONS = RunOptions(seed=0, threads=1)
TOL = {"rtol": 1e-5, "atol": 1e-5}


class ModelContract:
    """Shared tests; subclass as ``Test<Model>`` and set the class attributes below."""

    model_cls: ClassVar[type[Recommender]]
    config: ClassVar[dict[str, Any]] = {}  # tiny, fast hyper-parameters
    quality_floor: ClassVar[float | None] = 0.9  # Hit@quality_k floor; None skips (with reason)
    quality_k: ClassVar[int] = 5
    skip_quality_reason: ClassVar[str] = ""
    stochastic: ClassVar[bool] = False  # a different seed must change the scores
    fit_with_valid: ClassVar[bool] = False  # pass world.split.valid to fit (early stopping)
    bad_configs: ClassVar[list[dict[str, Any]]] = []  # each must raise ConfigError

    def world(self) -> World:
        """The known-answer world the suite runs on: 4 planted clusters with 2 out-of-cluster
        train items per user (Hit@5 of the answer: EASE, ItemKNN, BPR 1.0; Pop 0.04)."""
        return planted_clusters(n_users=120, n_items=60, n_clusters=4, noise=2, seed=0)

    # ---- helpers -----------------------------------------------------------------------------
    def make(self) -> Recommender:
        return build_model(self.model_cls.name, dict(self.config))

    def fit(self, world: World, options: RunOptions = OPTIONS) -> Recommender:
        valid = world.split.valid if self.fit_with_valid else None
        return self.make().fit(world.split.train, valid=valid, options=options)

    @pytest.fixture(scope="class")
    @classmethod
    def known(cls) -> World:
        return cls().world()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, known) -> Recommender:
        return cls().fit(known)

    @staticmethod
    def batch(world: World, n: int = 16) -> tuple[sp.csr_matrix, np.ndarray]:
        """(histories, users) of the first ``n`` users that have a training history."""
        users = np.flatnonzero(world.split.train.user_counts > 0)[:n]
        return world.split.history("test").user_item_order[users], users  # valued by time

    # ---- construction and fitting ------------------------------------------------------------
    def test_fit_returns_self(self, known):
        model = self.make()
        assert model.fit(known.split.train, options=OPTIONS) is model
        assert model.n_items_ == known.data.n_items

    def test_not_fitted_errors(self, known, tmp_path):
        model = self.make()
        histories, users = self.batch(known)
        with pytest.raises(NotFittedError, match="fit"):
            model.score(histories)
        with pytest.raises(NotFittedError, match="fit"):
            model.recommend(histories, users=users, k=3)
        with pytest.raises(NotFittedError, match="fit"):
            model.save(tmp_path / "model")

    def test_unknown_config_key_names_allowed_keys(self):
        with pytest.raises(ConfigError, match="allowed keys") as err:
            self.model_cls({**self.config, "no_such_key": 1})
        for field in dataclasses.fields(self.model_cls.Config):
            assert field.name in str(err.value)
        with pytest.raises(ConfigError, match="no_such_key"):
            self.model_cls(no_such_key=1)

    def test_bad_config_values_raise(self):
        for bad in self.bad_configs:
            with pytest.raises(ConfigError):
                self.model_cls({**self.config, **bad})

    # ---- scoring -----------------------------------------------------------------------------
    @pytest.mark.parametrize("with_users", [True, False], ids=["users", "histories-only"])
    def test_batch_equals_single(self, fitted, known, with_users):
        histories, users = self.batch(known)
        users = users if with_users else None
        together = fitted.score(histories, users=users)
        assert together.shape == (len(self.batch(known)[1]), known.data.n_items)
        assert together.dtype == np.float32
        for row in range(histories.shape[0]):
            one = fitted.score(
                histories[row], users=None if users is None else users[row : row + 1]
            )
            np.testing.assert_allclose(one[0], together[row], **TOL)

    def test_seen_items_excluded(self, fitted, known):
        histories, users = self.batch(known)
        items, scores = fitted.recommend(histories, users=users, k=10)
        assert items.shape == scores.shape == (histories.shape[0], 10)
        for row in range(histories.shape[0]):
            seen = set(histories[row].indices)
            assert not seen & set(items[row][items[row] >= 0])
        assert np.all(np.diff(scores, axis=1) <= 0)  # best first
        kept, _ = fitted.recommend(histories, users=users, k=10, exclude_seen=False)
        scores = fitted.score(histories, users=users)
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]  # ties: lower index first
        np.testing.assert_array_equal(kept, expected)

    def test_shared_candidates_respected(self, fitted, known):
        histories, users = self.batch(known)
        candidates = np.arange(0, known.data.n_items, 3)
        items, _ = fitted.recommend(histories, users=users, k=5, candidates=candidates)
        assert (items >= 0).all() and np.isin(items, candidates).all()

    def test_per_row_candidates_respected(self, fitted, known):
        histories, users = self.batch(known)
        rng = np.random.default_rng(0)
        candidates = np.stack(
            [rng.choice(known.data.n_items, 4, replace=False) for _ in range(len(users))]
        )  # (B, 4)
        items, scores = fitted.recommend(histories, users=users, k=6, candidates=candidates)
        for row in range(len(users)):
            allowed = set(candidates[row]) - set(histories[row].indices)
            got = items[row][items[row] >= 0]
            assert set(got) == allowed  # every allowed candidate, nothing else
            assert np.isneginf(scores[row][len(got) :]).all()

    @pytest.mark.parametrize("bad_k", [0, -1, "n_items+1", 2.5])
    def test_bad_k_raises(self, fitted, known, bad_k):
        histories, users = self.batch(known)
        k = known.data.n_items + 1 if bad_k == "n_items+1" else bad_k
        with pytest.raises(ConfigError, match="k must be"):
            fitted.recommend(histories, users=users, k=k)

    def test_k_equal_to_n_items_allowed(self, fitted, known):
        histories, users = self.batch(known)
        items, _ = fitted.recommend(histories, users=users, k=known.data.n_items)
        assert items.shape == (len(users), known.data.n_items)

    def test_unknown_user_history_scores(self, fitted, known):
        histories, _ = self.batch(known, n=5)
        histories = sp.vstack([histories, sp.csr_matrix((1, known.data.n_items))]).tocsr()
        scores = fitted.score(histories, users=None)  # last row: a user with no history at all
        assert scores.shape == (6, known.data.n_items)
        assert np.isfinite(scores).all()
        items, _ = fitted.recommend(histories, k=3)
        assert items.shape == (6, 3)

    def test_wrong_item_columns_raise(self, fitted, known):
        wrong = sp.csr_matrix((2, known.data.n_items + 1), dtype=np.float32)
        with pytest.raises(DataError, match="item columns"):
            fitted.score(wrong)
        with pytest.raises(DataError, match="item columns"):
            fitted.recommend(wrong, k=3)

    # ---- persistence and determinism ---------------------------------------------------------
    def test_save_load_identical_scores(self, fitted, known, tmp_path):
        histories, users = self.batch(known)
        path = tmp_path / "model"
        fitted.save(path)
        loaders = [lambda path: load_model(path, expect_data=known.split.train)]
        if not hasattr(self.model_cls, "part_specs"):
            loaders.append(self.model_cls.load)
        for loaded in (load(path) for load in loaders):
            assert type(loaded) is self.model_cls
            assert loaded.config == fitted.config
            for who in (users, None):
                np.testing.assert_array_equal(
                    loaded.score(histories, users=who), fitted.score(histories, users=who)
                )

    def test_same_seed_same_result(self, known):
        """Same seed and thread count: bit-identical scores for every user, whatever state the
        global random generators are in (nothing may be seeded from them, the clock or hashing)."""
        users = np.flatnonzero(known.split.train.user_counts > 0)
        histories = known.split.history("test").user_item_order[users]
        first, second = same_seed_fits(self.fit, known, RunOptions(seed=7, threads=1))
        np.testing.assert_array_equal(
            first.score(histories, users=users), second.score(histories, users=users)
        )
        np.testing.assert_array_equal(
            first.recommend(histories, users=users, k=10)[0],
            second.recommend(histories, users=users, k=10)[0],
        )
        if self.stochastic:
            other = self.fit(known, RunOptions(seed=8, threads=1))
            assert not np.array_equal(
                other.score(histories, users=users), first.score(histories, users=users)
            )

    # ---- quality -----------------------------------------------------------------------------
    def test_finds_the_known_answer(self, fitted, known):
        if self.quality_floor is None:
            pytest.skip(self.skip_quality_reason or "no quality floor for this model")
        users = np.flatnonzero(known.answer >= 0)
        histories = known.split.history("test").user_item_order[users]
        items, _ = fitted.recommend(histories, users=users, k=self.quality_k)
        hit = (items == known.answer[users, None]).any(axis=1).mean()
        assert hit >= self.quality_floor, (
            f"Hit@{self.quality_k} of the known answer is {hit:.3f} < {self.quality_floor}"
        )


def same_seed_fits(fit, world: World, options: RunOptions) -> tuple[Recommender, Recommender]:
    """Two ``fit(world, options)`` calls, the global torch and numpy generators seeded
    differently before each: a model that draws from them instead of ``options.seed`` differs."""
    import torch

    fits = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        fits.append(fit(world, options))
    return fits[0], fits[1]
