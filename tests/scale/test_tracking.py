"""Tracking: MLflow and TensorBoard each write runs that their own readers read back, and
`genrec run --track` logs every model's parameters, validation history and test metrics."""

import pytest

from genrec.cli import main
from genrec.errors import ConfigError
from genrec.tracking import mlflow_uri, open_tracker
from tests.scale.tiny import experiment_file

RUN = dict(
    params={"reg": 300.0, "hidden_dims": [600], "nested": {"a": 1}},
    history=[{"epoch": 1, "ndcg@10": 0.1}, {"epoch": 2, "ndcg@10": 0.2}],
    metrics={"ndcg@10": 0.25, "recall@10": 0.5},
)


def test_mlflow_runs_read_back_with_the_mlflow_client(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    tracker = open_tracker(f"mlflow:{tmp_path / 'ml'}")
    tracker.log_run("exp/ease", **RUN)
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri(tmp_path / "ml"))
    experiment = client.get_experiment_by_name("genrec")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "exp/ease" and run.info.status == "FINISHED"
    assert run.data.params == {"reg": "300.0", "hidden_dims": "[600]", "nested.a": "1"}
    assert run.data.metrics == {"ndcg_at_10": 0.25, "recall_at_10": 0.5, "valid_ndcg_at_10": 0.2}
    history = client.get_metric_history(run.info.run_id, "valid_ndcg_at_10")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2)]


def test_tensorboard_event_files_parse_with_the_event_accumulator(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    tracker = open_tracker(f"tensorboard:{tmp_path / 'tb'}")
    tracker.log_run("exp/ease[reg=1.0]", **RUN)
    (folder,) = (tmp_path / "tb").iterdir()
    events = accumulator.EventAccumulator(str(folder))
    events.Reload()
    assert [e.step for e in events.Scalars("valid/ndcg@10")] == [1, 2]
    assert [e.value for e in events.Scalars("valid/ndcg@10")] == pytest.approx([0.1, 0.2])
    assert events.Scalars("final/recall@10")[0].value == pytest.approx(0.5)
    assert "params" in events.Tags()["tensors"][0]


@pytest.mark.parametrize("spec", ["wandb:x", "mlflow", "mlflow:", "tensorboard"])
def test_other_forms_name_the_two_backends(spec):
    with pytest.raises(ConfigError, match="mlflow:DIR or tensorboard:DIR"):
        open_tracker(spec)


def test_genrec_run_tracks_each_model_with_its_validation_history(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    body = (
        '[[models]]\nname = "pop"\n[[models]]\nname = "multvae"\n'
        "config = { max_epochs = 2, patience = 2, latent_dim = 8 }\n"
    )
    exp = experiment_file(tmp_path, body)
    logs = tmp_path / "tb"
    assert (
        main(["run", str(exp), "--quiet", "--threads", "1", "--track", f"tensorboard:{logs}"]) == 0
    )
    runs = {}
    for folder in sorted(logs.iterdir()):
        runs[folder.name] = accumulator.EventAccumulator(str(folder))
        runs[folder.name].Reload()
    assert set(runs) == {"exp_pop", "exp_multvae"}
    multvae = runs["exp_multvae"]
    assert [e.step for e in multvae.Scalars("valid/ndcg@10")] == [1, 2]
    assert "final/ndcg@5" in multvae.Tags()["scalars"]
    (tag,) = [t for t in multvae.Tags()["tensors"] if t.startswith("params")]
    params = multvae.Tensors(tag)[0].tensor_proto.string_val[0].decode()
    assert '"latent_dim": "8"' in params and '"seed": "3"' in params
    assert "valid/ndcg@10" not in runs["exp_pop"].Tags()["scalars"]  # no epochs, no history


def test_a_tracked_search_logs_every_trial_and_the_best_on_test(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    pytest.importorskip("optuna")
    body = '[[models]]\nname = "ease"\n[search]\nease.reg = { low = 1.0, high = 100.0 }\n'
    exp = experiment_file(tmp_path, body)
    logs = tmp_path / "tb"
    args = ["search", str(exp), "--trials", "2", "--quiet", "--threads", "1"]
    assert main([*args, "--output", str(tmp_path / "out"), "--track", f"tensorboard:{logs}"]) == 0
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["exp_ease[best]", "exp_ease_trial-0", "exp_ease_trial-1"]
    best = accumulator.EventAccumulator(str(logs / "exp_ease[best]"))
    best.Reload()
    assert "final/ndcg@5" in best.Tags()["scalars"]
