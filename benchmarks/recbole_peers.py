"""RecBole 1.2.1 trained on genrec's own split, beside genrec's models: a like-for-like peer.

../shared/PEERS.md measures RecBole on RecBole's split of MovieLens-100K; genrec shuffles each
user's interactions with its own generator, so the two test sets share sizes but not items. This
script removes that difference. For every model both libraries have and every seed:

1. genrec's holdout split (0.8/0.1/0.1, split seed 2020) is written as RecBole atomic files,
   which RecBole keeps as given (``benchmark_filename``);
2. RecBole trains its model in its own virtualenv (``scripts/setup_recbole.sh``; RecBole 1.2.1
   needs numpy < 2) with ``benchmarks/recbole_runner.py``: RecBole's defaults, early stopping on
   valid NDCG@10 with patience 10, at most ``--epochs`` epochs (300, RecBole's own default, so
   no run is capped), and returns its raw scores for every test user;
3. genrec's evaluator ranks those scores exactly as it ranks genrec's (train + valid items
   masked at test), and RecBole's own test metrics are kept beside them as a check of the bridge;
4. genrec's model (its default preset) is fitted in this process with the same seed.

Writes the ``recbole-peers`` section of BENCHMARKS.md and ``benchmarks/results/recbole_peers.json``.

    bash scripts/setup_recbole.sh   # once: .venv-recbole
    python benchmarks/recbole_peers.py [--seeds 42,2020,7] [--models diffrec,multdae]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrec.build import build_model  # noqa: E402
from genrec.data import sources  # noqa: E402
from genrec.data.splits import holdout_split  # noqa: E402
from genrec.errors import DataError  # noqa: E402
from genrec.evaluation.protocol import evaluate_split  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.evaluation.stats import bootstrap_ci, paired_tests  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.options import RunOptions  # noqa: E402

from common import PEER_NAMES, load_average, machine_line, names_arg, peer_rows, write_section  # noqa: E402

# genrec name -> RecBole model name
PAIRS = {
    "ease": "EASE",
    "multdae": "MultiDAE",
    "cdae": "CDAE",
    "multvae": "MultiVAE",
    "recvae": "RecVAE",
    "diffrec": "DiffRec",
    "ldiffrec": "LDiffRec",
}
SPLIT_SEED = 2020
METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")
RUNNER = ROOT / "benchmarks" / "recbole_runner.py"
DEFAULT_PYTHON = ROOT / ".venv-recbole" / "bin" / "python"


class RecBoleScores:
    """RecBole's saved scores, served through genrec's ``score`` so genrec's evaluator ranks
    them. Items RecBole never saw (absent from the training file) score lowest."""

    def __init__(self, path: Path, split):
        saved = np.load(path)
        self.info = json.loads(str(saved["info"]))
        self.name = self.info["model"]
        n_users, n_items = split.train.n_users, split.train.n_items
        self.table = np.full((n_users, n_items), np.finfo(np.float32).min, np.float32)
        rows = split.train.users.index(saved["users"].tolist())
        cols = split.train.items.index(saved["items"].tolist())
        self.table[np.ix_(rows, cols)] = saved["scores"]
        self.scored = np.zeros(n_users, bool)
        self.scored[rows] = True

    def score(self, histories, *, users):
        if not self.scored[users].all():
            raise DataError(
                "RecBole did not score some test users; its scores come from other "
                "split files (re-run the RecBole side on this split)"
            )
        return self.table[users]


def write_split(split, folder: Path) -> None:
    """The three parts as RecBole atomic files ``folder/genrec/genrec.{train,valid,test}.inter``."""
    (folder / "genrec").mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        data = getattr(split, part)
        users = data.users.ids_of(data.user_idx)
        items = data.items.ids_of(data.item_idx)
        lines = ["user_id:token\titem_id:token", *(f"{u}\t{i}" for u, i in zip(users, items))]
        (folder / "genrec" / f"genrec.{part}.inter").write_text("\n".join(lines) + "\n")


def write_sequence_split(split, folder: Path, max_len: int = 50) -> None:
    """A leave-one-out split as RecBole's sequential benchmark files, one row per target:
    ``user_id``, ``item_id_list`` (the user's last ``max_len`` earlier items, oldest first) and
    ``item_id``. Train holds every prefix of each user's train sequence (RecBole's own data
    augmentation: the first item is never a target); each valid/test target follows the user's
    whole history for that part (``split.history``), so RecBole sees what genrec's models see.

    Raises:
        DataError: a user or item id holding whitespace (RecBole splits item lists on spaces).
    """
    (folder / "genrec").mkdir(parents=True, exist_ok=True)
    users, items = split.train.users, split.train.items
    user_ids, item_ids = users.ids_of(np.arange(len(users))), items.ids_of(np.arange(len(items)))
    tokens = np.array([str(x) for x in item_ids], dtype=object)
    for ids, what in ((user_ids, "user"), (tokens, "item")):
        bad = [x for x in map(str, ids) if not x or any(c.isspace() for c in x)]
        if bad:
            raise DataError(
                f"{what} id {bad[0]!r} holds whitespace or is empty; RecBole's item lists are "
                "space-separated, so rename such ids before writing sequential files"
            )
    header = "user_id:token\titem_id_list:token_seq\titem_id:token"
    indptr, seq = split.train.sequences()
    lines = [header]
    for u in range(split.train.n_users):
        for k in range(indptr[u] + 1, indptr[u + 1]):
            past = " ".join(tokens[seq[max(indptr[u], k - max_len) : k]])
            lines.append(f"{user_ids[u]}\t{past}\t{tokens[seq[k]]}")
    (folder / "genrec" / "genrec.train.inter").write_text("\n".join(lines) + "\n")
    for part in ("valid", "test"):
        target = getattr(split, part)
        h_ptr, h_seq = split.history(part).sequences()
        lines = [header]
        for i in target.time_order:
            u = target.user_idx[i]
            past = " ".join(tokens[h_seq[max(h_ptr[u], h_ptr[u + 1] - max_len) : h_ptr[u + 1]]])
            lines.append(f"{user_ids[u]}\t{past}\t{tokens[target.item_idx[i]]}")
        (folder / "genrec" / f"genrec.{part}.inter").write_text("\n".join(lines) + "\n")


def runner_command(
    python: Path, folder: Path, model: str, seed: int, epochs: int, *, sequence: bool = False
) -> list[str]:
    """The command that runs benchmarks/recbole_runner.py on the split files in ``folder``
    (its scores go to ``folder/<model>-<seed>.npz``; run it with ``cwd=folder``)."""
    return [
        str(python),
        str(RUNNER),
        "--data",
        str(folder),
        "--model",
        model,
        "--seed",
        str(seed),
        "--epochs",
        str(epochs),
        "--out",
        str(folder / f"{model}-{seed}.npz"),
        *(["--sequence"] if sequence else []),
    ]


def run_recbole(
    python: Path, folder: Path, model: str, seed: int, epochs: int, *, sequence: bool = False
) -> Path:
    """Run benchmarks/recbole_runner.py on the split files in ``folder`` (resuming the model's
    unfinished run if there is one); the saved .npz path. ``sequence``: the files are sequential
    ones (:func:`write_sequence_split`)."""
    done = subprocess.run(
        runner_command(python, folder, model, seed, epochs, sequence=sequence),
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"RecBole {model} (seed {seed}) failed:\n{done.stderr[-3000:]}")
    return folder / f"{model}-{seed}.npz"


def run_genrec(name: str, split, seed: int) -> tuple[dict, float, int | None]:
    model = build_model(name)
    start = time.perf_counter()
    model.fit(split.train, valid=split.valid, options=RunOptions(seed=seed, threads=1))
    seconds = time.perf_counter() - start
    per_user = evaluate_split(model, split, "test", metrics=("ndcg", "recall")).per_user
    best = getattr(model, "best_epoch_", None)
    return {m: per_user[m] for m in METRICS}, seconds, best


def compare(name: str, split, seeds: list[int], python: Path, folder: Path, epochs: int) -> dict:
    """Both libraries' runs of one model over the seeds, and the paired test of their
    seed-averaged per-user NDCG@10 and Recall@10."""
    sides = {"genrec": [], "recbole": []}
    for seed in seeds:
        print(f"{name}, seed {seed}: genrec ...", file=sys.stderr)
        per_user, seconds, best = run_genrec(name, split, seed)
        sides["genrec"].append(
            {"seed": seed, "per_user": per_user, "seconds": seconds, "best_epoch": best}
        )
        print(f"{name}, seed {seed}: RecBole {PAIRS[name]} ...", file=sys.stderr)
        scores = RecBoleScores(run_recbole(python, folder, PAIRS[name], seed, epochs), split)
        per_user = evaluate_split(scores, split, "test", metrics=("ndcg", "recall")).per_user
        sides["recbole"].append(
            {
                "seed": seed,
                "per_user": {m: per_user[m] for m in METRICS},
                "seconds": scores.info["seconds"],
                "best_epoch": scores.info["best_epoch"],
                "epochs_run": scores.info["epochs_run"],
                "own_test": scores.info["test"],
            }
        )
    row = {"model": name, "recbole_model": PAIRS[name], "seeds": seeds}
    for side, runs in sides.items():
        row[side] = {
            "runs": [
                {k: v for k, v in r.items() if k != "per_user"}
                | {"metrics": {m: float(np.mean(r["per_user"][m])) for m in METRICS}}
                for r in runs
            ],
            "mean": {m: float(np.mean([np.mean(r["per_user"][m]) for r in runs])) for m in METRICS},
            "seconds_median": statistics.median(r["seconds"] for r in runs),
        }
    for metric in ("ndcg@10", "recall@10"):
        ours = np.mean([r["per_user"][metric] for r in sides["genrec"]], axis=0)
        theirs = np.mean([r["per_user"][metric] for r in sides["recbole"]], axis=0)
        low, high = bootstrap_ci(ours - theirs, seed=0)
        row.setdefault("difference", {})[metric] = {**paired_tests(ours, theirs), "ci": [low, high]}
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| model | genrec NDCG@10 | RecBole NDCG@10 | genrec Recall@10 | RecBole Recall@10 | "
        "genrec - RecBole NDCG@10 [paired 95% CI], p | genrec - RecBole Recall@10 [paired "
        "95% CI], p | bar met | genrec fit s | RecBole s | RecBole best epoch / run |",
        "|" + " --- |" * 11,
    ]
    for r in rows:
        g, b = r["genrec"], r["recbole"]
        cells = [r["model"] + f" / {r['recbole_model']}"]
        for metric in ("ndcg@10", "recall@10"):
            for side in (g, b):
                per_seed = ", ".join(f"{run['metrics'][metric]:.4f}" for run in side["runs"])
                cells.append(f"{side['mean'][metric]:.4f} ({per_seed})")
        for metric in ("ndcg@10", "recall@10"):
            d = r["difference"][metric]
            p = max(d["p_t"], d["p_wilcoxon"])
            cells.append(f"{d['mean_diff']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}], p={p:.2g}")
        met = all(g["mean"][m] >= b["mean"][m] for m in ("ndcg@10", "recall@10"))
        cells.append("yes" if met else "NO")
        cells.append(f"{g['seconds_median']:.1f}")
        cells.append(f"{b['seconds_median']:.1f}")
        cells.append(", ".join(f"{run['best_epoch']} / {run['epochs_run']}" for run in b["runs"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bridge_check(rows: list[dict]) -> str:
    """RecBole's own test metrics against genrec's evaluation of the same scores."""
    gaps = [
        abs(run["metrics"][m] - run["own_test"][m])
        for r in rows
        for run in r["recbole"]["runs"]
        for m in METRICS
    ]
    return (
        f"Bridge check: genrec's evaluator and RecBole's own evaluator agree on every RecBole "
        f"run to within {max(gaps):.4f} (largest gap over {len(gaps)} metric values; RecBole "
        "rounds to 4 decimals, and ties in scores may be ordered differently)."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(PAIRS))
    p.add_argument("--seeds", default="42,2020,7")
    p.add_argument("--epochs", type=int, default=300, help="RecBole's epoch limit")
    p.add_argument("--recbole-python", type=Path, default=DEFAULT_PYTHON)
    p.add_argument("--cache-dir", type=Path, default=sources.default_cache_dir())
    args = p.parse_args()
    names = names_arg(p, args.models, PAIRS)
    if not args.recbole_python.exists():
        p.error(f"{args.recbole_python} not found; run `bash scripts/setup_recbole.sh` first")
    seeds = [int(s) for s in args.seeds.split(",")]
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data = sources.load("ml-100k", cache_dir=args.cache_dir)
    split = holdout_split(data, (0.8, 0.1, 0.1), seed=SPLIT_SEED)
    recbole_version = subprocess.run(
        [
            str(args.recbole_python),
            "-c",
            "import recbole, numpy; print(recbole.__version__, numpy.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    loads, rows = [load_average()], []
    with tempfile.TemporaryDirectory(prefix="recbole-peers-") as tmp:
        write_split(split, Path(tmp))
        for name in names:
            rows.append(compare(name, split, seeds, args.recbole_python, Path(tmp), args.epochs))
            loads.append(load_average())
    payload = {
        "started": started,
        "seeds": seeds,
        "epochs": args.epochs,
        "recbole": recbole_version[0],
        "recbole_numpy": recbole_version[1],
        "versions": library_versions(),
        "loads": loads,
        "results": rows,
    }
    section = render(payload)
    write_section("recbole-peers", section)
    atomic_write(
        ROOT / "benchmarks" / "results" / "recbole_peers.json",
        json.dumps(payload, indent=2, default=float),
    )
    print(section)


def render(payload: dict) -> str:
    """The ``recbole-peers`` section of BENCHMARKS.md from this script's results."""
    seeds = ",".join(map(str, payload["seeds"]))
    rows = payload["results"]
    return "\n".join(
        [
            "## RecBole on genrec's split: the like-for-like peer",
            "",
            f"Written by `python benchmarks/recbole_peers.py --seeds {seeds}` on "
            f"{payload['started']}. "
            + machine_line(payload["versions"], payload["loads"])
            + f" RecBole {payload['recbole']} in its own virtualenv (numpy "
            f"{payload['recbole_numpy']}).",
            "",
            "MovieLens-100K, genrec's holdout split 0.8/0.1/0.1 (split seed 2020) written as RecBole "
            "atomic files, full ranking, train + valid items masked at test. RecBole: its default "
            "hyper-parameters for each model, early stopping on valid NDCG@10 with patience 10, at "
            f"most {payload['epochs']} epochs. genrec: each model's default preset. Both trained "
            f"once per seed ({seeds}); cells are the mean over seeds (each seed's value in "
            "brackets), all scored by genrec's evaluator. Differences: per-user values averaged over "
            "the seeds, paired bootstrap 95% interval, p the larger of the paired t-test and the "
            "Wilcoxon test. \"bar met\": genrec's mean at least RecBole's on both NDCG@10 and "
            "Recall@10. Seconds: genrec's fit (to the end of early stopping), RecBole's data "
            "preparation + fit + test, medians over the seeds, 1 thread.",
            "",
            table(rows),
            "",
            bridge_check(rows),
            "",
            split_effect(rows),
        ]
    )


def split_effect(rows: list[dict]) -> str:
    """How far RecBole's numbers on its own split (PEERS.md) are from the same models on
    genrec's split: the part of a comparison with PEERS.md that is not the model."""
    peers = peer_rows()
    cells = []
    for r in rows:
        peer = peers.get(PEER_NAMES[r["model"]])
        if peer:
            here = r["recbole"]["mean"]
            cells.append(
                f"{r['recbole_model']} {peer['ndcg@10'] - here['ndcg@10']:+.4f} / "
                f"{peer['recall@10'] - here['recall@10']:+.4f}"
            )
    if not cells:
        return ""
    return (
        "Same library, other split: RecBole on its own split (PEERS.md: one seed, at most "
        "100 epochs) minus RecBole on genrec's split (the seed mean above), NDCG@10 / "
        "Recall@10: " + "; ".join(cells) + ". For EASE, which has neither seed nor epochs, "
        "this is the split alone."
    )


if __name__ == "__main__":
    main()
