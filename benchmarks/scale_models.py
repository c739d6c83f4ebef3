"""Models at scale: time and peak memory against data size for loading + splitting, every model's
fit and full-ranking evaluation; ANN candidate recall; an SVG plot.

For each size (interactions, users, items) the synthetic Parquet folder of
``genrec data synth interactions`` (:mod:`genrec.data.generator`: Zipf item popularity,
log-normal activity, sessions; seed 0) is written once under ``--data-root``. Every measurement
is a fresh Python process (one thread, ``nice`` as the caller, bounded by ``--timeout``) that
opens the data through the out-of-core path (:func:`genrec.data.scan.scan_dataset`, a DuckDB
build into memory-mapped arrays cached under ``--data-root``/cache) and splits it 0.8/0.1/0.1
(holdout, seed 2020). The first process of a size (``data``) only loads and splits: the first run
builds the cache, later runs (and every model's process) open it. A model row records the fit's
wall time, the process's CPU time during the fit (all its threads: on a shared machine the wall
time stretches, the CPU time much less), the process's peak RSS (VmHWM, data and split included)
and its RSS before the fit, or the error a model raised (EASE's refusal above the memory it may
use) or the timeout. A model not done in time at one size is not run at the larger ones. For
iALS the process also times full-ranking evaluation of up to ``--eval-users`` test users and
FAISS IVF-Flat and HNSW candidate generation on its item factors against exact search
(:func:`genrec.retrieval.candidates.recall_vs_exact`).

Writes benchmarks/results/scale_models.json, benchmarks/results/scale_models.svg and the
``scale-models`` section of BENCHMARKS.md after every size; one size at a time:

    nice -n 10 python benchmarks/scale_models.py --sizes 1000000:50000:10000 \\
        --data-root /work/wt/bigdata/scale/synth [--keep-other-sizes]

``--render`` rewrites the section and the plot from the JSON alone. ``--tune MODEL`` (ials or
bpr-implicit) instead runs the ML-100K validation grid behind that model's defaults and prints
every setting's valid NDCG@10, best first.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, load_average, write_section  # noqa: E402

MODELS = ("pop", "ials", "bpr-implicit", "ease", "multvae", "recvae", "sasrec")
CONFIGS = {  # multvae, recvae and sasrec: one epoch (time per epoch, not a converged model)
    "multvae": {"max_epochs": 1},
    "recvae": {"max_epochs": 1},  # one round: its encoder passes, then its decoder pass
    "sasrec": {"loss": "ce", "sampled_above": 0, "max_epochs": 1},  # sampled softmax at every size
}
RESULTS = ROOT / "benchmarks" / "results" / "scale_models.json"
PLOT = ROOT / "benchmarks" / "results" / "scale_models.svg"
SPLIT_SEED = 2020


def synth_folder(root: Path, n: int, n_users: int, n_items: int) -> Path:
    """The Parquet folder of ``genrec data synth interactions`` for this size (seed 0), written
    when missing."""
    from genrec.data.generator import InteractionWorld, write_interactions

    folder = root / f"s{n}-{n_users}-{n_items}"
    if not (folder / "manifest.json").exists():
        world = InteractionWorld(n_users=n_users, n_items=n_items, n_interactions=n, seed=0)
        write_interactions(folder, world, format="parquet")
    return folder


FIT_SCRIPT = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from genrec.build import build_model  # the libraries first: the RSS before a fit counts them
from genrec.data import scan
from genrec.data.splits import make_split
from genrec.errors import GenrecError
from genrec.options import RunOptions

folder, cache, name, config, eval_users, ann, split_seed = sys.argv[1:8]
eval_users = int(eval_users)

def rss(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field)) / 1024

libraries = rss("VmRSS:")
scans = Path(cache, "scans")
cached = set(scans.glob("*")) if scans.exists() else set()
start = time.perf_counter()
data = scan.scan_dataset(scan.parquet_folder(folder), cache_dir=cache)
loaded = time.perf_counter()
split = make_split(data, "holdout", seed=int(split_seed))
out = {"model": name, "rss_libraries_mb": libraries, "load_seconds": loaded - start,
       "split_seconds": time.perf_counter() - loaded, "rss_before_mb": rss("VmRSS:"),
       "peak_before_mb": rss("VmHWM:"), "users": data.n_users, "items": data.n_items,
       "train": len(split.train), "cache_built": bool(set(scans.glob("*")) - cached)}
if name == "data":
    print(json.dumps(out))
    sys.exit(0)

model = build_model(name, json.loads(config))
start, cpu = time.perf_counter(), time.process_time()
try:
    model.fit(split.train, options=RunOptions(seed=0, threads=1))
    out["fit_seconds"] = time.perf_counter() - start
    out["fit_cpu_seconds"] = time.process_time() - cpu
except GenrecError as exc:
    out["refused"] = f"{type(exc).__name__}: {exc}"
out["peak_mb"] = rss("VmHWM:")
if "fit_seconds" in out and eval_users:
    from genrec.evaluation.protocol import evaluate_split
    users = np.flatnonzero(np.diff(split.test.user_items.indptr) > 0)[:eval_users]
    start = time.perf_counter()
    ev = evaluate_split(model, split, "test", ks=(10,), metrics=("ndcg", "recall"), users=users)
    out["eval_seconds"] = time.perf_counter() - start
    out["eval_users"] = int(len(users))
    out["ndcg@10"], out["recall@10"] = ev.mean("ndcg@10"), ev.mean("recall@10")
    out["peak_after_eval_mb"] = rss("VmHWM:")
if "fit_seconds" in out and ann == "1":
    from genrec.retrieval.candidates import factor_embeddings, recall_vs_exact
    users = np.arange(min(2000, split.train.n_users))
    histories = split.train.user_items[users]
    user_vecs, item_vecs = factor_embeddings(model, histories, users=users)
    nlist = int(4 * data.n_items ** 0.5)  # about 4 sqrt(n) cells, FAISS's usual advice
    out["ann"] = recall_vs_exact(
        user_vecs, item_vecs, kind="ivf", build={"nlist": nlist},
        settings=[{"nprobe": p} for p in (1, 4, 16, 64)], k=10, exclude=histories
    ) + recall_vs_exact(
        user_vecs, item_vecs, kind="hnsw", build={"M": 32, "ef_construction": 80},
        settings=[{"ef_search": e} for e in (16, 64, 256)], k=10, exclude=histories
    )
print(json.dumps(out))
"""


def run_process(folder: Path, name: str, args) -> dict:
    """Load, split and (unless ``name`` is ``data``) fit ``name`` in a fresh process; its row."""
    is_ials = name == "ials"
    cmd = [
        sys.executable,
        "-c",
        FIT_SCRIPT,
        str(folder),
        str(args.data_root / "cache"),
        name,
        json.dumps(CONFIGS.get(name, {})),
        str(args.eval_users if is_ials else 0),
        "1" if is_ials else "0",
        str(SPLIT_SEED),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    load, start = load_average(), time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "timeout_seconds": args.timeout, "load": [load, load_average()]}
    if done.returncode != 0:
        return {"model": name, "error": done.stderr.strip().splitlines()[-1][:300]}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["process_seconds"] = time.perf_counter() - start
    row["load"] = [load, load_average()]
    return row


def measure_size(spec: str, args, earlier: list[dict], on_row=None) -> dict:
    """One size: the ``data`` process, then every model's (skipping those that timed out at a
    smaller size in ``earlier``); ``on_row(size)`` after each row (a stopped run keeps them)."""
    n, users, items = (int(x) for x in spec.split(":"))
    folder = synth_folder(args.data_root, n, users, items)
    size = {
        "interactions": n,
        "users": users,
        "items": items,
        "started": now(),
        "commit": commit(),
        "timeout": args.timeout,
        "rows": [],
    }
    for name in ("data", *args.models.split(",")):
        gave_up = [
            s["interactions"]
            for s in earlier
            if s["interactions"] < n
            for r in s["rows"]
            if r["model"] == name and "timeout_seconds" in r
        ]
        if gave_up:
            size["rows"].append({"model": name, "skipped_after_timeout_at": max(gave_up)})
            continue
        print(f"{n:,} interactions: {name} ...", file=sys.stderr, flush=True)
        size["rows"].append(run_process(folder, name, args))
        print(json.dumps(size["rows"][-1])[:400], file=sys.stderr, flush=True)
        if on_row:
            on_row(size)
    return size


def now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def versions() -> dict:
    import faiss
    import implicit

    from genrec.evaluation.runner import library_versions

    return {**library_versions(), "implicit": implicit.__version__, "faiss": faiss.__version__}


def fit_cell(row: dict) -> str:
    if "fit_seconds" in row:
        return (
            f"{row['fit_seconds']:,.1f} s ({row['fit_cpu_seconds']:,.1f} s CPU), "
            f"{row['peak_mb']:,.0f} MB"
        )
    if "refused" in row:
        return "refused (see below)"
    if "skipped_after_timeout_at" in row:
        return f"not run (not done at {row['skipped_after_timeout_at']:,})"
    if "timeout_seconds" in row:
        return f"not done in {row['timeout_seconds']} s"
    if row.get("not_run"):
        return "not run (the run was stopped before it)"
    if row.get("not_measured"):
        return "not measured (added by --update at other sizes)"
    return f"error: {row.get('error', '?')}"


def data_cell(row: dict) -> str:
    if "load_seconds" not in row:
        return fit_cell(row)
    how = "first run, cache built" if row["cache_built"] else "from the cache"
    return (
        f"{row['load_seconds']:,.1f} + {row['split_seconds']:,.1f} s ({how}), "
        f"{row['peak_before_mb']:,.0f} MB"
    )


def row_of(size: dict, name: str) -> dict:
    return next((r for r in size["rows"] if r["model"] == name), {"model": name, "not_run": True})


def markdown(result: dict) -> str:
    sizes = sorted(result["sizes"], key=lambda s: s["interactions"])
    head = "| model | " + " | ".join(size_label(s) for s in sizes) + " |"
    lines = [head, "| --- |" + " --- |" * len(sizes)]
    lines.append(
        "| load + split | " + " | ".join(data_cell(row_of(s, "data")) for s in sizes) + " |"
    )
    for name in result["models"]:
        lines.append(f"| {name} | " + " | ".join(fit_cell(row_of(s, name)) for s in sizes) + " |")
    lines.append(
        "| (RSS after load + split, before a fit) | "
        + " | ".join(
            f"{row_of(s, 'pop').get('rss_before_mb', float('nan')):,.0f} MB" for s in sizes
        )
        + " |"
    )
    lines.append(
        "| (of it: Python with torch, implicit and genrec imported, before any data) | "
        + " | ".join(
            f"{row_of(s, 'pop').get('rss_libraries_mb', float('nan')):,.0f} MB" for s in sizes
        )
        + " |"
    )
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
            anns += [ann_line(s, a) for a in r.get("ann", [])]
    v = result["versions"]
    timeouts = ", ".join(f"{s.get('timeout', '?')} s at {s['interactions']:,}" for s in sizes)
    runs = "; ".join(
        f"{s['interactions']:,}: {s['started']} at commit {s['commit']}, 1-minute load "
        "of each process "
        + "/".join(f"{r['load'][0]:.1f}" for r in s["rows"] if "load" in r)
        + "".join(
            f" ({r['model']} rerun {r['started']} at commit {r['commit']}, timeout "
            f"{r['timeout']} s)"
            for r in s["rows"]
            if "started" in r
        )
        for s in sizes
    )
    return "\n".join(
        [
            "## Models at scale",
            "",
            f"`{result['command']}` (one invocation per size, `nice -n 10`). Data: "
            "`genrec data synth interactions` (Zipf item popularity, log-normal activity, "
            "sessions; seed 0), loaded through the out-of-core path (DuckDB build into "
            "memory-mapped arrays, cached) and split holdout 0.8/0.1/0.1 (split seed 2020); "
            "training seed 0, one thread; every cell a fresh process with a timeout "
            f"({timeouts}); a model not done in time is not run at the larger sizes. multvae, "
            "recvae and sasrec run 1 epoch (time per epoch, not a converged model; sasrec with its "
            f"sampled softmax, `{json.dumps(CONFIGS['sasrec'])}`; multvae and recvae with their "
            f"default threshold, the full softmax up to {multvae_threshold():,} items and the "
            "sampled one above; recvae's epoch is one round: 2 encoder passes, the old encoder's "
            "refresh and 1 decoder pass); the others their defaults. Machine: "
            f"{v['cpu_count']} cores shared with other jobs, {v['platform']}, Python {v['python']}, "
            f"numpy {v['numpy']}, torch {v['torch']}, implicit {v['implicit']}, faiss {v['faiss']}. "
            f"Runs: {runs}. On a shared "
            "machine the wall times are upper bounds; the CPU time is what the fit itself took.",
            "",
            "Wall time (CPU time of the process during the fit) and the process's peak RSS, data "
            "and split included; `load + split` is the data process's load and split time and "
            "its peak. Plot: `benchmarks/results/scale_models.svg`.",
            "",
            *lines,
            "",
            *(["Refusals:", "", *refusals, ""] if refusals else []),
            "Full-ranking evaluation of iALS (test users of the split, ranked against every "
            "item, train and valid items excluded, one thread):",
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
            *([result["notes"]] if result.get("notes") else []),
        ]
    )


def multvae_threshold() -> int:
    """Mult-VAE's (and RecVAE's) default ``sampled_above``: above it a fit samples its
    softmax."""
    from genrec.models.interactions.multvae import MultVAEConfig
    from genrec.models.interactions.recvae import RecVAEConfig

    threshold = MultVAEConfig().sampled_above
    if RecVAEConfig().sampled_above != threshold:
        raise SystemExit("multvae and recvae sample above different sizes; describe both")
    return threshold


def size_label(s: dict) -> str:
    return f"{s['interactions']:,} ({s['users']:,} users x {s['items']:,} items)"


def ann_line(s: dict, a: dict) -> str:
    setting = (
        f"nprobe {a['nprobe']} (nlist {a['nlist']})"
        if a["kind"] == "ivf"
        else f"efSearch {a['ef_search']} (M {a['M']}, efConstruction {a['ef_construction']})"
    )
    return (
        f"| {s['items']:,} | {a['kind']} | {setting} | {a['recall']:.3f} | "
        f"{a['seconds'] * 1000 / 2000:.2f} ms | {a['exact_seconds'] * 1000 / 2000:.2f} ms | "
        f"{a['build_seconds']:.1f} s |"
    )


def series(result: dict) -> dict[str, list[tuple[int, float | None, float | None]]]:
    """name -> [(interactions, seconds or None, peak MB or None)]: None where not done in time
    (seconds = the timeout, marked) or not measured."""
    out: dict[str, list] = {}
    for s in sorted(result["sizes"], key=lambda s: s["interactions"]):
        n = s["interactions"]
        data = row_of(s, "data")
        if "load_seconds" in data:
            seconds = data["load_seconds"] + data["split_seconds"]
            out.setdefault("load + split", []).append((n, seconds, data["peak_before_mb"]))
        for name in result["models"]:
            r = row_of(s, name)
            if "fit_seconds" in r:
                out.setdefault(name, []).append((n, r["fit_seconds"], r["peak_mb"]))
            elif "timeout_seconds" in r:
                out.setdefault(name, []).append((n, -float(r["timeout_seconds"]), None))
            if "eval_seconds" in r:
                label = f"evaluation ({name}, {r['eval_users']:,} users)"
                out.setdefault(label, []).append((n, r["eval_seconds"], r["peak_after_eval_mb"]))
    return out


COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def plot_svg(result: dict) -> str:
    """Two log-log panels, time and peak RSS against interactions, one line per model; a fit not
    done in time is a cross at its timeout (time panel only)."""
    lines = series(result)
    ns = sorted({s["interactions"] for s in result["sizes"]})
    width, height, top, plot_w, plot_h = 980, 430, 40, 330, 300
    panels = [
        (70, "wall seconds (log)", 1),
        (70 + plot_w + 90, "peak RSS, MB (log)", 2),
    ]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="13">'
        "genrec at scale: time and peak memory against interactions (1 thread, shared machine)"
        "</text>",
    ]
    x_lo, x_hi = math.log10(min(ns)) - 0.1, math.log10(max(ns)) + 0.1
    for left, title, column in panels:
        values = [abs(p[column]) for pts in lines.values() for p in pts if p[column]]
        y_lo = math.floor(math.log10(max(min(values), 1e-3)))
        y_hi = math.ceil(math.log10(max(values)))
        px = lambda n: left + plot_w * (math.log10(n) - x_lo) / (x_hi - x_lo)  # noqa: E731
        py = lambda v: top + plot_h * (1 - (math.log10(v) - y_lo) / max(y_hi - y_lo, 1))  # noqa: E731
        out += axes(left, top, plot_w, plot_h, title, ns, px, range(y_lo, y_hi + 1), py)
        for colour, pts in zip(itertools.cycle(COLOURS), lines.values()):
            done = [(px(q[0]), py(q[column])) for q in pts if q[column] and q[column] > 0]
            if len(done) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in done)
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour}"/>')
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in done]
            if column == 1:
                for n, seconds, _ in pts:
                    if seconds is not None and seconds < 0:  # not done in -seconds
                        x, y = px(n), py(-seconds)
                        out.append(
                            f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" '
                            f'fill="{colour}" font-size="16" font-weight="bold">x</text>'
                        )
    for i, (colour, name) in enumerate(zip(itertools.cycle(COLOURS), lines)):
        x = 70 + (i % 4) * 225
        y = top + plot_h + 50 + 16 * (i // 4)
        out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{colour}"/>')
        out.append(f'<text x="{x + 22}" y="{y}" fill="{colour}">{name}</text>')
    out.append(
        f'<text x="70" y="{height - 8}" fill="grey">x: not done within the timeout (drawn at '
        "the timeout)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def axes(left, top, plot_w, plot_h, title, ns, px, decades, py) -> list[str]:
    """The frame, the interaction ticks and the powers-of-ten ticks of one panel."""
    out = [
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="black"/>',
        f'<text x="{left + plot_w / 2}" y="{top + plot_h + 30}" text-anchor="middle">'
        "interactions (log)</text>",
        f'<text x="{left - 45}" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {left - 45} {top + plot_h / 2})">{title}</text>',
    ]
    for n in ns:
        out.append(
            f'<text x="{px(n):.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
            f"{n / 1e6:g}M</text>"
        )
    for d in decades:
        y = py(10.0**d)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{10.0**d:g}</text>')
    return out


def update(res: dict, args) -> None:
    """``--update``: rerun ``--models`` at every size of ``--sizes`` already in ``res``,
    replacing only their rows (stamped with their own start time and commit); a model new to
    ``res`` is marked not measured at its other sizes."""
    for spec in args.sizes.split(","):
        n, users, items = (int(x) for x in spec.split(":"))
        size = next((s for s in res["sizes"] if s["interactions"] == n), None)
        if size is None:
            raise SystemExit(f"--update: no {n:,}-interaction size in {RESULTS}; measure it first")
        folder = synth_folder(args.data_root, n, users, items)
        for name in args.models.split(","):
            print(f"{n:,} interactions: {name} (update) ...", file=sys.stderr, flush=True)
            started = now()
            row = {**run_process(folder, name, args), "started": started, "commit": commit()}
            row["timeout"] = args.timeout
            size["rows"] = [r for r in size["rows"] if r["model"] != name] + [row]
            if name not in res["models"]:
                res["models"].append(name)
                for other in res["sizes"]:
                    if other is not size:
                        other["rows"].append({"model": name, "not_measured": True})
            write(res)


def write(res: dict) -> None:
    """Write the JSON, the plot and the section (after each size: a long run keeps what it
    measured)."""
    RESULTS.write_text(json.dumps(res, indent=1, default=float) + "\n")
    PLOT.write_text(plot_svg(res))
    write_section("scale-models", markdown(res))


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
    p = argparse.ArgumentParser()
    p.add_argument(
        "--sizes",
        default="1000000:50000:10000",
        help="comma-separated INTERACTIONS:USERS:ITEMS",
    )
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--eval-users", type=int, default=20_000)
    p.add_argument("--timeout", type=int, default=900, help="seconds per process")
    p.add_argument(
        "--data-root",
        type=Path,
        default=Path("/tmp/genrec-scale-models"),
        help="where the synthetic Parquet folders and the scan cache live",
    )
    p.add_argument(
        "--keep-other-sizes", action="store_true", help="keep the JSON's rows of other sizes"
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="measure only --models at each size and replace their rows in the JSON (the data "
        "row, other models and other sizes stay; each new row records its own run)",
    )
    p.add_argument("--render", action="store_true", help="rewrite section and plot from the JSON")
    p.add_argument("--tune", choices=("ials", "bpr-implicit"))
    p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("GENREC_CACHE_DIR", ".")))
    args = p.parse_args()
    if args.tune:
        tune(args.tune, args.cache_dir)
        return
    if args.render:
        write(json.loads(RESULTS.read_text()))
        return
    if args.update:
        update(json.loads(RESULTS.read_text()), args)
        return
    previous = json.loads(RESULTS.read_text()) if args.keep_other_sizes else {}
    sizes = previous.get("sizes", []) if previous.get("models") else []
    res = {
        "command": "python benchmarks/scale_models.py --sizes SIZE "
        + " ".join(a for a in sys.argv[1:] if ":" not in a and a not in ("--sizes",)),
        "models": args.models.split(","),
        "versions": versions(),
        "notes": previous.get("notes", ""),
    }
    for spec in args.sizes.split(","):
        n = int(spec.split(":")[0])
        sizes = [s for s in sizes if s["interactions"] != n]
        size = measure_size(
            spec, args, sizes, on_row=lambda x: write({**res, "sizes": [*sizes, x]})
        )
        sizes.append(size)
        write({**res, "sizes": sizes})
    print(markdown({**res, "sizes": sizes}))


if __name__ == "__main__":
    main()
