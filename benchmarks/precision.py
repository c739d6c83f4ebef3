"""bfloat16 autocast on the CPU: SASRec's epoch time and NDCG@10 with ``RunOptions(precision=
"float32")`` and ``precision="bfloat16"`` on ML-100K (leave-one-out).

Writes the ``precision`` section of BENCHMARKS.md and ``benchmarks/results/precision.json``.
Each run is a fresh process on 1 thread, with a fixed number of epochs and no validation, so
both precisions do the same work; the runs alternate (float32, bfloat16, float32, ...) so that
a change in the machine's load hits both. This decides whether genrec's CPU default stays
float32 (docs/scale.md).

    nice -n 10 python benchmarks/precision.py --cache-dir "$GENREC_CACHE_DIR"
"""

from __future__ import annotations

import argparse
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
RESULTS = ROOT / "benchmarks" / "results" / "precision.json"


def child(precision: str, epochs: int, cache_dir: str) -> dict:
    from genrec.data import sources
    from genrec.data.splits import make_split
    from genrec.evaluation.protocol import evaluate_split
    from genrec.models import SASRec
    from genrec.options import RunOptions

    split = make_split(sources.load("ml-100k", cache_dir=cache_dir), "loo", seed=SPLIT_SEED)
    options = RunOptions(seed=SEED, threads=1, precision=precision)
    load_before = load_average()
    start = time.perf_counter()
    model = SASRec(max_epochs=epochs).fit(split.train, options=options)
    seconds = time.perf_counter() - start
    with options.capped_threads():
        evaluation = evaluate_split(model, split, "test", ks=(10,))
    return {
        "precision": precision,
        "epochs": epochs,
        "fit_seconds": seconds,
        "seconds_per_epoch": seconds / epochs,
        "ndcg@10": evaluation.mean("ndcg@10"),
        "final_loss": model.loss_history_[-1],
        "load_before": load_before,
        "load_after": load_average(),
    }


def run_child(precision: str, epochs: int, cache_dir: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", precision, "--epochs", str(epochs)]
        + ["--cache-dir", str(cache_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{precision} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def section(res: dict) -> str:
    rows = res["rows"]
    loads = [r[k] for r in rows for k in ("load_before", "load_after")]
    by = {p: [r for r in rows if r["precision"] == p] for p in ("float32", "bfloat16")}
    med = {p: statistics.median(r["seconds_per_epoch"] for r in rs) for p, rs in by.items()}
    out = [
        "## bfloat16 autocast on the CPU (SASRec)",
        "",
        f"Script: `benchmarks/precision.py` ({res['started']}). SASRec (defaults) on ML-100K "
        f"leave-one-out, split seed {SPLIT_SEED}, training seed {SEED}, {res['epochs']} epochs "
        "without validation, 1 thread; each run a fresh process, the precisions alternating.",
        "",
        machine_line(res["versions"], loads),
        "",
        *(
            [
                "**Measured under load** (other jobs shared the 2 cores; load averages in the "
                "table): the epoch times carry that noise, the NDCG@10 values do not.",
                "",
            ]
            if statistics.median(loads) > 1.0
            else []
        ),
        "| precision | run | s / epoch | NDCG@10 (test) | final loss | load before / after |",
        "|---|---|---|---|---|---|",
    ]
    for p, rs in by.items():
        for i, r in enumerate(rs, 1):
            out.append(
                f"| {p} | {i} | {r['seconds_per_epoch']:.2f} | {r['ndcg@10']:.4f} | "
                f"{r['final_loss']:.4f} | {r['load_before']:.2f} / {r['load_after']:.2f} |"
            )
    speedup = med["float32"] / med["bfloat16"]
    gap = by["bfloat16"][0]["ndcg@10"] - by["float32"][0]["ndcg@10"]
    out += [
        "",
        f"Median epoch time: float32 {med['float32']:.2f} s, bfloat16 {med['bfloat16']:.2f} s "
        f"({speedup:.2f}x). NDCG@10 differs by {gap:+.4f} after {res['epochs']} epochs (one "
        "training seed; the same seed gives the same number on every run of a precision). "
        "Decision: the CPU default stays float32, the arithmetic every published number here "
        "was made with and bit-reproducible for a seed and thread count; `--precision "
        'bfloat16` (`RunOptions(precision="bfloat16")`) is there for CPUs with BF16 '
        "instructions. On CUDA the default (`auto`) uses mixed precision.",
    ]
    return "\n".join(out)


def main() -> None:
    from genrec.data import sources
    from genrec.evaluation.runner import library_versions

    p = argparse.ArgumentParser()
    p.add_argument("--cache-dir", type=Path, default=sources.default_cache_dir())
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--child", choices=("float32", "bfloat16"))
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs, str(args.cache_dir))))
        return
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for _ in range(args.repeats):
        for precision in ("float32", "bfloat16"):
            print(f"{precision} ...", file=sys.stderr)
            rows.append(run_child(precision, args.epochs, args.cache_dir))
    res = {"started": started, "epochs": args.epochs, "rows": rows, "versions": library_versions()}
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    write_section("precision", section(res))


if __name__ == "__main__":
    main()
