"""Ray: a benchmark grid as parallel tasks returns the sequential run's results in order, batch
scoring across workers equals local scoring, and a search runs through Ray Tune. One local Ray
session (2 CPUs) is shared by the module: start-up costs seconds."""

import json

import numpy as np
import pytest

from genrec.experiment import Experiment, run_experiment
from tests.scale.tiny import experiment_file

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


GRID = """
[[models]]
name = "pop"
[[models]]
name = "ease"
sweep = { reg = [1.0, 30.0] }
[[models]]
name = "multvae"
config = { max_epochs = 3, patience = 3, latent_dim = 8 }
"""


def test_a_grid_as_ray_tasks_equals_the_sequential_run(tmp_path, ray_local):
    exp = Experiment.from_file(experiment_file(tmp_path, GRID))
    sequential = run_experiment(exp, cache_dir=tmp_path / "c", threads=1, progress=False)
    parallel = run_experiment(exp, cache_dir=tmp_path / "c", threads=1, progress=False, ray="local")
    labels = [r.model for r in sequential.result.runs]
    assert (
        labels
        == [r.model for r in parallel.result.runs]
        == ["pop", "ease[reg=1.0]", "ease[reg=30.0]", "multvae"]
    )
    for seq, par in zip(sequential.result.runs, parallel.result.runs):
        assert seq.evaluation.per_user.keys() == par.evaluation.per_user.keys()
        for name, values in seq.evaluation.per_user.items():
            np.testing.assert_array_equal(values, par.evaluation.per_user[name], err_msg=name)
        np.testing.assert_array_equal(seq.evaluation.top_items, par.evaluation.top_items)
        assert seq.history == par.history
    drop = ("fit_seconds", "score_seconds", "peak_rss_mb")
    strip = lambda res: [{k: v for k, v in r.items() if k not in drop} for r in res["results"]]  # noqa: E731
    assert json.dumps(strip(sequential.results)) == json.dumps(strip(parallel.results))


def test_batch_scoring_across_workers_equals_local_scoring(ray_local):
    from genrec.data.synthetic import planted_clusters
    from genrec.models import EASE
    from genrec.parallel import recommend_users

    world = planted_clusters(n_users=50, n_items=24)
    model = EASE().fit(world.split.train)
    histories = world.split.history("test").user_items
    users = np.arange(histories.shape[0])
    items, scores = recommend_users(model, histories, users=users, k=5, chunk_size=7)
    local_items, local_scores = model.recommend(histories, users=users, k=5)
    np.testing.assert_array_equal(items, local_items)
    np.testing.assert_array_equal(scores, local_scores)


@pytest.mark.slow  # Ray Tune starts an actor per trial: minutes on a loaded 2-core machine
def test_a_search_through_ray_tune_records_its_trials(tmp_path, ray_local):
    from genrec.search import run_search

    body = (
        '[[models]]\nname = "multvae"\nconfig = { max_epochs = 3, patience = 3, latent_dim = 8 }\n'
        "[search]\nmultvae.dropout = { low = 0.1, high = 0.7 }\n"
    )
    exp = Experiment.from_file(experiment_file(tmp_path, body))
    run = run_search(
        exp, trials=2, output=tmp_path / "out", cache_dir=tmp_path / "c", threads=1, ray="local"
    )
    found = run.results["models"]["multvae"]
    assert run.results["engine"] == "ray" and found["n_trials"] == 2
    assert all(
        t["epochs_reported"] >= 1 for t in found["trials"]
    )  # per-epoch values reached Optuna
    assert 0.1 <= found["best_params"]["dropout"] <= 0.7
    assert (tmp_path / "out" / "study.db").is_file()
    assert run.results["test"]["results"][0]["model"] == "multvae[best]"


def test_genrec_run_with_ray_prints_the_sequential_table(tmp_path, ray_local, capsys):
    from genrec.cli import main

    body = '[[models]]\nname = "pop"\n[[models]]\nname = "ease"\nsweep = { reg = [1.0, 30.0] }\n'
    exp = experiment_file(tmp_path, body)
    assert main(["run", str(exp), "--quiet", "--threads", "1"]) == 0
    sequential = capsys.readouterr().out
    assert main(["run", str(exp), "--quiet", "--threads", "1", "--ray", "local"]) == 0
    parallel = capsys.readouterr().out
    strip = lambda table: [line.rsplit(maxsplit=1)[0] for line in table.splitlines()]  # noqa: E731
    assert strip(parallel) == strip(sequential)  # the same table but for the fit seconds
