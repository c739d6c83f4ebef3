"""Data-parallel training: 1 against 2 processes on ML-100K, time per epoch and final quality.

For each model (Mult-VAE on the holdout split, SASRec on leave-one-out) and each layout
``PROCESSESxTHREADS`` (default 1x1, 1x2, 2x1: the same two cores used by one process or split
between two), one run of ``genrec.distributed.launch``: every process loads ML-100K, fits with
early stopping on validation NDCG@10 (rank 0 validates), and rank 0 evaluates the restored model
on the test part (full ranking). Reports the median training time per epoch (validation
excluded), the epochs run and the best epoch, and test NDCG@10 / Recall@10 with bootstrap
intervals. Rewrites the ``ddp`` section of BENCHMARKS.md and benchmarks/results/ddp.json.

    GENREC_CACHE_DIR=... python benchmarks/ddp.py --models multvae,sasrec --layouts 1x1,1x2,2x1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from genrec import distributed  # noqa: E402
from genrec.io import atomic_write  # noqa: E402

from common import ROOT, load_average, machine_line, names_arg, summary, write_section  # noqa: E402

SPLITS = {"multvae": "holdout", "sasrec": "loo"}  # each model's protocol in BENCHMARKS.md
SPLIT_SEED, SEED = 2020, 42


def fit_and_evaluate(name: str, cache_dir: str, max_epochs: int, threads: int) -> dict | None:
    """One process's part: fit ``name`` on ML-100K; rank 0 also evaluates on test."""
    from genrec.build import build_model
    from genrec.data import sources
    from genrec.data.splits import make_split
    from genrec.evaluation.protocol import evaluate_split
    from genrec.options import RunOptions

    data = sources.load("ml-100k", cache_dir=cache_dir)
    split = make_split(data, SPLITS[name], seed=SPLIT_SEED)
    model = build_model(name, {"max_epochs": max_epochs})
    model.fit(split.train, valid=split.valid, options=RunOptions(seed=SEED, threads=threads))
    if not distributed.current().is_main:
        return None
    test = evaluate_split(model, split, ks=(10,))
    return {
        "epoch_seconds": statistics.median(model.epoch_seconds_),
        "epochs_run": model.epochs_run_,
        "best_epoch": model.best_epoch_,
        "ndcg@10": summary(test.per_user["ndcg@10"]),
        "recall@10": summary(test.per_user["recall@10"]),
    }


def layouts_arg(parser, value: str) -> list[tuple[int, int]]:
    try:
        pairs = [tuple(int(x) for x in part.split("x")) for part in value.split(",")]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        parser.error(f"--layouts must be PROCESSESxTHREADS pairs like 1x1,2x1; got {value!r}")
    return pairs


def table(results: dict) -> str:
    rows = [
        "| model (split) | processes x threads | s / epoch | epochs run (best) | NDCG@10 | "
        "Recall@10 |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for name, runs in results.items():
        for layout, r in runs.items():
            n, r10 = r["ndcg@10"], r["recall@10"]
            rows.append(
                f"| {name} ({SPLITS[name]}) | {layout} | {r['epoch_seconds']:.3f} | "
                f"{r['epochs_run']} ({r['best_epoch']}) | {n['mean']:.4f} "
                f"[{n['ci_low']:.4f}, {n['ci_high']:.4f}] | {r10['mean']:.4f} "
                f"[{r10['ci_low']:.4f}, {r10['ci_high']:.4f}] |"
            )
    return "\n".join(rows)


def main() -> None:
    from genrec.data import sources
    from genrec.evaluation.runner import library_versions

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="multvae,sasrec")
    p.add_argument("--layouts", default="1x1,1x2,2x1", help="PROCESSESxTHREADS, comma-separated")
    p.add_argument("--max-epochs", type=int, default=60, help="cap on each fit's epochs")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per run at most")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("GENREC_CACHE_DIR") or sources.default_cache_dir()),
    )
    args = p.parse_args()
    names = names_arg(p, args.models, SPLITS)
    layouts = layouts_arg(p, args.layouts)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources.load("ml-100k", cache_dir=args.cache_dir)  # fetched once, before the workers read it
    results: dict = {}
    loads = [load_average()]
    for name in names:
        for nproc, threads in layouts:
            print(f"{name} {nproc}x{threads} ...", file=sys.stderr, flush=True)
            ranks = distributed.launch(
                fit_and_evaluate,
                (name, str(args.cache_dir), args.max_epochs, threads),
                nproc=nproc,
                threads=threads,
                timeout_s=args.timeout,
            )
            results.setdefault(name, {})[f"{nproc}x{threads}"] = ranks[0]
            loads.append(load_average())
    versions = library_versions()
    busy = max(loads) > 1.5
    out = [
        "## Data-parallel training: 1 against 2 processes",
        "",
        f"Written by `python benchmarks/ddp.py --models {args.models} --layouts {args.layouts} "
        f"--max-epochs {args.max_epochs}` on {started}. "
        + machine_line(versions, loads).replace("; 1 thread;", ";"),
        "",
        "MovieLens-100K, each model's default config with at most "
        f"{args.max_epochs} epochs, early stopping on validation NDCG@10 (rank 0 validates, "
        f"the others follow), split seed {SPLIT_SEED}, training seed {SEED}; test metrics "
        "of the restored best epoch, full ranking, mean [bootstrap 95% interval]. "
        "`PxT`: P processes (`genrec.distributed.launch`, gloo on 127.0.0.1) of T torch threads "
        "each; every process shards each batch (same global batch size, gradients averaged "
        "by an all-reduce, weighted by each shard's loss terms). s / epoch: median training "
        "wall time of one epoch, validation excluded, one run per layout.",
        "",
        table(results),
        "",
        (
            "Measured under load (the 1-minute load average above exceeded the 2 cores: the "
            "machine was shared with other jobs), so the times say little about the speed-up "
            "on an idle machine; the quality columns are unaffected."
            if busy
            else "Measured on an otherwise idle machine."
        )
        + " On 2 cores a second process can at best halve the compute per step, and each step "
        "adds one all-reduce of every gradient: a model with a large gradient and little "
        "compute per batch (Mult-VAE: 1M weights, 4 steps an epoch) loses time, "
        "one with more compute per batch (SASRec) can gain. Two processes draw other dropout "
        "and negatives than one, so their early stopping can end at another epoch. Data "
        "parallelism pays on several machines or GPUs (docs/scale.md), where each process has "
        "its own compute.",
    ]
    write_section("ddp", "\n".join(out))
    saved = {"results": results, "versions": versions, "loads": loads, "started": started}
    atomic_write(ROOT / "benchmarks" / "results" / "ddp.json", json.dumps(saved, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
