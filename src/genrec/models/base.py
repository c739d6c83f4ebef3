"""The model contract every recommender in genrec follows.

A model is built from a typed config (validated on construction, unknown keys rejected), learns
from a training ``Dataset`` in ``fit(train, *, valid=None, options=None) -> self``, and scores a
batch of user *histories* (binary CSR rows over the item vocabulary) against every item in one
operation. Scoring a history rather than a user id is what lets the same model serve a user who
arrived after training; models with per-user parameters (BPR-MF) use them when ``users`` is given
and fold the history in otherwise.

To add a model: subclass :class:`ModelConfig` (a frozen dataclass with one comment per field),
subclass :class:`Recommender`, implement ``_fit``, ``_score``, ``_state`` and ``_load_state``,
and list it in the ``MODELS`` table of ``genrec/models/__init__.py``. The shared contract suite in ``tests/models``
then checks it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from genrec.data.dataset import Dataset
from genrec.errors import (
    ArtifactDataError,
    ArtifactError,
    ConfigError,
    DataError,
    GenrecError,
    NotFittedError,
)
from genrec.io import read_artifact as _read
from genrec.io import read_artifact_json, write_artifact
from genrec.options import RunOptions
from genrec.ranking import as_score_tensor, mask_non_candidates, mask_seen, top_k


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of every model's hyper-parameters. Subclasses add fields with defaults.

    ``presets`` names other complete settings worth keeping (e.g. ``"paper"``: the paper's own
    hyper-parameters), each a mapping of the fields that differ from the defaults; the class
    docstring says where each preset's numbers come from. ``Config.from_preset(name)`` builds
    one; ``genrec benchmark --models NAME:PRESET`` runs one.
    """

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @classmethod
    def from_preset(cls, name: str, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
        """The preset ``name`` (``"default"`` is the defaults) with ``overrides`` on top.

        Raises:
            ConfigError: an unknown preset (naming the known ones) or override key.
        """
        if name != "default" and name not in cls.presets:
            known = ", ".join(["default", *cls.presets])
            raise ConfigError(f"{cls.__name__} has no preset {name!r}; choose from {known}")
        return cls.from_dict({**dict(cls.presets.get(name, {})), **dict(overrides or {})})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ModelConfig:
        """Build from a mapping, coercing strings (from the CLI) to the field types.

        Raises:
            ConfigError: on an unknown key (naming the allowed keys) or a value of the wrong type.
        """
        values = dict(values or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown} for {cls.__name__}; "
                f"allowed keys: {sorted(fields)}"
            )
        hints = typing.get_type_hints(cls)
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check_positive_ints(self, *fields: str) -> None:
        """:meth:`check` that each of ``fields`` is a positive integer (a bool is not)."""
        for field in fields:
            value = getattr(self, field)
            self.check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                field,
                "a positive integer",
            )

    def check(self, condition: bool, field: str, allowed: str) -> None:
        """Raise a ConfigError naming ``field``, its value and what is allowed."""
        if not condition:
            raise ConfigError(
                f"{type(self).__name__}.{field} = {getattr(self, field)!r} "
                f"is invalid; it must be {allowed}"
            )


def _coerce(key: str, value: Any, hint: Any) -> Any:
    base = typing.get_origin(hint) or hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if base is typing.Union or base is types.UnionType:  # Optional[X] or X | None
        if value is None or value == "none":
            return None
        base = args[0]
    try:
        if base is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if base in (int, float, str) and not isinstance(value, bool):
            coerced = base(value)
            if base is int and isinstance(value, float) and coerced != value:
                raise ValueError(value)
            return coerced
        if base is tuple and isinstance(value, (str, list, tuple)):
            parts = value.split(",") if isinstance(value, str) else value
            kind = args[0] if args and args[0] in (int, float, str) else None
            return tuple(
                kind(x.strip() if isinstance(x, str) else x) if kind else x
                for x in parts
                if not (isinstance(x, str) and not x.strip())
            )
    except (TypeError, ValueError):
        raise ConfigError(
            f"config key {key!r} expects {getattr(base, '__name__', base)}, got {value!r}"
        ) from None
    if base in (int, float) and isinstance(value, bool):
        raise ConfigError(f"config key {key!r} expects {base.__name__}, got {value!r}")
    return value


class Recommender:
    """Base class: config handling, input checks, top-k, save/load. Subclasses supply the math.

    Subclass hooks:
        ``_fit(train, valid, options)``: learn; set attributes ending in ``_``.
        ``_score(histories, users) -> (B, n_items) float array``: higher is better; a fresh
            array or a read-only view (the evaluator masks writable results in place).
        ``_state() -> dict[str, np.ndarray]`` and ``_load_state(state)``: weights for save/load.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    # Sequential models read the time order of a history from its values (larger = later; see
    # genrec.data.history_sequences); the others see binary rows.
    sequential: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | Mapping[str, Any] | None = None, **overrides):
        if isinstance(config, ModelConfig):
            if not isinstance(config, self.Config):
                raise ConfigError(
                    f"{self.name} expects a {self.Config.__name__}, got {type(config).__name__}"
                )
            config = dataclasses.replace(config, **overrides) if overrides else config
        else:
            config = self.Config.from_dict({**dict(config or {}), **overrides})
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(
                    f"{type(config).__name__}.{f.name} = {value!r} must be a finite number"
                )
        self.config = config
        self.n_items_: int | None = None
        self.n_users_: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    # ---- training ----------------------------------------------------------------------------
    def fit(
        self, train: Dataset, *, valid: Dataset | None = None, options: RunOptions | None = None
    ) -> Recommender:
        """Learn from ``train`` (and early-stop on ``valid`` where the model supports it)."""
        if not isinstance(train, Dataset):
            raise DataError(f"fit expects a genrec Dataset, got {type(train).__name__}")
        if len(train) == 0:
            raise DataError("cannot fit on an empty training set")
        options = (options or RunOptions()).pinned()  # one thread count for every part of a fit
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.data_fingerprint_ = data_fingerprint(train)
        with options.capped_threads():  # restored after: fit leaves process-wide state as found
            self._fit(train, valid, options)
        return self

    def _fit(self, train: Dataset, valid: Dataset | None, options: RunOptions) -> None:
        raise NotImplementedError

    # ---- scoring -----------------------------------------------------------------------------
    def score(self, histories: sp.spmatrix, *, users: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item for a batch of histories.

        Args:
            histories: (B, n_items) CSR of the items each user has interacted with; values > 0
                mark an item as seen, and their order is the time order for sequential models
                (``Dataset.user_item_order`` rows, ``as_history_matrix``).
            users: (B,) training user indices, or None for users unknown to the model.

        Returns:
            (B, n_items) float32 array; higher means more recommended.
        """
        histories, users = self._check_batch(histories, users)
        return np.asarray(self._score(histories, users), dtype=np.float32)

    def _score(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def score_candidates(
        self, histories: sp.spmatrix, candidates: np.ndarray, *, users: np.ndarray | None = None
    ) -> np.ndarray:
        """Scores of given candidate items only: what a reranker or a sampled protocol needs.

        Args:
            histories, users: as in :meth:`score`.
            candidates: (B, C) item indices, one row of candidates per history.

        Returns:
            (B, C) float32; ``out[b, c]`` scores item ``candidates[b, c]`` for history ``b``.
            Models whose cost grows with the items scored (language models) override the hook
            ``_score_candidates``; the default gathers from the full :meth:`score`.
        """
        histories, users = self._check_batch(histories, users)
        candidates = np.asarray(candidates)
        if candidates.ndim != 2 or candidates.shape[0] != histories.shape[0]:
            raise DataError(
                f"candidates must be (batch, C) item indices with one row per history "
                f"({histories.shape[0]}), got shape {candidates.shape}"
            )
        if candidates.size and (
            not np.issubdtype(candidates.dtype, np.integer)
            or candidates.min() < 0
            or candidates.max() >= self.n_items_
        ):
            raise DataError(f"candidates must be integer item indices in 0..{self.n_items_ - 1}")
        return np.asarray(
            self._score_candidates(histories, candidates.astype(np.int64), users), dtype=np.float32
        )

    def _score_candidates(
        self, histories: sp.csr_matrix, candidates: np.ndarray, users: np.ndarray | None
    ) -> np.ndarray:
        return np.take_along_axis(np.asarray(self._score(histories, users)), candidates, axis=1)

    def recommend(
        self,
        histories: sp.spmatrix,
        *,
        users: np.ndarray | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per history.

        Args:
            histories, users: as in :meth:`score`.
            k: list length, 1 <= k <= n_items.
            exclude_seen: never recommend an item of the history.
            candidates: restrict to these item indices: (C,) shared or (B, C) per row.

        Returns:
            ``(items, scores)``, both (B, k), best first. Where fewer than k items are allowed
            the tail holds item -1 with score -inf.
        """
        self._require_fitted()
        if (
            isinstance(k, bool)
            or not isinstance(k, (int, np.integer))
            or not 1 <= k <= self.n_items_
        ):
            raise ConfigError(
                f"k must be an integer in 1..{self.n_items_} (the number of items), got {k!r}"
            )
        histories, users = self._check_batch(histories, users)
        scores = as_score_tensor(self._score(histories, users), model_name=self.name)
        if exclude_seen:
            mask_seen(scores, histories)
        if candidates is not None:
            mask_non_candidates(scores, candidates)
        return top_k(scores, int(k), model_name=self.name)

    # ---- device ------------------------------------------------------------------------------
    def to(self, device: str) -> Recommender:
        """Move the model's torch weights to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``,
        ``"mps"`` or ``"auto"``, as ``RunOptions.device``) and return the model: scoring then
        runs there, since every torch model scores where its weights are. For a model loaded
        from disk (its weights are built on the CPU) or fitted on another device.

        Every torch module and tensor the model holds moves, also inside lists, tuples and dicts
        and inside the models a pipeline is made of. A model without torch weights (numpy,
        scipy) is left as it is and keeps scoring on the CPU.

        Raises:
            NotFittedError: the model was neither fitted nor loaded.
            ConfigError: the device is unknown or not available on this machine.
        """
        from genrec.options import resolve_device

        self._require_fitted()
        target = resolve_device(device)
        move_torch_state(self, target)
        return self

    # ---- checks ------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.n_items_ is None:
            raise NotFittedError(
                f"{self.name} is not fitted; call fit(train) or "
                f"{type(self).__name__}.load(path) first"
            )

    def _check_batch(self, histories, users):
        """Validate a batch; histories become float32 CSR of their positive entries, binary
        unless the model is :attr:`sequential` (which keeps the values: the time order)."""
        self._require_fitted()
        if not sp.issparse(histories):
            dense = np.asarray(histories, dtype=np.float32)
            if dense.ndim == 1:
                dense = dense[None, :]
            if dense.ndim != 2:
                raise DataError(f"histories must be 2-D (batch, n_items), got {dense.ndim}-D")
            histories = sp.csr_matrix(dense)
        histories = sp.csr_matrix(histories, dtype=np.float32)
        if histories.shape[1] != self.n_items_:
            raise DataError(
                f"histories have {histories.shape[1]} item columns but the model was "
                f"fitted on {self.n_items_} items; use the dataset the model was trained on"
            )
        if not np.all(np.isfinite(histories.data)):
            raise DataError(
                "histories contain NaN or infinite values; a history is a binary row "
                "(1 = the user interacted with the item)"
            )
        histories.data = np.where(histories.data > 0, histories.data, 0).astype(np.float32)
        histories.eliminate_zeros()
        if not self.sequential:
            histories.data[:] = 1.0
        if users is not None:
            users = np.asarray(users).reshape(-1)
            if users.size and not np.issubdtype(users.dtype, np.integer):
                raise DataError(f"users must be integer user indices, got dtype {users.dtype}")
            users = users.astype(np.int64)
            if len(users) != histories.shape[0]:
                raise DataError(f"got {len(users)} users for {histories.shape[0]} histories")
            if users.size and (users.min() < 0 or users.max() >= self.n_users_):
                raise DataError(
                    f"user index out of range 0..{self.n_users_ - 1}; pass users=None "
                    "to score histories of users unknown to the model"
                )
        return histories, users

    # ---- persistence -------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``weights.npz`` into the folder ``path``, as one unit.

        The folder is written aside and renamed into place (:func:`genrec.io.atomic_folder`): an
        interrupted save leaves the previous model, and two saves racing into one folder leave
        one whole model, never one run's config beside another run's weights. ``config.json``
        records the model, its config, the genrec version and the training data's fingerprint
        (:func:`data_fingerprint`), which :meth:`load` checks. No pickle: weights are plain
        arrays and the config is JSON.

        Raises:
            NotFittedError: the model was neither fitted nor loaded.
            ArtifactError: ``path`` is a file, or a folder holding files other than a model's.
        """
        from genrec import __version__

        self._require_fitted()
        meta = {
            "model": self.name,
            "config": self.config.to_dict(),
            "genrec": __version__,
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "data": getattr(self, "data_fingerprint_", None),
            **dict(metadata or {}),
        }
        return write_artifact(path, meta, self._state(), what="model folder")

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, expect_data: Dataset | str | None = None
    ) -> Recommender:
        """Read a folder written by :meth:`save` into this model class (any model, pipelines
        included: :func:`genrec.build.load_model`). ``expect_data`` and the checks are those of
        :func:`check_artifact`; see :func:`read_artifact` for what else is refused."""
        if cls is Recommender or getattr(cls, "part_specs", None) is not None:
            raise ConfigError(
                f"{cls.__name__}.load cannot rebuild the model at {path}; use "
                "genrec.build.load_model(path)"
            )
        meta, state = read_artifact(path)
        if cls.name != meta["model"]:
            raise ArtifactError(f"{path} holds a {meta['model']!r} model, not {cls.name!r}")
        check_artifact(meta, path, expect_data=expect_data)
        try:
            model = cls(meta["config"])
        except ConfigError as exc:
            raise ArtifactError(
                f"{path} has an invalid config ({exc}); retrain the model"
            ) from None
        return load_weights(model, path, meta, state)


def move_torch_state(model: Recommender, device) -> None:
    """Move every torch module and tensor held by ``model`` (attributes, and lists, tuples,
    dicts and Recommenders inside them, and genrec objects with a ``to(device)`` method) to
    ``device`` (any ``torch.device``), in place. Without torch imported the model holds no
    torch objects and nothing happens."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return
    seen: set[int] = set()

    def moved(value):
        if id(value) in seen:
            return value
        if isinstance(value, torch.nn.Module):
            seen.add(id(value))
            return value.to(device)
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, Recommender):
            seen.add(id(value))
            for name, inner in vars(value).items():
                if name != "config":
                    setattr(value, name, moved(inner))
            return value
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(moved(v) for v in value)
        if isinstance(value, dict):
            return {k: moved(v) for k, v in value.items()}
        if type(value).__module__.startswith("genrec.") and callable(getattr(value, "to", None)):
            seen.add(id(value))
            return value.to(device)  # genrec's own tensor holders (e.g. a diffusion schedule)
        return value

    moved(model)


def load_weights(
    model: Recommender,
    path: str | os.PathLike,
    meta: Mapping[str, Any],
    state: dict[str, np.ndarray],
) -> Recommender:
    """Fill the unfitted ``model`` (built from ``meta["config"]``) with ``state``, the weights
    :func:`read_artifact` read from ``path``; ArtifactError when they do not fit it."""
    model.n_users_, model.n_items_ = int(meta["n_users"]), int(meta["n_items"])
    model.data_fingerprint_ = _saved_fingerprint(meta)
    try:
        model._load_state(state)
        probe = model.score(sp.csr_matrix((1, model.n_items_), dtype=np.float32))
    except GenrecError:
        raise
    except Exception as exc:
        raise ArtifactError(
            f"{path}/weights.npz does not fit a {model.name} model with "
            f"{model.n_items_} items ({type(exc).__name__}: {exc}); retrain "
            "the model"
        ) from None
    if probe.shape != (1, model.n_items_) or np.isnan(probe).any():
        raise ArtifactError(
            f"{path}/weights.npz gives invalid scores (NaN or wrong shape); retrain the model"
        )
    return model


def data_fingerprint(data: Dataset) -> dict[str, str]:
    """What identifies a model's training data: the dataset's name and :meth:`Dataset.checksum`."""
    return {"dataset": data.name, "checksum": data.checksum()}


def read_artifact_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a saved model; raises ArtifactError when missing or unreadable."""
    meta = read_artifact_json(path, what="model")
    _check_model_meta(meta, path)
    return meta


def _check_model_meta(meta: Mapping[str, Any], path) -> None:
    required = {"model": str, "config": dict, "n_users": int, "n_items": int}
    bad = [k for k, t in required.items() if not isinstance(meta.get(k), t)]
    if bad:
        raise ArtifactError(
            f"{Path(path) / 'config.json'} lacks valid {bad} entries; it was not written by "
            "genrec's save() or is damaged: retrain the model"
        )


def read_artifact(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, weight arrays) of the model saved in ``path``: :func:`genrec.io.read_artifact`
    with the metadata every model records checked first.

    Raises:
        ArtifactError: unreadable files, files of two different saves, non-finite weights.
    """
    return _read(path, what="model", check=lambda meta: _check_model_meta(meta, path))


def check_artifact(
    meta: Mapping[str, Any], path, *, expect_data: Dataset | str | None = None
) -> None:
    """Check a saved model's metadata against this genrec and the data it will be used with.

    Args:
        meta: :func:`read_artifact`'s metadata.
        expect_data: the data the caller will use the model with, or its
            :meth:`~genrec.data.Dataset.checksum`; None checks nothing about the data.

    Policy: other training data is an error (the model's user and item indices point into that
    data's vocabularies: retrain); another genrec version is a ``UserWarning`` naming both
    versions (the weights are plain arrays and a probe scoring checks their shapes, but a
    model's maths may have changed).

    Raises:
        ArtifactDataError: ``expect_data`` is not the data the model was trained on, or the
            model records no fingerprint to compare.
    """
    from genrec import __version__

    saved_version = meta.get("genrec")
    if saved_version != __version__:
        warnings.warn(
            f"{path} was saved by genrec {saved_version or 'of an unknown version'} "
            f"and is loaded by genrec {__version__}; if its results differ, retrain it",
            UserWarning,
            stacklevel=3,
        )
    if expect_data is not None:
        _check_data(meta, expect_data, path)


def _saved_fingerprint(meta: Mapping[str, Any]) -> dict[str, str] | None:
    if isinstance(meta.get("data"), dict):
        return meta["data"]
    if meta.get("data_checksum"):  # saves before the fingerprint had its own entry
        return {"dataset": meta.get("dataset"), "checksum": meta["data_checksum"]}
    return None


def _check_data(meta: Mapping[str, Any], data: Dataset | str, path) -> None:
    saved = _saved_fingerprint(meta)
    given = data_fingerprint(data) if isinstance(data, Dataset) else {"checksum": str(data)}
    shown = f"{given['dataset']}, " if "dataset" in given else ""
    if saved is None:
        raise ArtifactDataError(
            f"{path} records no fingerprint of its training data, so it cannot "
            "be checked against the data given; retrain the model"
        )
    if saved.get("checksum") != given["checksum"]:
        raise ArtifactDataError(
            f"the model at {path} was trained on different data ({saved.get('dataset')}, checksum "
            f"{str(saved.get('checksum'))[:12]}) than the data given ({shown}checksum "
            f"{given['checksum'][:12]}); its user and item indices would not match: retrain it "
            "on this data"
        )
