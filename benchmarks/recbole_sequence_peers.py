"""RecBole 1.2.1's GRU4Rec, SASRec and BERT4Rec trained to convergence on genrec's leave-one-out
split, beside genrec's gru4rec, sasrec (CE) and bert4rec: the converged sequence peers.

1. genrec's leave-one-out split of MovieLens-100K (valid = second last, test = last item) is
   written as RecBole's sequential benchmark files (``recbole_peers.write_sequence_split``: every
   prefix of each train sequence, each valid/test target after the user's whole history, lists
   of at most 50 items, RecBole's ``MAX_ITEM_LIST_LENGTH``);
2. genrec fits each model (default preset, seed ``--seed``, 1 thread) in this process;
3. RecBole trains its model in its own virtualenv (``benchmarks/recbole_runner.py --sequence``):
   RecBole's defaults, early stopping on valid NDCG@10 with patience 10, at most ``--epochs``
   epochs, the same seed, 1 thread; its raw scores for every test user come back;
4. genrec's evaluator ranks both libraries' scores (full ranking, train + valid items masked, as
   for genrec's models). RecBole's sequential evaluation does not mask history, so the same
   scores are also ranked unmasked and compared with RecBole's own test metrics (the bridge).

Each finished side is saved at once as ``WORK/<model>-<side>.json`` and a rerun skips what is
saved; an unfinished RecBole model resumes from its last validated epoch (the runner's
checkpoint, random generators included, so the result is the uninterrupted one), so a long run
can be stopped and resumed at any time; every RecBole validation is appended to
``WORK/<RecBoleModel>-<seed>.npz.progress.jsonl``. Both sides record wall and process-CPU
seconds (1 thread each, so CPU seconds are the fair cost on a shared machine). A run writes nothing else; ``--render`` writes the ``recbole-sequence-
peers`` section of BENCHMARKS.md and ``benchmarks/results/recbole_sequence_peers.json`` from
whatever is saved (a model without its RecBole side shows its progress so far).

    python benchmarks/recbole_sequence_peers.py --work DIR [--models gru4rec,sasrec-ce,bert4rec]
    python benchmarks/recbole_sequence_peers.py --work DIR --render
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import recbole_peers as bridge  # noqa: E402
from sequential import make  # noqa: E402

from genrec.data import sources  # noqa: E402
from genrec.data.splits import leave_one_out_split  # noqa: E402
from genrec.evaluation.protocol import evaluate, evaluate_split  # noqa: E402
from genrec.evaluation.runner import library_versions  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.options import RunOptions  # noqa: E402

from common import load_average, machine_line, names_arg, write_section  # noqa: E402

# genrec label (benchmarks/sequential.py) -> RecBole model (CE loss by default)
PAIRS = {"gru4rec": "GRU4Rec", "sasrec-ce": "SASRec", "bert4rec": "BERT4Rec"}
METRICS = ("ndcg@10", "recall@10", "mrr@10", "ndcg@20", "recall@20")
RESULTS = ROOT / "benchmarks" / "results" / "recbole_sequence_peers.json"


def means(evaluation) -> dict:
    return {m: float(evaluation.mean(m)) for m in METRICS}


def unmasked(scores, split) -> dict:
    """The test metrics of ``scores`` with nothing excluded from the rankings, as RecBole's
    sequential evaluation ranks them."""
    nothing = split.train.subset(np.zeros(len(split.train), bool))
    return means(evaluate(scores, nothing, split.test, metrics=("ndcg", "recall", "mrr")))


def run_genrec(label: str, split, seed: int) -> dict:
    model = make(label)
    load = load_average()
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(split.train, valid=split.valid, options=RunOptions(seed=seed, threads=1))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    metrics = means(evaluate_split(model, split, "test", metrics=("ndcg", "recall", "mrr")))
    return {
        "metrics": metrics,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "best_epoch": model.best_epoch_,
        "epochs_run": model.epochs_run_,
        "loads": [load, load_average()],
    }


def run_recbole(label: str, split, seed: int, epochs: int, python: Path, work: Path) -> dict:
    load = load_average()
    path = bridge.run_recbole(python, work, PAIRS[label], seed, epochs, sequence=True)
    scores = bridge.RecBoleScores(path, split)
    metrics = means(evaluate_split(scores, split, "test", metrics=("ndcg", "recall", "mrr")))
    return {
        "metrics": metrics,
        "unmasked": unmasked(scores, split),
        "own_test": scores.info["test"],
        "seconds": scores.info["seconds"],
        "cpu_seconds": scores.info.get("cpu_seconds"),
        "resumed": scores.info.get("resumed", 0),
        "best_epoch": scores.info["best_epoch"],
        "epochs_run": scores.info["epochs_run"],
        "loads": [load, load_average()],
    }


def progress(work: Path, label: str, seed: int) -> list[dict]:
    path = work / f"{PAIRS[label]}-{seed}.npz.progress.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def collect(work: Path, labels: list[str], seed: int) -> list[dict]:
    rows = []
    for label in labels:
        row = {
            "model": label,
            "recbole_model": PAIRS[label],
            "progress": progress(work, label, seed),
        }
        for side in ("genrec", "recbole"):
            path = work / f"{label}-{side}.json"
            if path.exists():
                row[side] = json.loads(path.read_text())
        rows.append(row)
    return rows


def cost(side: dict) -> tuple[float, str]:
    """A side's process-CPU seconds, or its wall seconds (marked) when it ran before CPU seconds
    were recorded."""
    if side.get("cpu_seconds") is not None:
        return side["cpu_seconds"], ""
    return side["seconds"], " wall"


def table(rows: list[dict]) -> str:
    lines = [
        "| model | genrec NDCG@10 / Recall@10 | RecBole NDCG@10 / Recall@10 | quality ratio "
        "genrec / RecBole (NDCG@10) | genrec fit CPU s (best / run epochs) | RecBole CPU s (best / "
        "run epochs) | time ratio RecBole / genrec |",
        "|" + " --- |" * 7,
    ]
    for r in rows:
        g, b = r.get("genrec"), r.get("recbole")
        cells = [f"{r['model']} / {r['recbole_model']}"]
        cells.append(
            f"{g['metrics']['ndcg@10']:.4f} / {g['metrics']['recall@10']:.4f}" if g else "-"
        )
        if b:
            cells.append(f"{b['metrics']['ndcg@10']:.4f} / {b['metrics']['recall@10']:.4f}")
        elif r["progress"]:
            last = r["progress"][-1]
            best = max(r["progress"], key=lambda p: p["valid"])
            cells.append(
                f"not finished: {last['epoch']} epochs in "
                f"{last.get('cpu_seconds', last['seconds']):.0f} s, best valid "
                f"NDCG@10 {best['valid']:.4f} at epoch {best['epoch']}"
            )
        else:
            cells.append("not run")
        both = g and b
        cells.append(f"{g['metrics']['ndcg@10'] / b['metrics']['ndcg@10']:.2f}" if both else "-")
        for side in (g, b):
            if side:
                seconds, kind = cost(side)
                cells.append(f"{seconds:.0f}{kind} ({side['best_epoch']} / {side['epochs_run']})")
            else:
                cells.append("-")
        cells.append(f"{cost(b)[0] / cost(g)[0]:.1f}" if both else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bridge_line(rows: list[dict]) -> str:
    gaps = [
        abs(r["recbole"]["unmasked"][m] - r["recbole"]["own_test"][m])
        for r in rows
        if "recbole" in r
        for m in ("ndcg@10", "recall@10", "ndcg@20", "recall@20")
    ]
    if not gaps:
        return ""
    return (
        "Bridge check: ranked unmasked, as RecBole's sequential evaluation ranks, genrec's "
        f"evaluator agrees with RecBole's own test metrics to within {max(gaps):.4f} (largest gap "
        f"over {len(gaps)} values; RecBole rounds to 4 decimals)."
    )


def render(payload: dict) -> str:
    rows = payload["results"]
    loads = [
        x for r in rows for side in ("genrec", "recbole") if side in r for x in r[side]["loads"]
    ]
    return "\n".join(
        [
            "## Converged RecBole sequence peers on genrec's leave-one-out split",
            "",
            f"Written by `python benchmarks/recbole_sequence_peers.py --seed {payload['seed']}` "
            f"(runs from {payload['started']}). "
            + machine_line(payload["versions"], loads or [load_average()])
            + f" RecBole {payload['recbole']} in its own virtualenv. The machine's 2 cores were "
            "shared with other jobs (1-minute load averages above), so both sides ran on 1 "
            "thread at low priority and are timed in process-CPU seconds, which such sharing "
            "does not inflate; a cell marked wall is a wall time from before CPU seconds were "
            "recorded, at the load shown.",
            "",
            "MovieLens-100K, genrec's leave-one-out split written as RecBole's sequential "
            "benchmark files (every prefix of each train sequence, item lists of at most 50; "
            "valid/test targets after the user's whole history). RecBole: its default "
            "hyper-parameters (CE loss), early stopping on valid NDCG@10 with patience 10, at most "
            f"{payload['epochs']} epochs. genrec: each model's default preset, same seed "
            f"({payload['seed']}), 1 thread each. Both scored by genrec's evaluator: full ranking, "
            "train + valid items masked. Seconds: genrec's fit to the end of early stopping; "
            "RecBole's data preparation + fit + test (summed over the pieces of a resumed run).",
            "",
            table(rows),
            "",
            bridge_line(rows),
            pending_line(rows),
        ]
    )


def pending_line(rows: list[dict]) -> str:
    """What a "not finished" cell is, when there is one."""
    if all("recbole" in r for r in rows):
        return ""
    return (
        "A RecBole cell marked not finished is the state of a run that had not converged "
        f"when this was written ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; still "
        "going or stopped; its validation so far, not a test result); a rerun resumes it from "
        "its last validated epoch, and `--render` rewrites this section."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(PAIRS))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--epochs", type=int, default=300, help="RecBole's epoch limit")
    p.add_argument("--work", type=Path, required=True, help="folder for split files and results")
    p.add_argument("--render", action="store_true", help="only write the section from WORK")
    p.add_argument("--recbole-python", type=Path, default=bridge.DEFAULT_PYTHON)
    p.add_argument("--cache-dir", type=Path, default=sources.default_cache_dir())
    args = p.parse_args()
    labels = names_arg(p, args.models, PAIRS)
    if not args.recbole_python.exists():
        p.error(f"{args.recbole_python} not found; run `bash scripts/setup_recbole.sh` first")
    args.work.mkdir(parents=True, exist_ok=True)
    started = args.work / "started"
    if not started.exists():
        started.write_text(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if not args.render:
        split = leave_one_out_split(sources.load("ml-100k", cache_dir=args.cache_dir))
        bridge.write_sequence_split(split, args.work)
        jobs = [(label, "genrec") for label in labels] + [(label, "recbole") for label in labels]
        for label, side in jobs:  # genrec's quick fits first, then RecBole's long ones
            out = args.work / f"{label}-{side}.json"
            if out.exists():
                continue
            print(f"{label}: {side} ...", file=sys.stderr, flush=True)
            if side == "genrec":
                result = run_genrec(label, split, args.seed)
            else:
                result = run_recbole(
                    label, split, args.seed, args.epochs, args.recbole_python, args.work
                )
            atomic_write(out, json.dumps(result, indent=2))
        return
    recbole = subprocess.run(
        [str(args.recbole_python), "-c", "import recbole; print(recbole.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ).stdout.strip()
    payload = {
        "started": started.read_text(),
        "seed": args.seed,
        "epochs": args.epochs,
        "recbole": recbole,
        "versions": library_versions(),
        "results": collect(args.work, labels, args.seed),
    }
    section = render(payload)
    write_section("recbole-sequence-peers", section)
    atomic_write(RESULTS, json.dumps(payload, indent=2, default=float))
    print(section)


if __name__ == "__main__":
    main()
