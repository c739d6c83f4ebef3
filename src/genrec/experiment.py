"""Experiments as files: dataset, filters, split, models with their configs and seeds, cut-offs,
user sample and outputs in one TOML file that ``genrec run FILE`` executes.

``genrec benchmark`` builds the same :class:`Experiment` from its flags, so a command line and a
file run through one path (:func:`run_experiment`), and ``results.json`` records the
experiment's content hash (``protocol.experiment.sha256``: the same for a file and for the
flags that say the same thing).

A file (every key but ``[[models]]`` optional; unknown keys are an error)::

    name = "readme"
    dataset = "ml-100k"          # a source name or a folder of files
    engine = "auto"              # auto | duckdb | pandas: how a Parquet or MovieLens folder is
                                 # read (genrec.data.sources.load_dataset); not in the hash
    split = "holdout"            # holdout | loo | temporal | cold-users | cold-items
    split_seed = 2020            # seed of the split
    seed = 2020                  # training seed of every model without its own
    # device = "auto"            # cpu | cuda | cuda:N | mps | auto; --device overrides it
    k = [10, 20]
    # users = 200                # evaluate a seeded sample of test users (slow models)

    [filters]                    # min_rating, k_core, dedup
    min_rating = 4

    [outputs]                    # paths relative to the working directory
    results = "reports/results.json"
    report = "reports/ml-100k-holdout"   # -> .md and .html
    rankings = "reports/rankings.csv"

    [[models]]
    name = "ease"                # a model spec: "multvae:paper", "ease+llm", ...
    config = { reg = 250.0 }
    seed = 42                    # this model's training seed

    [[models]]                   # a sweep: one run per value, labelled ease[reg=100], ...
    name = "ease"
    sweep = { reg = [100.0, 250.0, 500.0] }

    [search]                     # what `genrec search FILE` explores (genrec.search); `run`
    ease.reg = { low = 10.0, high = 2000.0, log = true }   # ignores it

``genrec run FILE --ray ADDRESS`` fits the models and sweep points as parallel Ray tasks
(:func:`genrec.parallel.run_models`) with the same results as the sequential run; ``track``
logs every run's parameters, validation history and test metrics (:mod:`genrec.tracking`).

Example:
    >>> exp = Experiment.from_dict({"name": "tiny", "models": [
    ...     {"name": "ease", "sweep": {"reg": [10.0, 100.0]}}, {"name": "pop"}]})
    >>> [m.label for m in exp.models]
    ['ease[reg=10.0]', 'ease[reg=100.0]', 'pop']
    >>> len(exp.sha256())
    64
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genrec.build import build_model, parse_names
from genrec.errors import ConfigError
from genrec.io import atomic_write, check_writable, json_default
from genrec.options import RunOptions, check_device, resolve_device

SPLITS = ("holdout", "loo", "temporal", "cold-users", "cold-items")


@dataclass(frozen=True)
class ModelEntry:
    """One model of an experiment: its label in the results, spec, config and training seed."""

    label: str
    spec: str
    config: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None  # None: the experiment's seed


@dataclass(frozen=True)
class Experiment:
    """What one benchmark run does, from data to outputs (see the module docstring)."""

    name: str
    models: tuple[ModelEntry, ...]
    dataset: str = "ml-100k"
    split: str = "holdout"
    split_seed: int = 2020
    seed: int = 2020
    k: tuple[int, ...] = (10, 20)
    users: int | None = None
    filters: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    engine: str = "auto"
    search: Mapping[str, Any] = field(default_factory=dict)  # read by genrec.search
    device: str | None = None  # where neural models run; None: the CLI's --device, else cpu

    def __post_init__(self):
        if not self.models:
            raise ConfigError(f"experiment {self.name!r} has no models; add a [[models]] table")
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ConfigError(
                f"experiment {self.name!r} runs a label twice ({labels}); give "
                "repeated models distinct `label`s"
            )
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if not self.k or any(not _is_int(k) or k < 1 for k in self.k):
            raise ConfigError(f"k must be a list of positive integers, got {list(self.k)}")
        if self.users is not None and (not _is_int(self.users) or self.users < 1):
            raise ConfigError(f"users must be a positive number of test users, got {self.users!r}")
        for key in ("split_seed", "seed"):
            if not _is_int(getattr(self, key)):
                raise ConfigError(f"{key} must be an integer, got {getattr(self, key)!r}")
        _check_keys("[filters]", self.filters, FILTERS)
        _check_keys("[outputs]", self.outputs, OUTPUTS)
        from genrec.data.scan import ENGINES

        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not isinstance(self.search, Mapping):
            raise ConfigError(f"[search] must be a table, got {self.search!r}")
        if self.device is not None:
            check_device(self.device)

    # ---- reading -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Experiment:
        """An experiment from the parsed TOML table; ConfigError naming any unknown key."""
        values = dict(values)
        allowed = [f.name for f in dataclasses.fields(cls)]
        _check_keys("the experiment", values, allowed)
        models = values.pop("models", None)
        if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
            raise ConfigError("an experiment needs [[models]] tables, each with a `name`")
        values["models"] = tuple(e for m in models for e in _model_entries(m))
        if "k" in values:
            values["k"] = tuple(values["k"]) if isinstance(values["k"], list) else (values["k"],)
        values.setdefault("name", "experiment")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Experiment:
        """Read a TOML experiment file (ConfigError with the line of a syntax error)."""
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no experiment file at {path}; see the experiments/ folder")
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text") from None
        values.setdefault("name", path.stem)
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def sha256(self) -> str:
        """Hash of what the experiment does (outputs, description, the search space, the
        engine, which reads the same data either way, and the device, which says where it runs
        as the thread count does, excluded)."""
        skip = ("outputs", "description", "name", "engine", "search", "device")
        content = {k: v for k, v in self.to_dict().items() if k not in skip}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


FILTERS = ("min_rating", "k_core", "dedup")
OUTPUTS = ("results", "report", "rankings")
ENTRY_KEYS = ("name", "label", "config", "seed", "sweep")


def _model_entries(table: Mapping[str, Any]) -> list[ModelEntry]:
    """One entry, or one per combination of a ``sweep`` table's values."""
    _check_keys("a [[models]] table", table, ENTRY_KEYS)
    spec = table.get("name")
    if not isinstance(spec, str):
        raise ConfigError(f'a [[models]] table needs `name = "MODEL"`, got {table}')
    spec = parse_names(spec, what="[[models]] name")[0]
    config, sweep = dict(table.get("config", {})), dict(table.get("sweep", {}))
    if not sweep:
        return [ModelEntry(table.get("label", spec), spec, config, table.get("seed"))]
    bad = [k for k, v in sweep.items() if not isinstance(v, list) or not v]
    if bad:
        raise ConfigError(
            f"sweep values must be non-empty lists, e.g. reg = [100.0, 250.0]; got {bad} in {spec}"
        )
    entries = []
    for values in itertools.product(*sweep.values()):
        point = dict(zip(sweep, values))
        tag = ",".join(f"{k}={v}" for k, v in point.items())
        entries.append(
            ModelEntry(
                f"{table.get('label', spec)}[{tag}]", spec, {**config, **point}, table.get("seed")
            )
        )
    return entries


def _check_keys(where: str, values: Mapping[str, Any], allowed) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; allowed: {', '.join(allowed)}")


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


# ---- running ---------------------------------------------------------------------------------
@dataclass
class ExperimentRun:
    """A finished experiment: the ``results.json`` dictionary, the split and the raw result."""

    results: dict
    split: Any
    result: Any


def run_experiment(
    exp: Experiment,
    *,
    cache_dir: str | os.PathLike,
    threads: int | None = None,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = True,
    say: Callable[[str], None] = lambda message: None,
    ray: str | None = None,
    tracker=None,
) -> ExperimentRun:
    """Load, filter and split the data, fit and evaluate every model, write the outputs.

    Every model is built (and its config checked), the device checked and every output path
    checked before any data is loaded, so a typo fails in a second rather than after training.
    ``device`` (default: the experiment's ``device``, else ``"cpu"``) is resolved once and
    recorded in ``protocol.device``; ``precision`` is ``RunOptions.precision``. ``ray``
    (``"local"`` or a cluster address) runs the models as parallel Ray tasks; ``tracker``
    (:func:`genrec.tracking.open_tracker`) logs each model's run.
    """
    from genrec.data.splits import describe_split, make_split
    from genrec.evaluation.runner import collect_runs, protocol_block

    models = {m.label: build_model(m.spec, m.config) for m in exp.models}
    device = resolve_device(device or exp.device or "cpu")
    for key, path in exp.outputs.items():
        check_writable(
            _report_path(Path(path), ".md") if key == "report" else Path(path),
            what=f"outputs.{key}",
        )
    data, filtering = load_data(exp, cache_dir=cache_dir, progress=progress)
    if max(exp.k) > data.n_items:
        raise ConfigError(
            f"k {max(exp.k)} is larger than the {data.n_items} items of {data.name}; "
            f"use values in 1..{data.n_items}"
        )
    split = make_split(data, exp.split, seed=exp.split_seed)
    say(describe_split(split))
    users = sample_test_users(split, exp.users, exp.split_seed)
    run_options = RunOptions(
        seed=exp.seed, threads=threads, progress=progress, device=device, precision=precision
    ).pinned()
    say(
        f"seed {exp.seed}, {run_options.threads} thread(s) on {device}: the same seeds and "
        "thread count give the same numbers"
    )
    options = {
        m.label: RunOptions(
            seed=exp.seed if m.seed is None else m.seed,
            threads=run_options.threads,
            progress=progress,
            device=device,
            precision=precision,
        )
        for m in exp.models
    }
    protocol = protocol_block(
        data,
        split,
        split_name=exp.split,
        seed=exp.seed,
        split_seed=exp.split_seed,
        filtering=filtering,
        model_seeds={label: o.seed for label, o in options.items()},
        experiment={"name": exp.name, "sha256": exp.sha256()},
    )
    runs = _fit_and_evaluate(
        models,
        split,
        exp,
        options=run_options,
        model_options=options,
        users=users,
        ray=ray,
        say=say,
    )
    result = collect_runs(
        split, runs, protocol=protocol, ks=exp.k, options=run_options, users=users
    )
    results = result.to_dict()
    results["protocol"]["evaluated_users"] = len(result.runs[0].evaluation.users)
    write_outputs(exp, results, result, split, say=say)
    if tracker is not None:
        for run, entry in zip(result.runs, results["results"]):
            tracker.log_run(
                f"{exp.name}/{run.model}",
                params={**run.config, "seed": options[run.model].seed},
                history=run.history,
                metrics={name: m["mean"] for name, m in entry["metrics"].items()},
            )
    return ExperimentRun(results, split, result)


def _fit_and_evaluate(models, split, exp, *, options, model_options, users, ray, say) -> list:
    """Each model's :class:`~genrec.evaluation.runner.ModelRun`, in order: one after another, or
    as Ray tasks (``ray``: ``"local"`` or a cluster address) with the same results."""
    from genrec.evaluation.runner import run_model

    if ray is not None:
        from genrec.parallel import ray_session, run_models

        say(f"running {len(models)} model(s) as Ray tasks ({ray})")
        with ray_session(ray):
            return run_models(
                split, models, ks=exp.k, options=options, model_options=model_options, users=users
            )
    return [
        run_model(
            label,
            model,
            split,
            ks=exp.k,
            options=options,
            run_options=model_options[label],
            users=users,
            on_model=lambda name, stage: say(f"[{name}] {stage}"),
        )
        for label, model in models.items()
    ]


def load_data(exp: Experiment, *, cache_dir, progress: bool = True):
    """(Dataset, the filters applied) for the experiment's dataset: a source name or a folder
    (see :func:`genrec.data.sources.load_dataset`)."""
    from genrec.data.sources import load_dataset

    f = exp.filters
    return load_dataset(
        exp.dataset,
        cache_dir=cache_dir,
        min_rating=f.get("min_rating"),
        dedup=bool(f.get("dedup")),
        k_core=f.get("k_core"),
        progress=progress,
        engine=exp.engine,
    )


def sample_test_users(split, n: int | None, seed: int) -> np.ndarray | None:
    """``n`` test users drawn with ``seed``, sorted (None: all, also when ``n`` covers them)."""
    if n is None:
        return None
    candidates = np.flatnonzero(split.test.user_counts > 0)
    if n >= len(candidates):
        return None
    return np.sort(np.random.default_rng(seed).choice(candidates, n, replace=False))


def write_outputs(
    exp: Experiment,
    results: dict,
    result,
    split,
    *,
    say: Callable[[str], None] = lambda message: None,
) -> None:
    """results.json, the Markdown + HTML report and the ranked lists the experiment asks for."""
    from genrec.evaluation import report

    out = exp.outputs
    if out.get("results"):
        atomic_write(out["results"], json.dumps(results, indent=2, default=json_default))
        say(f"wrote {out['results']}")
    if out.get("rankings"):
        for path in result.save_rankings(out["rankings"], split):
            say(f"wrote {path}")
    if out.get("report"):
        title = f"genrec benchmark: {results['protocol']['dataset']}, {exp.split} split"
        md, page = (
            _report_path(Path(out["report"]), ".md"),
            _report_path(Path(out["report"]), ".html"),
        )
        atomic_write(md, report.to_markdown(results, title=title))
        atomic_write(page, report.to_html(results, title=title))
        say(f"wrote {md} and {page}")


def _report_path(report: Path, suffix: str) -> Path:
    """``report x`` -> x.md / x.html (a given .md or .html suffix is replaced, others kept)."""
    base = report.with_suffix("") if report.suffix in (".md", ".html") else report
    return base.with_name(base.name + suffix)


__all__ = [
    "Experiment",
    "ExperimentRun",
    "ModelEntry",
    "load_data",
    "run_experiment",
    "sample_test_users",
    "write_outputs",
]
