"""Hyper-parameter search over an experiment file: ``genrec search FILE.toml --trials 50``.

The search space lives in the experiment's ``[search]`` table, one sub-table per searched model
(a ``[[models]]`` label, or a model name used by exactly one entry), one range per config
field; a few plain keys set the search itself::

    [search]
    metric = "ndcg@10"            # validation metric to maximise (default ndcg@10)
    seed = 0                      # seed of the TPE sampler (default 0)
    startup_trials = 5            # trials before the pruner may stop one (default 5)
    multvae.dropout = { low = 0.1, high = 0.7 }              # a float range
    ease.reg = { low = 10.0, high = 2000.0, log = true }     # sampled on a log scale
    bpr.dim = { choices = [32, 64, 128] }                    # one of these values
    bpr.n_negatives = { low = 1, high = 8 }                  # integer bounds: an integer range
    bpr.lr = { low = 1e-3, high = 1e-2, log = true }
    itemknn.k_neighbors = { low = 50, high = 400, step = 50 }

Each trial builds the model from its entry's config plus the trial's values, fits it on the
split's train part (early stopping on valid, as always) and is scored by the metric on the
valid part; the test part is used once, by the best configuration, refitted and evaluated
after the search (:func:`run_search`). Sampling is Optuna's TPE, seeded; a MedianPruner stops
trials whose per-epoch validation NDCG@10 (:attr:`genrec.options.RunOptions.on_validation`,
reported by every epoch-based trainer) falls below the median of earlier trials at the same
epoch; models without epochs are never pruned. The study is stored in ``study.db`` (SQLite)
in the output folder, so running the same command again resumes it up to ``--trials``.
With ``ray`` the trials run through Ray Tune (OptunaSearch with the same sampler and storage,
a median stopping rule for pruning), the split put in the object store once.

Every bad key or range is a ConfigError naming it, e.g. ``[search] ease.l2: ease has no
config field 'l2'; fields: reg, max_items``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genrec.build import build_model, model_class
from genrec.errors import ConfigError, GenrecError, MissingExtraError
from genrec.experiment import Experiment, ModelEntry, load_data
from genrec.io import atomic_write, json_default
from genrec.options import RunOptions

SETTINGS = {"metric": "ndcg@10", "seed": 0, "startup_trials": 5}
RANGE_KEYS = ("low", "high", "log", "step")
INSTALL = "pip install 'genrec[scale]'"


@dataclass(frozen=True)
class Param:
    """One searched config field: a range ``low..high`` (integer when both bounds are integers;
    ``log``: sampled on a log scale; ``step``: a grid) or a list of ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(_is_int(v) for v in (self.low, self.high))

    def suggest(self, trial) -> Any:
        """This field's value for an Optuna trial."""
        if self.choices is not None:
            return json.loads(trial.suggest_categorical(self.name, self.encoded_choices()))
        if self.is_int:
            return trial.suggest_int(
                self.name, self.low, self.high, step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def distribution(self):
        """The Optuna distribution of this field (what Ray Tune's OptunaSearch samples)."""
        import optuna.distributions as d

        if self.choices is not None:
            return d.CategoricalDistribution(self.encoded_choices())
        if self.is_int:
            return d.IntDistribution(self.low, self.high, step=int(self.step or 1), log=self.log)
        return d.FloatDistribution(self.low, self.high, step=self.step, log=self.log)

    def decode(self, value: Any) -> Any:
        """A sampled value as the model config takes it (choices are stored as JSON text)."""
        return json.loads(value) if self.choices is not None else value

    def encoded_choices(self) -> list[str]:
        return [json.dumps(c) for c in self.choices]

    def examples(self) -> list:
        """Values at the edges of the space, built once to check the model accepts them."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


@dataclass(frozen=True)
class SearchSpace:
    """The searched fields of one model entry of an experiment."""

    entry: ModelEntry
    params: tuple[Param, ...]

    def config(self, values: Mapping[str, Any]) -> dict:
        """The entry's config with the sampled ``values`` (already decoded) over it."""
        return {**self.entry.config, **values}


@dataclass(frozen=True)
class SearchSettings:
    metric: str = "ndcg@10"
    seed: int = 0
    startup_trials: int = 5

    @property
    def k(self) -> int:
        return int(self.metric.partition("@")[2])

    @property
    def metric_name(self) -> str:
        return self.metric.partition("@")[0]


# ---- reading the [search] table ------------------------------------------------------------
def search_plan(exp: Experiment) -> tuple[SearchSettings, list[SearchSpace]]:
    """The settings and the per-model spaces of ``exp.search``; ConfigError naming a bad key."""
    table = dict(exp.search)
    if not table:
        raise ConfigError(
            f"experiment {exp.name!r} has no [search] table; add one, e.g. "
            "[search] ease.reg = { low = 10.0, high = 2000.0, log = true }"
        )
    settings = _settings({k: table.pop(k) for k in list(table) if k in SETTINGS})
    spaces = []
    for key, fields in table.items():
        entry = _searched_entry(exp, key)
        if not isinstance(fields, Mapping) or not fields:
            raise ConfigError(
                f"[search] {key} must be a table of config fields with ranges, e.g. "
                f"{key}.FIELD = {{ low = 0.1, high = 0.7 }}; got {fields!r}"
            )
        spaces.append(
            SearchSpace(entry, tuple(_param(key, entry, f, v) for f, v in fields.items()))
        )
    if not spaces:
        raise ConfigError(
            "[search] names no model; add MODEL.FIELD = { low = ..., high = ... } for one of "
            f"{[m.label for m in exp.models]}"
        )
    return settings, spaces


def _settings(values: dict) -> SearchSettings:
    from genrec.evaluation.metrics import RANKING_METRICS

    settings = SearchSettings(**{**SETTINGS, **values})
    name, at, k = str(settings.metric).partition("@")
    if name not in RANKING_METRICS or not at or not k.isdigit() or int(k) < 1:
        raise ConfigError(
            f"[search] metric must be a ranking metric at a cut-off such as ndcg@10 "
            f"(metrics: {', '.join(RANKING_METRICS)}), got {settings.metric!r}"
        )
    for key in ("seed", "startup_trials"):
        value = getattr(settings, key)
        if not _is_int(value) or value < 0:
            raise ConfigError(f"[search] {key} must be a non-negative integer, got {value!r}")
    return settings


def _searched_entry(exp: Experiment, key: str) -> ModelEntry:
    """The one [[models]] entry ``key`` names: its label, or the model name of one entry."""
    by_label = [m for m in exp.models if m.label == key]
    by_name = [m for m in exp.models if m.spec.partition(":")[0] == key.lower()]
    found = by_label or by_name
    if len(found) != 1:
        labels = [m.label for m in exp.models]
        why = "names no [[models]] entry" if not found else "names several entries (a sweep?)"
        raise ConfigError(
            f"[search] {key} {why}; use the label of one entry ({labels}) and give searched "
            "entries no sweep"
        )
    return found[0]


def _param(key: str, entry: ModelEntry, name: str, spec: Any) -> Param:
    where = f"[search] {key}.{name}"
    fields = [f.name for f in dataclasses.fields(model_class(entry.spec).Config)]
    if "+" not in entry.spec and name not in fields:
        raise ConfigError(
            f"{where}: {entry.spec} has no config field {name!r}; fields: {', '.join(fields)}"
        )
    param = _parse_range(where, name, spec)
    for value in param.examples():
        try:
            build_model(entry.spec, {**entry.config, name: value})
        except ConfigError as exc:
            raise ConfigError(f"{where}: the value {value!r} is refused: {exc}") from None
    return param


def _parse_range(where: str, name: str, spec: Any) -> Param:
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where} must be {{ low = A, high = B }} (optional log = true, step = S) or "
            f"{{ choices = [...] }}, got {spec!r}"
        )
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list alone, got {dict(spec)}")
        return Param(name, choices=tuple(choices))
    unknown = sorted(set(spec) - set(RANGE_KEYS))
    if unknown or "low" not in spec or "high" not in spec:
        raise ConfigError(
            f"{where}: a range needs low and high (optional log, step), got keys {sorted(spec)}"
        )
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not all(_is_number(v) for v in (low, high)) or not low < high:
        raise ConfigError(
            f"{where}: low and high must be numbers with low < high, got {low}, {high}"
        )
    if not isinstance(log, bool) or (log and low <= 0):
        raise ConfigError(f"{where}: log must be true or false, and needs low > 0 (low = {low})")
    if step is not None and (not _is_number(step) or step <= 0 or log):
        raise ConfigError(f"{where}: step must be a positive number and cannot go with log")
    if _is_int(low) and _is_int(high) and step is not None and not _is_int(step):
        raise ConfigError(f"{where}: an integer range needs an integer step, got {step}")
    return Param(name, low=low, high=high, log=log, step=step)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and math.isfinite(x)


# ---- one trial ---------------------------------------------------------------------------------
def validation_score(
    space: SearchSpace,
    values: Mapping[str, Any],
    split,
    settings: SearchSettings,
    options: RunOptions,
    *,
    on_validation: Callable[[int, float], None] | None = None,
) -> tuple[float, list]:
    """(the metric on ``split.valid``, the fit's per-epoch validation history) of the entry's
    model with ``values`` over its config. The test part is not touched."""
    from genrec.evaluation.protocol import evaluate_split

    model = build_model(space.entry.spec, space.config(values))
    seed = options.seed if space.entry.seed is None else space.entry.seed
    fit_options = dataclasses.replace(options, seed=seed, on_validation=on_validation)
    model.fit(split.train, valid=split.valid, options=fit_options)
    with options.capped_threads():
        result = evaluate_split(
            model, split, "valid", ks=(settings.k,), metrics=(settings.metric_name,)
        )
    return result.mean(settings.metric), list(getattr(model, "history_", []))


# ---- the search -------------------------------------------------------------------------------
@dataclass
class SearchRun:
    """What :func:`run_search` wrote to ``search.json``: per searched model its trials, best
    values and the best configuration's test results."""

    results: dict
    path: Path


def run_search(
    exp: Experiment,
    *,
    trials: int,
    output: str | Path,
    cache_dir,
    timeout: float | None = None,
    ray: str | None = None,
    threads: int | None = None,
    tracker=None,
    say: Callable[[str], None] = lambda message: None,
) -> SearchRun:
    """Search every model of ``exp.search`` with ``trials`` trials in all (a resumed study counts
    its finished trials), refit the best configuration and evaluate it once on test; write
    ``OUTPUT/search.json`` and ``OUTPUT/study.db``.

    Raises:
        ConfigError: a bad [search] table, trials < 1, timeout <= 0.
        MissingExtraError: optuna (or ray with ``ray``) is not installed.
    """
    from genrec.data.splits import describe_split, make_split

    settings, spaces = search_plan(exp)
    if not _is_int(trials) or trials < 1:
        raise ConfigError(f"--trials must be a positive number of trials, got {trials!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout!r}")
    _import_optuna()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    data, filtering = load_data(exp, cache_dir=cache_dir, progress=False)
    split = make_split(data, exp.split, seed=exp.split_seed)
    say(describe_split(split))
    options = RunOptions(seed=exp.seed, threads=threads, progress=False).pinned()
    found = {}
    for space in spaces:
        study_name = f"{exp.name}/{space.entry.label}"
        search = _ray_search if ray else _local_search
        start = time.perf_counter()
        study = search(
            space,
            split,
            settings,
            options,
            trials=trials,
            timeout=timeout,
            output=output,
            study_name=study_name,
            ray=ray,
            tracker=tracker,
            say=say,
        )
        found[space.entry.label] = _summary(study, space, time.perf_counter() - start)
        say(
            f"[{space.entry.label}] best {settings.metric} {found[space.entry.label]['best_value']}"
        )
    results = {
        "experiment": {"name": exp.name, "sha256": exp.sha256()},
        "metric": settings.metric,
        "sampler": {"name": "TPE", "seed": settings.seed},
        "pruner": {"name": "median", "startup_trials": settings.startup_trials},
        "engine": "ray" if ray else "local",
        "models": found,
        "test": _test_best(exp, split, data, filtering, spaces, found, options),
    }
    path = output / "search.json"
    atomic_write(path, json.dumps(results, indent=2, default=json_default))
    say(f"wrote {path} and {output / 'study.db'}")
    for entry in results["test"]["results"] if tracker is not None else []:
        tracker.log_run(
            f"{exp.name}/{entry['model']}",
            params=entry["config"],
            history=[],
            metrics={name: m["mean"] for name, m in entry["metrics"].items()},
        )
    return SearchRun(results, path)


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise MissingExtraError(f"Optuna is not installed; {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _local_search(
    space, split, settings, options, *, trials, timeout, output, study_name, tracker, say, **_
):
    optuna = _import_optuna()
    study = optuna.create_study(
        study_name=study_name,
        storage=_storage(output),
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials),
    )

    def objective(trial) -> float:
        values = {p.name: p.suggest(trial) for p in space.params}
        history = []

        def report(epoch: int, value: float) -> None:
            history.append({"epoch": epoch, "ndcg@10": value})
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            value, _ = validation_score(
                space, values, split, settings, options, on_validation=report
            )
        finally:
            if tracker is not None:
                tracker.log_run(
                    f"{study_name}/trial-{trial.number}",
                    params=space.config(values),
                    history=history,
                    metrics={},
                )
        say(f"[{space.entry.label}] trial {trial.number}: {values} -> {value:.4f}")
        return value

    remaining = trials - len([t for t in study.trials if t.state.is_finished()])
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(GenrecError,))
    return study


def _ray_search(
    space, split, settings, options, *, trials, timeout, output, study_name, ray, tracker, say
):
    """The trials through Ray Tune: OptunaSearch (the same seeded TPE, the study in the same
    SQLite file) and a median stopping rule on the per-epoch reports."""
    optuna = _import_optuna()
    from genrec.parallel import ray_session

    with ray_session(ray):
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(
            {p.name: p.distribution() for p in space.params},
            metric="value",
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=settings.seed),
            study_name=study_name,
            storage=optuna.storages.RDBStorage(_storage(output)),
        )
        stored = optuna.load_study(study_name=study_name, storage=_storage(output))
        remaining = trials - len([t for t in stored.trials if t.state.is_finished()])
        if remaining > 0:
            tuner = _tuner(
                space, split, settings, options, searcher, remaining, timeout, output, study_name
            )
            with warnings.catch_warnings():  # OptunaSearch re-reports a trial's last epoch
                warnings.filterwarnings("ignore", message="The reported value is ignored")
                grid = tuner.fit()
            for result in grid if tracker is not None else []:
                tracker.log_run(
                    f"{study_name}/ray-{Path(result.path).name}",
                    params=space.config(_decoded(space, result.config)),
                    history=_ray_history(result),
                    metrics={},
                )
        return optuna.load_study(study_name=study_name, storage=_storage(output))


def _tuner(space, split, settings, options, searcher, n_trials, timeout, output, study_name):
    """A Ray Tune Tuner running ``n_trials`` trials of :func:`_tune_trial`, the split put in
    the object store once (``tune.with_parameters``), one trial per ``options.threads`` CPUs."""
    from ray import tune
    from ray.tune.schedulers import MedianStoppingRule

    trainable = tune.with_parameters(
        _tune_trial, space=space, split=split, settings=settings, options=options
    )
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": options.threads}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=MedianStoppingRule(
                time_attr="training_iteration",
                metric="value",
                mode="max",
                grace_period=1,
                min_samples_required=max(1, settings.startup_trials),
            ),
            num_samples=n_trials,
            time_budget_s=timeout,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=study_name.replace("/", "-"),
            storage_path=str((output / "ray").resolve()),
            verbose=0,
        ),
    )


def _storage(output: Path) -> str:
    """The SQLite URL of the study database in ``output``."""
    return f"sqlite:///{(output / 'study.db').resolve()}"


def _tune_trial(config, *, space, split, settings, options):
    """A Ray Tune trainable: per-epoch validation values as intermediate reports, then the
    final validation metric with ``final = 1``."""
    from ray import tune

    def report(epoch: int, value: float) -> None:
        tune.report({"value": value, "epoch": epoch, "final": 0})

    values = _decoded(space, config)
    value, _ = validation_score(space, values, split, settings, options, on_validation=report)
    tune.report({"value": value, "epoch": 0, "final": 1})


def _ray_history(result) -> list[dict]:
    """The per-epoch validation values a Ray Tune trial reported (its rows with final = 0)."""
    frame = result.metrics_dataframe
    if frame is None or "final" not in frame:
        return []
    rows = frame[frame["final"] == 0]
    return [{"epoch": int(e), "ndcg@10": float(v)} for e, v in zip(rows["epoch"], rows["value"])]


def _decoded(space: SearchSpace, config: Mapping[str, Any]) -> dict:
    return {p.name: p.decode(config[p.name]) for p in space.params if p.name in config}


def _summary(study, space: SearchSpace, seconds: float) -> dict:
    """Every trial (number, params, value, state, seconds) and the best of a study."""
    trials = []
    for t in study.trials:
        took = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        trials.append(
            {
                "number": t.number,
                "params": _decoded(space, t.params),
                "value": t.value,
                "state": t.state.name,
                "seconds": took,
                "epochs_reported": len(t.intermediate_values),
            }
        )
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        raise ConfigError(
            f"no trial of {space.entry.label} completed (see the states in the study); check "
            "the ranges, or raise --trials / --timeout"
        )
    best = max(complete, key=lambda t: t.value)
    return {
        "spec": space.entry.spec,
        "trials": trials,
        "n_trials": len(trials),
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": _decoded(space, best.params),
        "best_config": space.config(_decoded(space, best.params)),
        "search_seconds": seconds,
    }


def _test_best(exp, split, data, filtering, spaces, found, options) -> dict:
    """The best configuration of each searched model refitted and evaluated once on test: a
    results.json dictionary."""
    from genrec.evaluation.runner import collect_runs, protocol_block, run_model

    runs = []
    for space in spaces:
        best = found[space.entry.label]
        seed = options.seed if space.entry.seed is None else space.entry.seed
        runs.append(
            run_model(
                f"{space.entry.label}[best]",
                build_model(space.entry.spec, best["best_config"]),
                split,
                ks=exp.k,
                options=options,
                run_options=dataclasses.replace(options, seed=seed),
            )
        )
    protocol = protocol_block(
        data,
        split,
        split_name=exp.split,
        seed=exp.seed,
        split_seed=exp.split_seed,
        filtering=filtering,
        experiment={"name": exp.name, "sha256": exp.sha256()},
    )
    return collect_runs(split, runs, protocol=protocol, ks=exp.k, options=options).to_dict()


__all__ = [
    "Param",
    "SearchRun",
    "SearchSettings",
    "SearchSpace",
    "run_search",
    "search_plan",
    "validation_score",
]
