"""Experiment tracking: each run's parameters, validation history and final metrics, logged to
MLflow (a local store in a folder) or TensorBoard through one interface.

``--track mlflow:DIR`` / ``--track tensorboard:DIR`` on ``genrec run``, ``genrec benchmark`` and
``genrec search`` pick a backend with :func:`open_tracker`; both are optional packages imported
only when chosen (``mlflow-skinny``, ``tensorboard``). A run is logged once it has finished:

* MLflow: one run per model (per trial in a search) in the experiment ``genrec``; parameters
  as params, the validation values as the metric ``valid_ndcg_at_10`` with the epoch as step,
  the final metrics as metrics (``@`` is spelled ``_at_``: MLflow keys allow no ``@``). The
  store is the SQLite file ``DIR/mlflow.db`` (MLflow 3 refuses new plain-file stores), with
  artifacts under ``DIR/artifacts``; read it with
  ``mlflow.MlflowClient(tracking_uri=mlflow_uri(DIR))`` or ``mlflow ui --backend-store-uri
  sqlite:///DIR/mlflow.db``.
* TensorBoard: one sub-folder of DIR per run holding an event file: the parameters as a text
  summary ``params``, ``valid/ndcg@10`` per epoch, ``final/<metric>`` at step 0. View them
  with ``tensorboard --logdir DIR``.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> tracker = open_tracker(f"tensorboard:{folder}")
    >>> tracker.log_run("ease", params={"reg": 300.0}, history=[], metrics={"ndcg@10": 0.4})
    >>> tracker.close()
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from genrec.errors import ConfigError, MissingExtraError

BACKENDS = ("mlflow", "tensorboard")


class Tracker(Protocol):
    """Where finished runs are logged."""

    def log_run(
        self,
        name: str,
        *,
        params: Mapping[str, Any],
        history: Sequence[Mapping[str, float]],
        metrics: Mapping[str, float],
    ) -> None:
        """Log one run: ``params`` (flat name -> value), ``history`` (``[{"epoch", "ndcg@10"}]``
        validation values per epoch, possibly empty) and final ``metrics`` (name -> number)."""

    def close(self) -> None:
        """Flush what was logged."""


def open_tracker(spec: str | None) -> Tracker | None:
    """``"mlflow:DIR"`` or ``"tensorboard:DIR"`` -> a tracker writing under DIR; None -> None.

    Raises:
        ConfigError: another form or backend (the message lists both).
        MissingExtraError: the backend's package is not installed.
    """
    if spec is None:
        return None
    backend, sep, folder = str(spec).partition(":")
    backend = backend.strip().lower()
    if not sep or backend not in BACKENDS or not folder.strip():
        raise ConfigError(
            f"--track expects mlflow:DIR or tensorboard:DIR (a folder to log runs into), "
            f"got {spec!r}"
        )
    path = Path(folder.strip())
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--track folder {path} is a file; give a folder")
    return MLflowTracker(path) if backend == "mlflow" else TensorBoardTracker(path)


class MLflowTracker:
    """Runs in an MLflow file store at ``folder`` (experiment ``genrec``)."""

    EXPERIMENT = "genrec"

    def __init__(self, folder: Path):
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise MissingExtraError("MLflow is not installed; pip install mlflow-skinny") from None
        folder.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=mlflow_uri(folder))
        found = self.client.get_experiment_by_name(self.EXPERIMENT)
        self.experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(
                self.EXPERIMENT, artifact_location=(folder / "artifacts").resolve().as_uri()
            )
        )

    def log_run(self, name, *, params, history, metrics) -> None:
        run_id = self.client.create_run(self.experiment_id, run_name=name).info.run_id
        for key, value in flat_params(params).items():
            self.client.log_param(run_id, mlflow_key(key), value[:6000])
        for point in history:
            self.client.log_metric(
                run_id, "valid_ndcg_at_10", float(point["ndcg@10"]), step=int(point["epoch"])
            )
        for key, value in metrics.items():
            self.client.log_metric(run_id, mlflow_key(key), float(value))
        self.client.set_terminated(run_id)

    def close(self) -> None:
        pass


class TensorBoardTracker:
    """One event-file folder per run under ``folder``."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingExtraError(
                "TensorBoard is not installed; pip install tensorboard"
            ) from None
        self.writer_class, self.folder, self.names = SummaryWriter, folder, set()

    def log_run(self, name, *, params, history, metrics) -> None:
        folder = self.folder / re.sub(r"[^\w.@=,\-\[\]]+", "_", name)
        with self.writer_class(log_dir=str(folder)) as writer:
            writer.add_text("params", json.dumps(flat_params(params), sort_keys=True), 0)
            for point in history:
                writer.add_scalar("valid/ndcg@10", float(point["ndcg@10"]), int(point["epoch"]))
            for key, value in metrics.items():
                writer.add_scalar(f"final/{key}", float(value), 0)

    def close(self) -> None:
        pass


def mlflow_uri(folder: str | Path) -> str:
    """The tracking URI of the MLflow store :class:`MLflowTracker` writes in ``folder``."""
    return f"sqlite:///{(Path(folder) / 'mlflow.db').resolve()}"


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": "1", "c": "[1, 2]"}``."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, default=str)
    return out


def mlflow_key(key: str) -> str:
    """A metric or param name MLflow accepts: ``ndcg@10`` -> ``ndcg_at_10``."""
    return re.sub(r"[^\w./\- ]", "_", key.replace("@", "_at_"))


__all__ = [
    "BACKENDS",
    "MLflowTracker",
    "TensorBoardTracker",
    "Tracker",
    "mlflow_uri",
    "open_tracker",
]
