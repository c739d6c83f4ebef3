"""Benchmark runner: one split, several models, the same protocol, intervals and paired tests.

``run_benchmark`` fits each model on ``split.train`` (early-stopping on ``split.valid`` where the
model supports it), evaluates it on ``split.test`` with :func:`evaluate_split`, and keeps the
per-user arrays so that every aggregate carries a bootstrap interval and every model is compared
with the best one by paired tests (Holm-corrected). ``BenchmarkResult.to_dict`` is the
``results.json`` format documented in the README. Its protocol block also accounts for the test
interactions (:func:`~genrec.data.splits.target_counts`): how many were dropped as unknown by
the split, how many as already seen in the history (repeated (user, item) pairs), and how many
targets were left.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import platform
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrec.data.dataset import Dataset, Split
from genrec.data.splits import target_counts
from genrec.errors import DataError
from genrec.evaluation.protocol import (
    DEFAULT_METRICS,
    HIGHER_IS_BETTER,
    Evaluation,
    evaluate_split,
)
from genrec.evaluation.stats import bootstrap_ci, compare_with_best
from genrec.io import atomic_write
from genrec.options import RunOptions


@dataclass
class ModelRun:
    """One model's fit and test evaluation (``history``: the fit's validation values per epoch,
    ``[{"epoch", "ndcg@10"}]``, empty for models without epochs)."""

    model: str
    config: dict
    evaluation: Evaluation
    fit_seconds: float
    peak_rss_mb: float
    extra: dict = field(default_factory=dict)
    history: list = field(default_factory=list)


@dataclass
class BenchmarkResult:
    """Runs of several models under one protocol, with intervals and comparisons.

    ``users``: the (U,) sorted user indices every run was restricted to (a sample), or None
    when all test users were evaluated.
    """

    protocol: dict
    runs: list[ModelRun]
    versions: dict
    n_resamples: int = 1000
    users: np.ndarray | None = None

    def summary(self, name: str, run: ModelRun) -> dict:
        """``{"mean", "ci_low", "ci_high"}`` of one metric of one run."""
        ev = run.evaluation
        if name in ev.per_user:
            low, high = bootstrap_ci(
                ev.per_user[name], n_resamples=self.n_resamples, seed=self.protocol.get("seed", 0)
            )
            return {"mean": ev.mean(name), "ci_low": low, "ci_high": high}
        # Corpus-level set statistics (coverage, Gini) are not means over users: a bootstrap
        # over users shrinks the set and biases them, so they carry no interval.
        return {"mean": ev.corpus[name], "ci_low": None, "ci_high": None}

    def metric_names(self) -> list[str]:
        """The metrics reported: per-user ones defined for some user of every run, then the
        corpus-level ones."""
        ev = self.runs[0].evaluation
        return [n for n in ev.per_user if n not in self.undefined_metrics()] + list(ev.corpus)

    def undefined_metrics(self) -> list[str]:
        """Per-user metrics with no value for any user of some run (e.g. AUC when every user has
        seen every item but the targets): left out of the results, named in the protocol."""
        return [
            n
            for n in self.runs[0].evaluation.per_user
            if any(np.isnan(r.evaluation.per_user[n]).all() for r in self.runs)
        ]

    def comparisons(self) -> dict[str, dict[str, dict]]:
        """metric -> model -> paired test against the best model on that metric."""
        if len(self.runs) < 2:
            return {}
        out = {}
        undefined = self.undefined_metrics()
        for name in self.runs[0].evaluation.per_user:
            if name.split("@")[0] not in HIGHER_IS_BETTER or name in undefined:
                continue
            out[name] = compare_with_best(
                {r.model: _aligned(r, self.runs[0]).per_user[name] for r in self.runs}
            )
        return out

    def to_dict(self) -> dict:
        comparisons = self.comparisons()
        results = []
        for run in self.runs:
            metrics = {name: self.summary(name, run) for name in self.metric_names()}
            results.append(
                {
                    "model": run.model,
                    "config": run.config,
                    "metrics": metrics,
                    "significance": {m: comparisons[m][run.model] for m in comparisons},
                    "fit_seconds": run.fit_seconds,
                    "score_seconds": run.evaluation.score_seconds,
                    "peak_rss_mb": run.peak_rss_mb,
                    "evaluated_users": len(run.evaluation.users),
                    **run.extra,
                }
            )
        protocol = dict(self.protocol)
        if self.undefined_metrics():
            protocol["undefined_metrics"] = self.undefined_metrics()
        return {"protocol": protocol, "results": results, "versions": self.versions}

    def save_rankings(self, path: str | Path, split: Split) -> list[Path]:
        """Write each model's top-K lists (``user,rank,item,score``, external ids, rank from 1)
        and the held-out test items (``user,item``) beside them. One model: ``path`` itself;
        several: ``<stem>.<model>.csv``. The test items go to ``<stem>.test.csv``: those of the
        sampled users only when the runs were restricted to a sample (:attr:`users`)."""
        path = Path(path)
        written = []
        for run in self.runs:
            target = path if len(self.runs) == 1 else path.with_name(f"{path.stem}.{run.model}.csv")
            _write_rankings(target, run.evaluation, split)
            written.append(target)
        test_path = path.with_name(f"{path.stem}.test.csv")
        test = split.test
        rows = (
            np.arange(len(test))
            if self.users is None
            else np.flatnonzero(np.isin(test.user_idx, self.users))
        )
        atomic_write(
            test_path,
            lambda f: _write_csv(
                f,
                ["user", "item"],
                zip(test.users.ids[test.user_idx[rows]], test.items.ids[test.item_idx[rows]]),
            ),
        )
        return written + [test_path]


def protocol_block(
    data: Dataset,
    split: Split,
    *,
    split_name: str | None = None,
    seed: int | None = None,
    split_seed: int | None = None,
    training_seed: int | None = None,
    filtering: Mapping | None = None,
    **extra,
) -> dict:
    """The ``protocol`` block of results.json that :func:`run_benchmark` completes (it adds
    ``k``, ``n_items``, ``threads``, ``device`` (where the neural models ran), ``targets`` and
    ``seed`` when missing).

    Args:
        data: the dataset the split came from (its name and content checksum are recorded).
        split: the split; its ``info`` is recorded as ``split_info``.
        split_name: the split's name (default: ``split.info["method"]``).
        seed: ``protocol["seed"]``, the run's seed; it also seeds the bootstrap intervals.
            Default: the split's own seed, or none for a deterministic split (then
            :func:`run_benchmark` records the training seed).
        split_seed: the split's seed, recorded as ``split_seed`` when given (for runs whose
            ``seed`` is the training seed).
        training_seed: the training seed, recorded as ``training_seed`` when given.
        filtering: the filters applied to ``data`` before splitting (default: none).
        extra: further entries recorded as given (e.g. ``model_seeds``, ``experiment``).

    Example:
        >>> from genrec.data.synthetic import planted_clusters
        >>> world = planted_clusters(n_users=8, n_items=12, n_clusters=2)
        >>> block = protocol_block(world.data, world.split, training_seed=42)
        >>> block["split"], block["training_seed"], block["full_ranking"]
        ('planted-clusters', 42, True)
    """
    block = {
        "dataset": data.name,
        "checksum": data.checksum(),
        "split": split_name or split.info.get("method", "split"),
        "split_info": split.info,
        "filtering": dict(filtering or {}),
        "full_ranking": True,
        "exclude_seen": True,
    }
    seed = split.info.get("seed") if seed is None else seed
    if seed is not None:
        block["seed"] = seed
    if split_seed is not None:
        block["split_seed"] = split_seed
    if training_seed is not None:
        block["training_seed"] = training_seed
    return {**block, **extra}


def run_benchmark(
    split: Split,
    models: Mapping[str, Callable[[], object]],
    *,
    protocol: dict,
    ks: Sequence[int] = (10, 20),
    options: RunOptions | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    on_model: Callable[[str, str], None] | None = None,
    on_fitted: Callable[[str, object], None] | None = None,
    users: Sequence[int] | None = None,
    model_options: Mapping[str, RunOptions] | None = None,
) -> BenchmarkResult:
    """Fit and evaluate each model. ``models`` maps a name to a factory returning an unfitted
    model; ``on_model(name, stage)`` reports progress ("fit", "evaluate", "done");
    ``on_fitted(name, model)`` receives each fitted model (e.g. to reuse it afterwards);
    ``users`` evaluates only these user indices (the same for every model, so paired tests hold);
    ``model_options`` gives some models their own run options (e.g. training seeds)."""
    options = (options or RunOptions()).pinned()  # every fit uses, and protocol records, one count
    runs = [
        run_model(
            name,
            factory(),
            split,
            ks=ks,
            metrics=metrics,
            options=options,
            run_options=(model_options or {}).get(name),
            users=users,
            on_model=on_model,
            on_fitted=on_fitted,
        )
        for name, factory in models.items()
    ]
    return collect_runs(split, runs, protocol=protocol, ks=ks, options=options, users=users)


def run_model(
    name: str,
    model,
    split: Split,
    *,
    ks: Sequence[int],
    options: RunOptions,
    metrics: Sequence[str] = DEFAULT_METRICS,
    run_options: RunOptions | None = None,
    users: Sequence[int] | None = None,
    on_model: Callable[[str, str], None] | None = None,
    on_fitted: Callable[[str, object], None] | None = None,
) -> ModelRun:
    """Fit one unfitted ``model`` on ``split.train`` (early stopping on ``split.valid``) with
    ``run_options`` (default ``options``) and evaluate it on ``split.test`` on ``options``'
    threads: one step of :func:`run_benchmark`, also run by Ray workers."""
    options = options.pinned()
    run_options = run_options or options
    if run_options.threads is None:  # the run's one (recorded) thread count
        run_options = dataclasses.replace(run_options, threads=options.threads)
    with PeakRSS() as peak:
        if on_model:
            on_model(name, "fit")
        start = time.perf_counter()
        model.fit(split.train, valid=split.valid, options=run_options)
        fit_seconds = time.perf_counter() - start
        if on_fitted:
            on_fitted(name, model)
        if on_model:
            on_model(name, "evaluate")
        with options.capped_threads():  # scoring runs on the options' threads, as fit does
            evaluation = evaluate_split(
                model,
                split,
                "test",
                ks=ks,
                metrics=metrics,
                progress=options.progress,
                users=users,
            )
    extra = {
        k: getattr(model, k + "_") for k in ("best_epoch", "epochs_run") if hasattr(model, k + "_")
    }
    if on_model:
        on_model(name, "done")
    history = list(getattr(model, "history_", []))
    return ModelRun(name, model.config.to_dict(), evaluation, fit_seconds, peak.mb, extra, history)


def collect_runs(
    split: Split,
    runs: Sequence[ModelRun],
    *,
    protocol: dict,
    ks: Sequence[int],
    options: RunOptions,
    users: Sequence[int] | None = None,
) -> BenchmarkResult:
    """The :class:`BenchmarkResult` of finished ``runs`` (in their order) on ``split``, with the
    protocol block completed (k, seed, n_items, threads, device, precision, test targets)."""
    protocol = {
        **protocol,
        "k": list(ks),
        "seed": protocol.get("seed", options.seed),
        "n_items": split.train.n_items,
        "threads": options.threads,
        "device": protocol.get("device", options.device),
        "precision": protocol.get("precision", options.precision),
        "targets": target_counts(split, "test"),
    }
    sample = None if users is None else np.unique(np.asarray(users, np.int64))
    return BenchmarkResult(protocol, list(runs), library_versions(), users=sample)


def library_versions() -> dict:
    import scipy
    import torch

    from genrec import __version__

    return {
        "genrec": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        # the vector kernels torch dispatched to: float results differ between them
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # the GPU torch sees (None: none); where the models ran is protocol["device"]
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# ---- helpers ---------------------------------------------------------------------------------
def _aligned(run: ModelRun, reference: ModelRun) -> Evaluation:
    if not np.array_equal(run.evaluation.users, reference.evaluation.users):
        raise DataError(
            "models were evaluated on different users; paired tests need the same users"
        )
    return run.evaluation


def _write_rankings(path: Path, ev: Evaluation, split: Split) -> None:
    users, items = split.train.users.ids, split.train.items.ids
    k = ev.top_items.shape[1]
    valid = ev.top_items >= 0
    rows = np.broadcast_to(ev.users[:, None], ev.top_items.shape)[valid]
    ranks = np.broadcast_to(np.arange(1, k + 1), ev.top_items.shape)[valid]
    atomic_write(
        path,
        lambda f: _write_csv(
            f,
            ["user", "rank", "item", "score"],
            zip(
                users[rows],
                ranks,
                items[ev.top_items[valid]],
                np.char.mod("%.6g", ev.top_scores[valid]),
            ),
        ),
    )


def _write_csv(binary_file, header, rows) -> None:
    text = io.TextIOWrapper(binary_file, encoding="utf-8", newline="")
    w = csv.writer(text)
    w.writerow(header)
    w.writerows(rows)
    text.flush()
    text.detach()


class PeakRSS:
    """Samples the process's resident memory every 20 ms; ``mb`` is the peak seen."""

    def __enter__(self):
        self.mb = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.mb = max(self.mb, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.mb = round(max(self.mb, _rss_mb()), 1)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
