"""Write the foundation section of BENCHMARKS.md (and the README's table).

1. MovieLens-100K, per-user holdout 0.8/0.1/0.1 (seed 2020), full ranking, k = 10, 20: the four
   baselines with bootstrap intervals and paired tests, beside RecBole 1.2.1's numbers from
   ../shared/PEERS.md (measured on this machine). Fit times are medians of ``--repeats`` runs.
2. Evaluation throughput of a 64-factor dot-product scorer on 200k users x 50k items, against
   the machine's own matmul rate measured in the same run (see eval_speed.py).
3. ``make run`` from a fresh clone: wall time and the files it produced.

    python benchmarks/run_all.py [--repeats 3] [--skip-fresh-clone] [--eval-users 200000]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrec.build import model_class  # noqa: E402
from genrec.data import sources  # noqa: E402
from genrec.data.splits import holdout_split  # noqa: E402
from genrec.evaluation.runner import protocol_block, run_benchmark  # noqa: E402
from genrec.io import atomic_write  # noqa: E402
from genrec.options import RunOptions  # noqa: E402

from common import PEER_NAMES, fmt_ci, load_average, peer_rows, positive_int, write_section  # noqa: E402

MODELS = ["pop", "itemknn", "ease", "bpr"]
MARK_START, MARK_END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def ml100k_baselines(repeats: int, cache_dir: Path) -> tuple[dict, list[float]]:
    data = sources.load("ml-100k", cache_dir=cache_dir)
    split = holdout_split(data, (0.8, 0.1, 0.1), seed=2020)
    protocol = protocol_block(data, split)
    options = RunOptions(seed=2020, threads=1)
    runs, loads = [], []
    for _ in range(repeats):
        loads.append(load_average())
        factories = {m: model_class(m) for m in MODELS}
        runs.append(run_benchmark(split, factories, protocol=protocol, options=options))
    first = runs[0].to_dict()  # intervals and tests once; the repeats only add timings
    for i, r in enumerate(first["results"]):
        fits = [run.runs[i].fit_seconds for run in runs]
        r["fit_seconds_runs"], r["fit_seconds"] = fits, statistics.median(fits)
        r["deterministic"] = len({run.runs[i].evaluation.mean("ndcg@10") for run in runs}) == 1
    return first, loads


def fresh_clone_run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "genrec"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
        env["GENREC_CACHE_DIR"] = str(Path(tmp) / "cache")
        start = time.perf_counter()
        proc = subprocess.run(["make", "run"], cwd=clone, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        produced = (
            sorted(str(p.relative_to(clone)) for p in (clone / "reports").glob("*"))
            if (clone / "reports").exists()
            else []
        )
        return {
            "seconds": seconds,
            "exit_code": proc.returncode,
            "produced": produced,
            "tail": proc.stdout.strip().splitlines()[-8:]
            if proc.returncode == 0
            else proc.stderr.strip().splitlines()[-8:],
        }


def baseline_table(results: dict, peer_rows: dict) -> str:
    lines = [
        "| model | NDCG@10 | Recall@10 | MRR@10 | Hit@10 | NDCG@20 | Recall@20 | "
        "RecBole NDCG@10 / Recall@10 | fit s (median) | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results["results"]:
        m, peer = r["metrics"], peer_rows.get(PEER_NAMES[r["model"]])
        sig = r["significance"]["ndcg@10"]
        mark = " ▲" if sig["best"] else (" *" if sig["significant"] else "")
        peer_cell = f"{peer['ndcg@10']:.4f} / {peer['recall@10']:.4f}" if peer else "-"
        lines.append(
            f"| {r['model']} | {fmt_ci(m['ndcg@10'])}{mark} | {fmt_ci(m['recall@10'])} | "
            f"{fmt_ci(m['mrr@10'])} | {fmt_ci(m['hit@10'])} | {fmt_ci(m['ndcg@20'])} | "
            f"{fmt_ci(m['recall@20'])} | {peer_cell} | {r['fit_seconds']:.2f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--eval-users", type=int, default=200_000)
    p.add_argument("--eval-items", type=int, default=50_000)
    p.add_argument("--skip-fresh-clone", action="store_true")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("GENREC_CACHE_DIR", sources.default_cache_dir())),
    )
    args = p.parse_args()
    import eval_speed

    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print("ML-100K baselines ...", file=sys.stderr)
    results, loads = ml100k_baselines(args.repeats, args.cache_dir)
    print("evaluation throughput ...", file=sys.stderr)
    speed = eval_speed.measure(args.eval_users, args.eval_items, repeats=args.repeats, threads=1)
    clone = (
        None
        if args.skip_fresh_clone
        else (print("make run in a fresh clone ...", file=sys.stderr) or fresh_clone_run())
    )
    table = baseline_table(results, peer_rows())
    versions = results["versions"]
    out = [
        "## Foundation: baselines, evaluation speed, `make run`",
        "",
        f"Written by `python benchmarks/run_all.py` (`make benchmarks`) on {started}. Machine: "
        f"{versions['cpu_count']} cores, {versions['platform']}, Python {versions['python']}, "
        f"torch {versions['torch']}, numpy {versions['numpy']}, scipy {versions['scipy']}, "
        f"genrec {versions['genrec']}. Every timing uses 1 thread; 1-minute load average at the "
        f"start of each repeat: {', '.join(f'{x:.2f}' for x in loads)}.",
        "",
        "### MovieLens-100K, per-user holdout 0.8/0.1/0.1, full ranking",
        "",
        "Protocol as in ../shared/PEERS.md: every interaction a positive, split seed 2020 "
        "(RecBole's per-user rounding; our own shuffle, so the split differs from RecBole's), "
        "train items excluded at validation, train + valid at test, early stopping on valid "
        "NDCG@10 where a model has epochs. Valid/test interactions of items never seen in train "
        f"are dropped ({json.dumps(results['protocol']['split_info'].get('dropped'))}). Cells: "
        "mean over test users [bootstrap 95% interval]; ▲ best, * significantly worse than the "
        "best on NDCG@10 (paired t-test and Wilcoxon, Holm-corrected). RecBole columns are its "
        f"numbers on its own split of the same data. Fit time: median of {args.repeats} runs.",
        "",
        table,
        "",
        "Configs: "
        + "; ".join(f"`{r['model']}` {json.dumps(r['config'])}" for r in results["results"]),
        "",
        "Same metrics across repeats (deterministic): "
        + ", ".join(
            f"{r['model']} {'yes' if r['deterministic'] else 'NO'}" for r in results["results"]
        ),
        "",
        "### Evaluation throughput",
        "",
        f"A {speed['dim']}-factor dot-product scorer on {speed['users']:,} users x "
        f"{speed['items']:,} items ({speed['evaluated_users']:,} with test items), batch "
        f"{speed['batch_size']}, ranking metrics at 10 and 20, 1 thread, median of "
        f"{speed['repeats']} runs:",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| genrec full-ranking evaluation | {speed['eval_users_per_s']:,.0f} users/s "
        f"({speed['eval_seconds']:.1f} s) |",
        f"| bare matmul producing the same scores | {speed['matmul_users_per_s']:,.0f} users/s "
        f"({speed['matmul_seconds']:.1f} s) |",
        f"| ratio (goal >= 0.8) | {speed['ratio']:.2f} |",
        f"| peak RSS during evaluation | {speed['peak_rss_mb']:,.0f} MB (a dense score matrix "
        f"would be {speed['dense_scores_mb_if_unbatched']:,.0f} MB) |",
        "",
    ]
    if clone:
        out += [
            "### `make run` from a fresh clone",
            "",
            f"Exit code {clone['exit_code']}, wall time {clone['seconds']:.0f} s (includes "
            "creating .venv and installing torch and the other dependencies, fetching "
            "MovieLens-100K from the recbole wheel on PyPI, and the benchmark). Produced: "
            + ", ".join(f"`{x}`" for x in clone["produced"])
            + ".",
            "",
        ]
    write_section("foundation", "\n".join(out))
    atomic_write(
        ROOT / "benchmarks" / "results" / "ml-100k-holdout.json",
        json.dumps(results, indent=2, default=str),
    )
    readme = (ROOT / "README.md").read_text()
    if MARK_START in readme:
        head, rest = readme.split(MARK_START, 1)
        tail = rest.split(MARK_END, 1)[1]
        readme = (
            head + MARK_START + "\n" + table + "\n\nGenerated by `make benchmarks`; "
            "details, machine and versions in [BENCHMARKS.md](BENCHMARKS.md).\n" + MARK_END + tail
        )
        atomic_write(ROOT / "README.md", readme)
    print((ROOT / "BENCHMARKS.md").read_text())


if __name__ == "__main__":
    main()
