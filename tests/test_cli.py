"""The `genrec` command end to end on MovieLens-100K, and its one-line errors."""

import csv
import json
import math
from collections import defaultdict

import pytest

from genrec.cli import main


@pytest.fixture
def env(ml100k_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GENREC_CACHE_DIR", str(ml100k_cache))
    monkeypatch.setenv("GENREC_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_benchmark_writes_results_rankings_and_report(env, capsys):
    code, out, err = run(
        capsys,
        "benchmark",
        "--dataset",
        "ml-100k",
        "--models",
        "pop,ease",
        "--k",
        "10,20",
        "--output",
        str(env / "results.json"),
        "--save-rankings",
        str(env / "rankings.csv"),
        "--report",
        str(env / "report"),
        "--quiet",
    )
    assert code == 0, err
    assert "ease" in out and "ndcg@10" in out
    results = json.loads((env / "results.json").read_text())
    assert {"dataset", "checksum", "split", "seed", "k"} <= set(results["protocol"])
    by_model = {r["model"]: r for r in results["results"]}
    ndcg = by_model["ease"]["metrics"]["ndcg@10"]
    assert ndcg["ci_low"] <= ndcg["mean"] <= ndcg["ci_high"]
    assert ndcg["mean"] > by_model["pop"]["metrics"]["ndcg@10"]["mean"]
    assert by_model["pop"]["significance"]["ndcg@10"]["significant"]
    for key in ("fit_seconds", "score_seconds", "peak_rss_mb", "config"):
        assert key in by_model["ease"]
    # recompute NDCG@10 from the written files alone
    test = defaultdict(set)
    with open(env / "rankings.test.csv") as f:
        for row in csv.DictReader(f):
            test[row["user"]].add(row["item"])
    ranked = defaultdict(list)
    with open(env / "rankings.ease.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["user", "rank", "item", "score"]
    for row in rows:
        ranked[row["user"]].append((int(row["rank"]), row["item"]))
    values = []
    for user, items in test.items():
        top = [i for _, i in sorted(ranked[user])[:10]]
        dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(top) if i in items)
        values.append(dcg / sum(1 / math.log2(r + 2) for r in range(min(len(items), 10))))
    assert sum(values) / len(values) == pytest.approx(ndcg["mean"], abs=1e-6)
    html = (env / "report.html").read_text()
    assert (
        "<svg" in html
        and "ndcg@10" in html
        and "http" not in html.split("<svg")[0].lower().replace("http-equiv", "")
    )
    assert "| ease |" in (env / "report.md").read_text()


def test_train_then_recommend_for_a_user_and_for_a_history(env, capsys):
    code, out, err = run(capsys, "train", "--dataset", "ml-100k", "--model", "ease", "--quiet")
    assert code == 0, err
    code, out, err = run(
        capsys,
        "recommend",
        "--dataset",
        "ml-100k",
        "--model",
        "ease",
        "--user",
        "196",
        "--k",
        "5",
        "--quiet",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 5 and lines[0].split()[0] == "1"
    code, out, err = run(
        capsys,
        "recommend",
        "--dataset",
        "ml-100k",
        "--model",
        "ease",
        "--items",
        "1,50,181",
        "--k",
        "3",
        "--quiet",
    )
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3
    assert not any(line.split()[1] in {"1", "50", "181"} for line in out.strip().splitlines())


def test_recommend_trains_first_with_a_notice(env, capsys):
    code, out, err = run(
        capsys, "recommend", "--dataset", "ml-100k", "--model", "pop", "--user", "1", "--k", "2"
    )
    assert code == 0
    assert "notice" in err and len(out.strip().splitlines()) == 2


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["benchmark", "--dataset", "nope"], "unknown dataset"),
        (["benchmark", "--models", "ease,foo"], "unknown model 'foo'"),
        (["benchmark", "--models", "ease", "--k", "0"], "positive"),
        (["benchmark", "--models", "ease", "--set", "ease.regg=3"], "allowed keys"),
        (["benchmark", "--models", "ease", "--set", "ease.reg=abc"], "expects float"),
        (["recommend", "--model", "pop", "--user", "no-such-user"], "unknown user"),
        (["recommend", "--model", "pop", "--user", "1", "--k", "5000"], "k must be"),
        (["recommend", "--model", "pop", "--items", "1,zzz"], "unknown item"),
        (["benchmark", "--split", "random"], "holdout"),
        (["benchmark", "--models", "multvae:nope"], "no preset"),
        (["sample", "--model", "ease", "--output", "x.csv"], "cannot generate"),
        (["sample", "--model", "multvae", "--n", "0", "--output", "x.csv"], "--n"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(env, capsys, argv, fragment):
    code, out, err = run(capsys, *argv, "--quiet")
    assert code == 2
    lines = [line for line in err.strip().splitlines() if not line.startswith("notice")]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err


def test_data_info_prints_statistics(env, capsys):
    code, out, err = run(capsys, "data", "info", "ml-100k", "--min-rating", "4")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["users"] > 900 and stats["interactions"] < 100_000
    assert "age" in stats["user_attributes"] and "genres" in stats["item_attributes"]


def test_paths_and_k_are_checked_before_any_training(env, capsys, tmp_path):
    (tmp_path / "folder").mkdir()
    code, _, err = run(
        capsys, "benchmark", "--models", "bpr", "--output", str(tmp_path / "folder"), "--quiet"
    )
    assert code == 2 and "is a folder" in err and "[bpr] fit" not in err
    code, _, err = run(capsys, "benchmark", "--models", "bpr", "--k", "5000", "--quiet")
    assert code == 2 and "larger than the 1682 items" in err


def test_artifact_of_another_model_or_damaged_is_refused(env, capsys, tmp_path):
    assert (
        run(capsys, "train", "--model", "pop", "--output", str(tmp_path / "m"), "--quiet")[0] == 0
    )
    code, _, err = run(
        capsys,
        "recommend",
        "--model",
        "ease",
        "--artifact",
        str(tmp_path / "m"),
        "--user",
        "1",
        "--quiet",
    )
    assert code == 2 and "holds a 'pop' model" in err
    (tmp_path / "m" / "weights.npz").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run(
        capsys,
        "recommend",
        "--model",
        "pop",
        "--artifact",
        str(tmp_path / "m"),
        "--user",
        "1",
        "--quiet",
    )
    assert code == 2 and "cannot read" in err and "Traceback" not in err
    (tmp_path / "m" / "config.json").write_text("[1, 2]")
    code, _, err = run(
        capsys,
        "recommend",
        "--model",
        "pop",
        "--artifact",
        str(tmp_path / "m"),
        "--user",
        "1",
        "--quiet",
    )
    assert code == 2 and "retrain" in err


def test_unwritable_paths_and_infinite_config_are_one_line_errors(
    env, capsys, tmp_path, monkeypatch
):
    code, _, err = run(capsys, "benchmark", "--models", "ease", "--set", "ease.reg=inf", "--quiet")
    assert code == 2 and "finite" in err
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path / "afile"))
    code, _, err = run(capsys, "data", "fetch", "ml-100k")
    assert code == 2 and err.startswith("error:") and "Traceback" not in err


def test_a_folder_of_files_is_a_dataset(env, capsys, ml100k_cache):
    folder = ml100k_cache / "ml-100k"  # RecBole atomic files, as fetched
    code, out, err = run(capsys, "data", "info", str(folder))
    assert code == 0, err
    assert json.loads(out)["interactions"] == 100_000
    code, out, err = run(
        capsys,
        "recommend",
        "--dataset",
        str(folder),
        "--model",
        "pop",
        "--items",
        "50",
        "--k",
        "2",
        "--quiet",
    )
    assert code == 0, err
    assert (env / "artifacts" / "ml-100k" / "pop" / "config.json").exists()


@pytest.mark.slow
def test_sample_writes_synthetic_users(env, capsys):
    out_file = env / "synthetic.csv"
    code, out, err = run(
        capsys,
        "sample",
        "--dataset",
        "ml-100k",
        "--model",
        "multvae",
        "--set",
        "max_epochs=3",
        "--n",
        "7",
        "--output",
        str(out_file),
        "--quiet",
    )
    assert code == 0, err
    rows = list(csv.DictReader(out_file.open()))
    users = defaultdict(set)
    for row in rows:
        users[row["user"]].add(row["item"])
    assert sorted(users) == [f"synthetic-{i}" for i in range(7)]
    assert all(len(items) >= 1 for items in users.values())
    assert sum(len(items) for items in users.values()) == len(rows)  # no repeated item


def test_benchmark_on_a_user_sample_runs_a_two_stage_pipeline(env, capsys):
    code, out, err = run(
        capsys,
        "benchmark",
        "--models",
        "ease,ease+llm",
        "--set",
        "llm.lm=fake",
        "--users",
        "50",
        "--output",
        str(env / "r.json"),
        "--quiet",
    )
    assert code == 0, err
    results = json.loads((env / "r.json").read_text())
    assert results["protocol"]["evaluated_users"] == 50
    code, out, err = run(capsys, "benchmark", "--models", "ease", "--users", "0", "--quiet")
    assert code == 2 and "users must be a positive" in err


def test_saved_rankings_of_a_user_sample_hold_only_those_users(env, capsys):
    code, out, err = run(
        capsys,
        "benchmark",
        "--models",
        "pop",
        "--users",
        "20",
        "--k",
        "5",
        "--save-rankings",
        str(env / "top.csv"),
        "--quiet",
    )
    assert code == 0, err
    with open(env / "top.csv") as f:
        ranked = {row["user"] for row in csv.DictReader(f)}
    with open(env / "top.test.csv") as f:
        tested = {row["user"] for row in csv.DictReader(f)}
    assert len(ranked) == 20 and tested == ranked


def test_benchmark_records_split_seed_training_seed_and_threads(env, capsys):
    out_file = env / "results.json"
    code, _, err = run(
        capsys,
        "benchmark",
        "--models",
        "pop",
        "--split-seed",
        "2020",
        "--seed",
        "42",
        "--threads",
        "1",
        "--output",
        str(out_file),
    )
    assert code == 0, err
    assert "seed 42, 1 thread(s)" in err
    protocol = json.loads(out_file.read_text())["protocol"]
    assert protocol["split_info"]["seed"] == 2020
    assert (protocol["seed"], protocol["threads"]) == (42, 1)
