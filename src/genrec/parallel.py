"""Ray for genrec: one session, benchmark grids as parallel tasks, batch scoring across workers.

Ray is optional (the ``scale`` extra) and imported only inside these functions. Each function
puts its large input in Ray's object store once (``ray.put``: the split of a grid, the model of
a scoring job) and passes the reference to every task, so workers on one machine read it from
shared memory and remote workers fetch it once; results come back in the order of the inputs,
so a parallel run returns what the sequential run returns.

* :func:`ray_session` — ``ray.init`` for ``"local"`` or a cluster address (``"ray://host:10001"``
  or ``"auto"``), or the session already running in the process;
* :func:`run_models` — fit and evaluate several models on one split, one task each (what
  ``genrec run FILE --ray ADDRESS`` does with an experiment's models and sweep points);
* :func:`recommend_users` — top-k lists for many histories, scored in chunks by several tasks.

Example (not run here: Ray start-up takes seconds)::

    with ray_session("local", num_cpus=2):
        items, scores = recommend_users(model, split.history("test").user_items, k=10)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from genrec.errors import ConfigError, MissingExtraError
from genrec.options import RunOptions

INSTALL = "pip install 'genrec[scale]'"


def import_ray():
    """The ``ray`` module, or MissingExtraError naming the install command."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(f"Ray is not installed; {INSTALL}") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str = "local", *, num_cpus: int | None = None) -> Iterator[Any]:
    """A running Ray session for the block: the one already initialised in this process (left
    running), or a new one shut down afterwards.

    Args:
        address: ``"local"`` (start Ray on this machine) or a cluster address passed to
            ``ray.init`` unchanged (``"auto"``, ``"ray://head:10001"``).
        num_cpus: CPUs a local session may use (default: all); ignored for a cluster.
    """
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(
            f"the Ray address must be 'local' or a cluster address such as "
            f"ray://head:10001, got {address!r}"
        )
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    local = address.strip().lower() == "local"
    try:
        if local:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot connect to Ray at {address!r} ({first}); start a cluster with "
            "`ray start --head` and give its address, or use --ray local"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def run_models(
    split,
    models: Mapping[str, Any],
    *,
    ks: Sequence[int],
    options: RunOptions,
    model_options: Mapping[str, RunOptions] | None = None,
    users: Sequence[int] | None = None,
) -> list:
    """Fit and evaluate each unfitted model of ``models`` (label -> model) on ``split`` as one
    Ray task each, the split put in the object store once.

    Returns the :class:`~genrec.evaluation.runner.ModelRun` list in the order of ``models``:
    with the same pinned thread count the metrics equal those of the sequential
    :func:`~genrec.evaluation.runner.run_benchmark` (only wall times and memory differ).
    Needs a running session (:func:`ray_session`).
    """
    ray = import_ray()
    options = options.pinned()
    task = ray.remote(num_cpus=options.threads)(_run_model)
    split_ref = ray.put(split)
    refs = [
        task.remote(
            label,
            model,
            split_ref,
            ks=tuple(ks),
            options=options,
            run_options=(model_options or {}).get(label),
            users=users,
        )
        for label, model in models.items()
    ]
    return ray.get(refs)


def _run_model(label, model, split, **kwargs):
    from genrec.evaluation.runner import run_model

    return run_model(label, model, split, **kwargs)


def recommend_users(
    model,
    histories: sp.spmatrix,
    *,
    users: np.ndarray | None = None,
    k: int = 10,
    chunk_size: int = 1024,
    exclude_seen: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``model.recommend`` for every row of ``histories``, in chunks of ``chunk_size`` rows
    scored by Ray tasks, the fitted model put in the object store once.

    Args:
        model: a fitted Recommender.
        histories: (U, n_items) CSR histories; users: (U,) their training user indices or None.
        k, exclude_seen: as in :meth:`~genrec.models.base.Recommender.recommend`.
        chunk_size: rows per task.

    Returns:
        ``(items, scores)``, both (U, k), rows in the order of ``histories``: equal to one
        ``model.recommend(histories, users=users, k=k)`` call.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive number of rows, got {chunk_size!r}")
    histories = sp.csr_matrix(histories)
    if users is not None and len(users) != histories.shape[0]:
        raise ConfigError(
            f"users has {len(users)} entries for {histories.shape[0]} histories; give one "
            "user index per history row (or none)"
        )
    model._require_fitted()
    ray = import_ray()
    task = ray.remote(num_cpus=1)(_recommend_chunk)
    model_ref = ray.put(model)
    refs = [
        task.remote(
            model_ref,
            histories[lo : lo + chunk_size],
            None if users is None else np.asarray(users)[lo : lo + chunk_size],
            k=k,
            exclude_seen=exclude_seen,
        )
        for lo in range(0, histories.shape[0], chunk_size)
    ]
    parts = ray.get(refs)
    if not parts:
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _recommend_chunk(model, histories, users, *, k, exclude_seen):
    from genrec.options import torch_threads

    histories = histories.copy()  # arrays from the object store are read-only; scoring tidies them
    with torch_threads(1):
        return model.recommend(histories, users=users, k=k, exclude_seen=exclude_seen)


__all__ = ["import_ray", "ray_session", "recommend_users", "run_models"]
