"""Models at scale: fit time and peak memory against data size, evaluation time, ANN recall.

For each size (interactions, users, items) a synthetic power-law log from
:mod:`genrec.data.generator` (the data behind ``genrec data synth interactions``) is generated
once and cached as arrays under ``--work``; then every model is fitted, each in a fresh Python
process (one thread, bounded by ``--timeout``), on the 0.8/0.1/0.1 holdout split of that log.
A row records the fit's wall time, the process's peak RSS (VmHWM, data and split included) and
its RSS before the fit (the data alone), or the error a model raised (EASE's refusal above the
memory it may use) or the timeout. For iALS it also times full-ranking evaluation of up to
``--eval-users`` test users and measures FAISS IVF-Flat and HNSW candidate generation on the
fitted item factors against exact search (:func:`genrec.retrieval.candidates.recall_vs_exact`).

Rewrites the ``scale-models`` section of BENCHMARKS.md and benchmarks/results/scale_models.json.

    nice -n 10 python benchmarks/scale_models.py --sizes 1000000:50000:10000,4000000:200000:50000

``--tune MODEL`` (ials or bpr-implicit) instead runs the ML-100K validation grid behind that
model's defaults and prints every setting's valid NDCG@10, best first.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, load_average, write_section  # noqa: E402

MODELS = ("pop", "ials", "bpr-implicit", "ease", "multvae")
CONFIGS = {"multvae": {"max_epochs": 1}}  # time per epoch, not a converged model


def generate(n_interactions: int, n_users: int, n_items: int, folder: Path, seed: int) -> Path:
    """Cache the log of this size as ``user.npy``, ``item.npy``, ``time.npy`` in ``folder``."""
    from genrec.data.generator import InteractionWorld, interaction_blocks

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "time.npy").exists():
        return folder
    world = InteractionWorld(
        n_users=n_users, n_items=n_items, n_interactions=n_interactions, seed=seed
    )
    blocks = list(interaction_blocks(world))
    for name, field in (("user", "user_id"), ("item", "item_id"), ("time", "timestamp")):
        np.save(folder / f"{name}.npy", np.concatenate([getattr(b, field) for b in blocks]) - 0)
    return folder


FIT_SCRIPT = r"""
import json, sys, time
import numpy as np
from genrec.build import build_model
from genrec.data import Dataset, Vocabulary
from genrec.data.splits import holdout_split
from genrec.options import RunOptions
from genrec.errors import GenrecError

folder, name, config, n_users, n_items, eval_users, ann = sys.argv[1:8]
n_users, n_items, eval_users = int(n_users), int(n_items), int(eval_users)

def rss(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field)) / 1024

u, i, t = (np.load(f"{folder}/{x}.npy") for x in ("user", "item", "time"))
data = Dataset(Vocabulary(np.arange(1, n_users + 1), kind="user"),
               Vocabulary(np.arange(1, n_items + 1), kind="item"), u - 1, i - 1, timestamp=t)
split = holdout_split(data, seed=2020)
del u, i, t
out = {"model": name, "rss_before_mb": rss("VmRSS:")}
model = build_model(name, json.loads(config))
start = time.perf_counter()
try:
    model.fit(split.train, options=RunOptions(seed=0, threads=1))
    out["fit_seconds"] = time.perf_counter() - start
except GenrecError as exc:
    out["refused"] = f"{type(exc).__name__}: {exc}"
out["peak_mb"] = rss("VmHWM:")
if "fit_seconds" in out and eval_users:
    from genrec.evaluation.protocol import evaluate
    users = np.flatnonzero(np.diff(split.test.user_items.indptr) > 0)[:eval_users]
    start = time.perf_counter()
    ev = evaluate(model, split.train, split.test, ks=(10,), metrics=("ndcg", "recall"),
                  users=users)
    out["eval_seconds"] = time.perf_counter() - start
    out["eval_users"] = int(len(users))
    out["ndcg@10"], out["recall@10"] = ev.mean("ndcg@10"), ev.mean("recall@10")
    out["peak_after_eval_mb"] = rss("VmHWM:")
if "fit_seconds" in out and ann == "1":
    from genrec.retrieval.candidates import factor_embeddings, recall_vs_exact
    users = np.arange(min(2000, split.train.n_users))
    histories = split.train.user_items[users]
    user_vecs, item_vecs = factor_embeddings(model, histories, users=users)
    nlist = int(4 * n_items ** 0.5)  # about 4 sqrt(n) cells, FAISS's usual advice
    out["ann"] = recall_vs_exact(
        user_vecs, item_vecs, kind="ivf", build={"nlist": nlist},
        settings=[{"nprobe": p} for p in (1, 4, 16, 64)], k=10, exclude=histories
    ) + recall_vs_exact(
        user_vecs, item_vecs, kind="hnsw", build={"M": 32, "ef_construction": 80},
        settings=[{"ef_search": e} for e in (16, 64, 256)], k=10, exclude=histories
    )
print(json.dumps(out))
"""


def run_model(folder: Path, size: dict, name: str, args) -> dict:
    """Fit ``name`` on the cached log in a fresh process; the row of the table."""
    is_ials = name == "ials"
    cmd = [
        sys.executable,
        "-c",
        FIT_SCRIPT,
        str(folder),
        name,
        json.dumps(CONFIGS.get(name, {})),
        str(size["users"]),
        str(size["items"]),
        str(args.eval_users if is_ials else 0),
        "1" if is_ials else "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "timeout_seconds": args.timeout}
    if done.returncode != 0:
        return {"model": name, "error": done.stderr.strip().splitlines()[-1][:300]}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["process_seconds"] = time.perf_counter() - start
    return row


def fit_cell(row: dict) -> str:
    if "fit_seconds" in row:
        return f"{row['fit_seconds']:.1f} s, {row['peak_mb']:,.0f} MB"
    if "refused" in row:
        return "refused (see below)"
    if "skipped" in row:
        return f"not run (only up to {row['skipped']:,} interactions)"
    if "timeout_seconds" in row:
        return f"not done in {row['timeout_seconds']} s"
    return f"error: {row.get('error', '?')}"


def markdown(result: dict) -> str:
    sizes = result["sizes"]
    head = (
        "| model | "
        + " | ".join(
            f"{s['interactions']:,} ({s['users']:,} users x {s['items']:,} items)" for s in sizes
        )
        + " |"
    )
    lines = [head, "| --- |" + " --- |" * len(sizes)]
    for name in result["models"]:
        cells = [fit_cell(next(r for r in s["rows"] if r["model"] == name)) for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    data_row = [f"{s['rows'][0].get('rss_before_mb', float('nan')):,.0f} MB" for s in sizes]
    lines.append("| (data + split alone, RSS before fit) | " + " | ".join(data_row) + " |")
    evals, anns, refusals = [], [], []
    for s in sizes:
        for r in s["rows"]:
            if "refused" in r:
                refusals.append(f"- {s['interactions']:,}: `{r['refused']}`")
            if "eval_seconds" in r:
                evals.append(
                    f"| {s['interactions']:,} | {r['eval_users']:,} | {r['eval_seconds']:.1f} s "
                    f"({r['eval_users'] / r['eval_seconds']:,.0f} users/s) | "
                    f"{r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['peak_after_eval_mb']:,.0f} MB |"
                )
            for a in r.get("ann", []):
                setting = (
                    f"nprobe {a['nprobe']} (nlist {a['nlist']})"
                    if a["kind"] == "ivf"
                    else f"efSearch {a['ef_search']} (M {a['M']}, efConstruction {a['ef_construction']})"
                )
                anns.append(
                    f"| {s['items']:,} | {a['kind']} | {setting} | {a['recall']:.3f} | "
                    f"{a['seconds'] * 1000 / 2000:.2f} ms | {a['exact_seconds'] * 1000 / 2000:.2f} ms | "
                    f"{a['build_seconds']:.1f} s |"
                )
    versions = result["versions"]
    return "\n".join(
        [
            "## Models at scale",
            "",
            f"`{result['command']}`, run {result['started']}. Synthetic power-law logs "
            "(genrec.data.generator: Zipf item popularity, log-normal activity), holdout "
            "0.8/0.1/0.1 (split seed 2020), training seed 0, one thread, each fit in a fresh "
            f"process (timeout {result['timeout']} s). Machine: {versions['cpu_count']} cores, "
            f"{versions['platform']}, Python {versions['python']}, numpy {versions['numpy']}, "
            f"implicit {versions['implicit']}, faiss {versions['faiss']}; 1-minute load average "
            f"before/after: {result['load'][0]:.1f} / {result['load'][1]:.1f} (a shared machine: "
            "wall times are upper bounds). multvae runs 1 epoch (time per epoch, not a "
            "converged model); the others their defaults.",
            "",
            "Fit wall time and the fitting process's peak RSS (data and split included):",
            "",
            *lines,
            "",
            *(["EASE's refusal:", "", *refusals, ""] if refusals else []),
            "Full-ranking evaluation of iALS (test users of the split, ranked against every "
            "item, seen items excluded):",
            "",
            "| interactions | users | time | NDCG@10 | Recall@10 | process peak RSS |",
            "| --- | --- | --- | --- | --- | --- |",
            *evals,
            "",
            "Candidate generation on iALS's item factors: recall@10 of the index's top-10 unseen "
            "items against exact search, for 2,000 users; time per user (FAISS, one thread) "
            "beside exact numpy search:",
            "",
            "| items | index | setting | recall@10 | per user | exact per user | build |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *anns,
        ]
    )


def measure(args, on_size=None) -> dict:
    sizes = []
    load_before = load_average()
    for spec in args.sizes.split(","):
        n, users, items = (int(x) for x in spec.split(":"))
        folder = generate(n, users, items, args.work / f"log-{n}", seed=0)
        size = {"interactions": n, "users": users, "items": items, "rows": []}
        for name in args.models.split(","):
            if n > args.max_interactions.get(name, n):
                size["rows"].append({"model": name, "skipped": args.max_interactions[name]})
                continue
            print(f"{n:,} interactions: {name} ...", file=sys.stderr, flush=True)
            size["rows"].append(run_model(folder, size, name, args))
            print(json.dumps(size["rows"][-1])[:400], file=sys.stderr, flush=True)
        sizes.append(size)
        if on_size:
            on_size(result(args, sizes, load_before))
    return result(args, sizes, load_before)


def result(args, sizes: list, load_before: float) -> dict:
    import faiss
    import implicit

    from genrec.evaluation.runner import library_versions

    versions = {**library_versions(), "implicit": implicit.__version__, "faiss": faiss.__version__}
    return {
        "command": "python benchmarks/scale_models.py " + " ".join(sys.argv[1:]),
        "started": args.started,
        "sizes": sizes,
        "models": args.models.split(","),
        "timeout": args.timeout,
        "load": [load_before, load_average()],
        "versions": versions,
    }


def tune(name: str, cache_dir: Path) -> None:
    """The ML-100K validation grid behind ``name``'s defaults, printed best first."""
    from genrec.data.sources import load_dataset
    from genrec.data.splits import holdout_split
    from genrec.evaluation.protocol import validation_ndcg
    from genrec.models import MODELS
    from genrec.options import RunOptions

    grids = {
        "ials": [
            dict(
                dim=[32, 64, 128],
                reg=[0.01, 1.0, 10.0, 50.0, 100.0],
                alpha=[1.0, 5.0, 10.0, 20.0, 40.0],
                iterations=[15],
            ),
            dict(
                dim=[64, 128, 256],
                reg=[25.0, 50.0, 100.0, 200.0],
                alpha=[5.0, 10.0, 20.0],
                iterations=[15, 30],
            ),
        ],
        "bpr-implicit": [
            dict(
                dim=[32, 64, 128],
                lr=[0.005, 0.01, 0.05, 0.1],
                reg=[1e-4, 1e-3, 0.01, 0.1],
                iterations=[100],
            ),
            dict(dim=[64], lr=[0.001, 0.002, 0.005], reg=[1e-4, 1e-3], iterations=[100, 200, 400]),
        ],
    }
    data, _ = load_dataset("ml-100k", cache_dir=cache_dir, progress=False)
    split = holdout_split(data, seed=2020)
    rows = []
    for grid in grids[name]:
        for values in itertools.product(*grid.values()):
            config = dict(zip(grid, values))
            model = MODELS[name](config).fit(split.train, options=RunOptions(seed=42, threads=1))
            rows.append((validation_ndcg(model, split.train, split.valid), config))
            print(f"{rows[-1][0]:.4f} {config}", file=sys.stderr, flush=True)
    for ndcg, config in sorted(rows, key=lambda r: -r[0]):
        print(f"{ndcg:.4f} {json.dumps(config)}")


def main() -> None:
    from datetime import datetime, timezone

    p = argparse.ArgumentParser()
    p.add_argument(
        "--sizes",
        default="1000000:50000:10000,4000000:200000:50000",
        help="comma-separated INTERACTIONS:USERS:ITEMS",
    )
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--eval-users", type=int, default=20_000)
    p.add_argument("--timeout", type=int, default=900, help="seconds per fit process")
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/genrec-scale-models"),
        help="where the generated logs are cached",
    )
    p.add_argument("--tune", choices=("ials", "bpr-implicit"))
    p.add_argument(
        "--max-interactions",
        default="multvae:1000000",
        help="MODEL:N,... run MODEL only on sizes up to N interactions",
    )
    p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("GENREC_CACHE_DIR", ".")))
    args = p.parse_args()
    if args.tune:
        tune(args.tune, args.cache_dir)
        return
    args.started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.max_interactions = {
        k: int(v) for k, v in (x.split(":") for x in args.max_interactions.split(",") if x)
    }
    print(markdown(measure(args, on_size=write)))


def write(res: dict) -> None:
    """Write the results so far (after each size: a long run keeps what it measured)."""
    out = ROOT / "benchmarks" / "results" / "scale_models.json"
    out.write_text(json.dumps(res, indent=2, default=float) + "\n")
    write_section("scale-models", markdown(res))


if __name__ == "__main__":
    main()
