"""Hyper-parameter search: the [search] syntax, Optuna trials scored on valid only, pruning
through the per-epoch validation hook, resuming from study.db, the best refitted on test."""

import json

import pytest

from genrec.errors import ConfigError
from genrec.experiment import Experiment
from genrec.search import run_search, search_plan, validation_score
from tests.scale.tiny import experiment_file

optuna = pytest.importorskip("optuna")


def _plan(search: dict, models=({"name": "ease"}, {"name": "multvae"})):
    return search_plan(Experiment.from_dict({"models": list(models), "search": search}))


def test_the_syntax_reads_ranges_logs_steps_and_choices():
    settings, spaces = _plan(
        {
            "metric": "recall@20",
            "seed": 7,
            "ease": {"reg": {"low": 10.0, "high": 2000.0, "log": True}},
            "multvae": {
                "dropout": {"low": 0.1, "high": 0.7},
                "latent_dim": {"choices": [32, 64]},
                "batch_size": {"low": 64, "high": 256, "step": 64},
            },
        }
    )
    assert (settings.metric, settings.k, settings.seed) == ("recall@20", 20, 7)
    ease, multvae = spaces
    assert ease.entry.label == "ease" and ease.params[0].log
    dropout, latent, batch = multvae.params
    assert not dropout.is_int and latent.choices == (32, 64) and batch.is_int


@pytest.mark.parametrize(
    ("search", "named"),
    [
        ({"ease": {"l2": {"low": 1.0, "high": 2.0}}}, "ease.l2"),
        ({"ease": {"reg": {"low": 5.0, "high": 1.0}}}, "ease.reg"),
        ({"ease": {"reg": {"low": 0.0, "high": 1.0, "log": True}}}, "low > 0"),
        ({"ease": {"reg": {"low": -5.0, "high": 1.0}}}, "-5.0"),
        ({"ease": {"reg": {"choices": []}}}, "ease.reg"),
        ({"ease": {"reg": {"low": 1.0, "hgh": 2.0}}}, "hgh"),
        ({"ease": {"reg": 300.0}}, "ease.reg"),
        ({"bpr": {"dim": {"choices": [8]}}}, "bpr"),
        ({"metric": "ndcg", "ease": {"reg": {"choices": [1.0]}}}, "ndcg"),
        ({}, "no [search]"),
    ],
)
def test_bad_tables_name_the_bad_key(search, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("+", r"\+")):
        _plan(search)


def test_a_swept_entry_cannot_be_searched():
    models = [{"name": "ease", "sweep": {"reg": [1.0, 2.0]}}]
    with pytest.raises(ConfigError, match="several entries"):
        _plan({"ease": {"reg": {"low": 1.0, "high": 2.0}}}, models)


def test_every_epoch_based_trainer_reports_validation_through_the_options_hook():
    from genrec.data.synthetic import planted_clusters
    from genrec.models import MultVAE
    from genrec.options import RunOptions

    world = planted_clusters(n_users=40, n_items=24)
    seen = []
    options = RunOptions(seed=0, threads=1, on_validation=lambda e, v: seen.append((e, v)))
    model = MultVAE(MultVAE.Config(max_epochs=3, patience=3, latent_dim=8)).fit(
        world.split.train, valid=world.split.valid, options=options
    )
    assert seen == [(h["epoch"], h["ndcg@10"]) for h in model.history_] and len(seen) == 3


SEARCH = """
[[models]]
name = "ease"
[[models]]
name = "multvae"
config = { max_epochs = 5, patience = 5, latent_dim = 8 }
[search]
startup_trials = 1
ease.reg = { low = 0.1, high = 100.0, log = true }
multvae.dropout = { low = 0.1, high = 0.7 }
"""


def test_a_search_scores_on_valid_refits_the_best_on_test_and_resumes(tmp_path, monkeypatch):
    import genrec.evaluation.protocol as protocol
    import genrec.evaluation.runner  # noqa: F401  (binds the unpatched function: the test run)

    parts, original = [], protocol.evaluate_split
    monkeypatch.setattr(
        protocol,
        "evaluate_split",
        lambda model, split, part="test", **kw: (
            parts.append(part) or original(model, split, part, **kw)
        ),
    )
    exp = Experiment.from_file(experiment_file(tmp_path, SEARCH))
    out = tmp_path / "out"
    run = run_search(exp, trials=4, output=out, cache_dir=tmp_path / "cache", threads=1)
    assert set(parts) == {"valid"}  # trials never look at test; the refit's test run is separate
    written = json.loads((out / "search.json").read_text())
    assert written == json.loads(json.dumps(run.results))
    ease, multvae = written["models"]["ease"], written["models"]["multvae"]
    assert ease["n_trials"] == 4 and all(t["state"] == "COMPLETE" for t in ease["trials"])
    assert all(t["epochs_reported"] == 0 for t in ease["trials"])  # no epochs: never pruned
    assert all(set(t) >= {"params", "value", "state", "seconds"} for t in multvae["trials"])
    assert max(t["epochs_reported"] for t in multvae["trials"]) == 5
    best = max((t for t in ease["trials"] if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert ease["best_params"] == best["params"] and ease["best_value"] == best["value"]
    assert [r["model"] for r in written["test"]["results"]] == ["ease[best]", "multvae[best]"]
    assert written["test"]["results"][0]["config"]["reg"] == pytest.approx(best["params"]["reg"])

    # the objective is the validation metric of the entry's config plus the trial's values
    from genrec.data.splits import make_split
    from genrec.experiment import load_data

    settings, spaces = search_plan(exp)
    split = make_split(load_data(exp, cache_dir=tmp_path / "cache")[0], "holdout", seed=2020)
    from genrec.options import RunOptions

    value, _ = validation_score(
        spaces[0], best["params"], split, settings, RunOptions(seed=3, threads=1)
    )
    assert value == pytest.approx(best["value"])

    # the same command resumes the stored study up to the total asked for
    again = run_search(exp, trials=6, output=out, cache_dir=tmp_path / "cache", threads=1)
    numbers = [t["number"] for t in again.results["models"]["ease"]["trials"]]
    assert numbers == list(range(6))
    assert [t["params"] for t in again.results["models"]["ease"]["trials"][:4]] == [
        t["params"] for t in ease["trials"]
    ]


def test_the_same_seed_samples_the_same_trials(tmp_path):
    body = (
        '[[models]]\nname = "ease"\n[search]\nease.reg = { low = 0.1, high = 100.0, log = true }\n'
    )
    exp = Experiment.from_file(experiment_file(tmp_path, body))
    runs = [
        run_search(exp, trials=3, output=tmp_path / f"out{i}", cache_dir=tmp_path / "c", threads=1)
        for i in range(2)
    ]
    first, second = (r.results["models"]["ease"]["trials"] for r in runs)
    assert [t["params"] for t in first] == [t["params"] for t in second]


@pytest.mark.parametrize("name", ["ease", "multvae", "bpr", "itemknn"])
def test_each_shipped_search_file_covers_its_models_defaults(name):
    from pathlib import Path

    from genrec.build import build_model

    path = Path(__file__).resolve().parents[2] / "experiments" / f"search-{name}.toml"
    exp = Experiment.from_file(path)
    _, (space,) = search_plan(exp)
    default = build_model(space.entry.spec, space.entry.config).config
    for param in space.params:  # today's default lies inside the searched space
        value = getattr(default, param.name)
        if param.choices is not None:
            assert value in param.choices, param.name
        else:
            assert param.low <= value <= param.high, param.name


def test_without_the_scale_extra_the_error_names_the_install(monkeypatch):
    import sys

    from genrec.errors import MissingExtraError
    from genrec.parallel import import_ray
    from genrec.search import _import_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.setitem(sys.modules, "ray", None)
    for load in (_import_optuna, import_ray):
        with pytest.raises(MissingExtraError, match=r"pip install 'genrec\[scale\]'"):
            load()
