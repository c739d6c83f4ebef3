"""1 -> 2 core scaling on this machine: fit and evaluation time of EASE, Mult-VAE and SASRec
(and iALS when genrec has it) on ML-100K at threads=1 and threads=2.

Writes the ``threads`` section of BENCHMARKS.md and ``benchmarks/results/threads.json``.

Each (model, threads) pair runs in a fresh Python process (``RunOptions(threads=n)``: torch's
intra-op pool and the BLAS/OpenMP pools capped at ``n`` through threadpoolctl), so no pool or
cache is warm from the other count. The neural models run a fixed number of epochs without
validation (no early stopping), so both counts do the same work. Each row records the 1-minute
load average before and after it: on a shared machine a second thread only helps when a core
is free. Metrics are compared per user between the two counts ("identical" means every test
user's NDCG@10 and the scores' checksum match bit for bit).

Also measured: the share of Mult-VAE's fit spent building its dense batches from the CSR matrix
in the training loop (``dense_rows``), the one Python-level batch builder a data-loading worker
could take off the training thread.

    nice -n 10 python benchmarks/threads.py --cache-dir "$GENREC_CACHE_DIR"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, load_average, machine_line, write_section  # noqa: E402

SEED, SPLIT_SEED = 42, 2020
# model -> (split, config overrides): fixed epochs for the neural models, no early stopping
RUNS = {
    "ease": ("holdout", {}),
    "ials": ("holdout", {}),
    "multvae": ("holdout", {"max_epochs": 30}),
    "sasrec": ("loo", {"max_epochs": 10}),
}
RESULTS = ROOT / "benchmarks" / "results" / "threads.json"


def child(model_name: str, threads: int, cache_dir: str) -> dict:
    """Fit and evaluate one model on ``threads`` threads in this process; the measurements."""
    import numpy as np

    import genrec.models.interactions.multvae as multvae_module
    from genrec.build import build_model
    from genrec.data import sources
    from genrec.data.splits import make_split
    from genrec.evaluation.protocol import evaluate_split
    from genrec.options import RunOptions

    split_name, overrides = RUNS[model_name]
    data = sources.load("ml-100k", cache_dir=cache_dir)
    split = make_split(data, split_name, seed=SPLIT_SEED)
    model = build_model(model_name, overrides)
    building = [0.0]
    dense_rows = multvae_module.dense_rows

    def timed_dense_rows(*args, **kwargs):  # the training loop's batch builder
        start = time.perf_counter()
        out = dense_rows(*args, **kwargs)
        building[0] += time.perf_counter() - start
        return out

    multvae_module.dense_rows = timed_dense_rows
    options = RunOptions(seed=SEED, threads=threads)
    load_before = load_average()
    start = time.perf_counter()
    model.fit(split.train, options=options)
    fit_seconds = time.perf_counter() - start
    multvae_module.dense_rows = dense_rows
    with options.capped_threads():
        start = time.perf_counter()
        evaluation = evaluate_split(model, split, "test", ks=(10,))
        eval_seconds = time.perf_counter() - start
        users = np.arange(min(200, split.train.n_users))
        scores = model.score(split.train.user_items[users], users=users)
    ndcg = np.asarray(evaluation.per_user["ndcg@10"], np.float64)
    return {
        "model": model_name,
        "threads": threads,
        "split": split_name,
        "config": overrides,
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        "batch_build_seconds": building[0] if model_name == "multvae" else None,
        "ndcg@10": float(np.nanmean(ndcg)),
        "recall@10": evaluation.mean("recall@10"),
        "per_user_sha256": hashlib.sha256(ndcg.tobytes()).hexdigest(),
        "scores_sha256": hashlib.sha256(np.ascontiguousarray(scores).tobytes()).hexdigest(),
        "load_before": load_before,
        "load_after": load_average(),
    }


def run_child(model_name: str, threads: int, cache_dir: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", model_name, str(threads), "--cache-dir", cache_dir],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{model_name} on {threads} thread(s) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def section(res: dict) -> str:
    rows = res["rows"]
    loads = [r[k] for r in rows for k in ("load_before", "load_after")]
    busy = statistics.median(loads) > 1.0
    out = [
        "## 1 -> 2 cores: fit and evaluation time at threads=1 and threads=2",
        "",
        f"Script: `benchmarks/threads.py` ({res['started']}). ML-100K, seed {SEED}, split seed "
        f"{SPLIT_SEED} (SASRec: leave-one-out; the others: holdout 0.8/0.1/0.1). "
        "Each row is one fresh process with `RunOptions(threads=n)`: torch's pool and the "
        "BLAS/OpenMP pools capped at n. Mult-VAE runs 30 epochs and SASRec 10, without "
        "validation, so both thread counts do the same work. Evaluation is full ranking of "
        "every test user. One run per cell.",
        "",
        machine_line(res["versions"], loads).replace("; 1 thread;", ";"),
        "",
    ]
    if busy:
        out += [
            "**Measured under load**: other jobs shared the machine's 2 cores (load averages "
            "in the table), so a second thread found no free core; the speedups are what a "
            "busy machine gives, not the idle-machine scaling.",
            "",
        ]
    out += [
        "| model | threads | fit s | eval s | fit speedup | eval speedup | NDCG@10 "
        "| metrics identical | load before / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["model"], r["threads"]): r for r in rows}
    for name in res["models"]:
        one = by[(name, 1)]
        for n in (1, 2):
            r = by[(name, n)]
            same = (
                r["per_user_sha256"] == one["per_user_sha256"]
                and r["scores_sha256"] == one["scores_sha256"]
            )
            out.append(
                f"| {name} | {n} | {r['fit_seconds']:.2f} | {r['eval_seconds']:.2f} | "
                f"{one['fit_seconds'] / r['fit_seconds']:.2f}x | "
                f"{one['eval_seconds'] / r['eval_seconds']:.2f}x | {r['ndcg@10']:.4f} | "
                f"{'-' if n == 1 else ('yes' if same else 'no (last bits)')} | "
                f"{r['load_before']:.2f} / {r['load_after']:.2f} |"
            )
    slower = [
        name
        for name in res["models"]
        if by[(name, 2)]["fit_seconds"] > by[(name, 1)]["fit_seconds"]
    ]
    if slower:
        out += [
            "",
            f"A second thread made {', '.join(slower)} slower here. When another process holds "
            "the other core, the OpenMP and OpenBLAS threads spin-wait for each other at every parallel "
            "region, and a 2-thread fit stalls. This is why `--threads` defaults to the free "
            "cores (`free_cores()`: the cores minus the load average), which is 1 on this "
            "machine under this load. Ask for 2 threads only on an idle machine.",
        ]
    vae = by.get(("multvae", 1))
    if vae and vae["batch_build_seconds"] is not None:
        share = vae["batch_build_seconds"] / vae["fit_seconds"]
        out += [
            "",
            f"Data loading: Mult-VAE's training loop spent {vae['batch_build_seconds']:.2f} s "
            f"of its {vae['fit_seconds']:.2f} s fit ({share:.0%}) building dense batches from "
            "the CSR matrix (`dense_rows`). SASRec's batches are rows indexed out of one "
            "prebuilt tensor. genrec uses no torch DataLoader: with batch building "
            f"{'a small share' if share < 0.2 else 'a visible share'} of an epoch and two "
            "cores that the compute threads already use, a loader worker would compete with "
            "the training threads for the same cores, so none is used.",
        ]
    return "\n".join(out)


def main() -> None:
    from genrec.data import sources
    from genrec.evaluation.runner import library_versions
    from genrec.models import MODELS

    p = argparse.ArgumentParser()
    p.add_argument("--cache-dir", type=Path, default=sources.default_cache_dir())
    p.add_argument("--models", default=",".join(RUNS))
    p.add_argument("--child", nargs=2, metavar=("MODEL", "THREADS"))
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), str(args.cache_dir))))
        return
    names = [n for n in args.models.split(",") if n in MODELS and n in RUNS]
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for name in names:
        for threads in (1, 2):
            print(f"{name} threads={threads} ...", file=sys.stderr)
            rows.append(run_child(name, threads, args.cache_dir))
    res = {"started": started, "models": names, "rows": rows, "versions": library_versions()}
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    write_section("threads", section(res))


if __name__ == "__main__":
    main()
