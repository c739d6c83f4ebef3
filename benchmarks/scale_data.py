"""Loading and splitting at scale: time and peak memory of the out-of-core path (DuckDB scan,
memory-mapped cache) against the in-memory pandas path, at 1M, 4M and 20M interactions.

Each measurement runs in a fresh Python process; its peak resident memory is the process's own
``VmHWM`` (read from /proc at its end). The data is written
once per size by ``genrec data synth interactions`` (:mod:`genrec.data.generator`: Parquet parts +
``items.parquet``, power-law item popularity, log-normal user activity, sessions) into
``--data-root`` (never committed).

    python benchmarks/scale_data.py --data-root /work/wt/bigdata/outofcore \\
        [--sizes 1m,4m,20m] [--pandas-sizes 1m,4m]

Writes benchmarks/results/scale_data.json and the ``data`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, load_average, write_section  # noqa: E402

SIZES = {  # name -> (interactions, users, items)
    "1m": (1_000_000, 50_000, 20_000),
    "4m": (4_000_000, 200_000, 40_000),
    "20m": (20_000_000, 1_000_000, 50_000),
}
SEED = 0
SPLIT_SEED = 2020
RESULTS = ROOT / "benchmarks" / "results" / "scale_data.json"
CHILD = """
import json, os, sys, threading, time
from pathlib import Path

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
own_peak = [0.0]


def watch_own_memory():  # resident minus file-backed pages, sampled every 2 ms
    while True:
        with open("/proc/self/statm") as f:
            _, resident, shared = map(int, f.read().split()[:3])
        own_peak[0] = max(own_peak[0], (resident - shared) * PAGE_MB)
        time.sleep(0.002)


threading.Thread(target=watch_own_memory, daemon=True).start()
from genrec.data import scan
from genrec.data.splits import make_split


def memory():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile")}


folder, engine, cache = sys.argv[1:4]
source = scan.parquet_folder(folder)
start = time.perf_counter()
if engine == "duckdb":
    data = scan.scan_dataset(source, cache_dir=cache)
else:
    data = scan.read_in_memory(source)
loaded = time.perf_counter()
after_load, load_own = memory(), own_peak[0]
split = make_split(data, "holdout", seed=int(sys.argv[4]))
done = time.perf_counter()
end = memory()
print(json.dumps({"load_s": loaded - start, "split_s": done - loaded, "total_s": done - start,
                  "load_peak_mb": after_load["VmHWM"], "load_anon_mb": after_load["RssAnon"],
                  "load_file_mb": after_load["RssFile"], "peak_mb": end["VmHWM"],
                  "load_own_peak_mb": load_own, "own_peak_mb": own_peak[0],
                  "end_anon_mb": end["RssAnon"], "end_file_mb": end["RssFile"],
                  "interactions": len(data), "users": data.n_users,
                  "items": data.n_items, "train": len(split.train), "test": len(split.test)}))
"""


def write_world(folder: Path, n: int, n_users: int, n_items: int) -> Path:
    """The synthetic Parquet folder of ``genrec data synth interactions`` (seed :data:`SEED`)."""
    from genrec.data.generator import InteractionWorld, write_interactions

    world = InteractionWorld(n_users=n_users, n_items=n_items, n_interactions=n, seed=SEED)
    return write_interactions(folder, world, format="parquet")


def measure_load(folder: Path, engine: str, cache: Path, *, cap_mb: float | None = None) -> dict:
    """One load + split in a fresh process; with ``cap_mb``, inside a memory cgroup of that
    limit (:func:`memory_cap`), the result then also saying whether it finished."""
    argv = [sys.executable, "-c", CHILD, str(folder), engine, str(cache), str(SPLIT_SEED)]
    start = time.perf_counter()
    if cap_mb is None:
        done = subprocess.run(argv, capture_output=True, text=True)
        capped = {}
    else:
        with memory_cap(cap_mb) as (join, usage):
            done = subprocess.run(argv, capture_output=True, text=True, preexec_fn=join)
            capped = {"cap_mb": cap_mb, **usage()}
    wall = time.perf_counter() - start
    if done.returncode:
        if cap_mb is not None:
            return {**capped, "finished": False, "returncode": done.returncode, "wall_s": wall}
        raise RuntimeError(f"loading {folder} with {engine} failed:\n{done.stderr[-2000:]}")
    row = {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall}
    return {**row, **capped, "finished": True} if capped else row


@contextlib.contextmanager
def memory_cap(limit_mb: float):
    """A fresh memory cgroup (v1 or v2) below this process's own, limited to ``limit_mb`` of
    memory (page cache included, which the kernel reclaims under the limit; no swap on this
    machine): yields ``(join, usage)``, ``join`` putting the calling process into it (a
    ``preexec_fn``) and ``usage()`` its peak usage and how often the limit was hit. Raises
    OSError where no memory cgroup is writable."""
    groups = Path("/proc/self/cgroup").read_text().splitlines()
    v1 = next((line for line in groups if ":memory:" in line), None)  # a v1 memory hierarchy
    if v1 is not None:
        parent = Path("/sys/fs/cgroup/memory") / v1.split(":", 2)[2].lstrip("/")
        limit, peak, hits = "memory.limit_in_bytes", "memory.max_usage_in_bytes", "memory.failcnt"
    else:  # v2: the unified hierarchy's "0::/path" line
        parent = Path("/sys/fs/cgroup") / groups[-1].split("::", 1)[1].lstrip("/")
        limit, peak, hits = "memory.max", "memory.peak", None
    group = parent / f"genrec-scale-cap-{os.getpid()}"
    group.mkdir()
    try:
        (group / limit).write_text(str(int(limit_mb * 2**20)))
        procs = str(group / "cgroup.procs")

        def join():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        def usage() -> dict:
            out = {"cgroup_peak_mb": int((group / peak).read_text()) / 2**20}
            if hits:
                out["limit_hits"] = int((group / hits).read_text())
            return out

        yield join, usage
    finally:
        group.rmdir()


def measure_info(folder: Path, cache: Path) -> dict:
    """Time and peak memory (the process's ``VmHWM``) of ``genrec data info FOLDER --engine
    duckdb`` in a fresh process."""
    script = (
        "import sys\nfrom genrec.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "print('PEAK_KB', status, file=sys.stderr); sys.exit(code)"
    )
    env = {**os.environ, "GENREC_CACHE_DIR": str(cache)}
    argv = [sys.executable, "-c", script, "data", "info", str(folder), "--engine", "duckdb"]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"data info failed:\n{done.stderr[-2000:]}")
    peak_kb = int(done.stderr.split("PEAK_KB")[1].split()[0])
    return {"wall_s": wall, "peak_mb": peak_kb / 1024, "stats": json.loads(done.stdout)}


def folder_mb(folder: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in folder.glob(pattern)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, required=True, help="where the data is written")
    parser.add_argument("--sizes", default="1m,4m,20m", help=f"of {', '.join(SIZES)}")
    parser.add_argument("--pandas-sizes", default="1m,4m", help="sizes also read with pandas")
    parser.add_argument("--info-size", default="4m", help="size of the `data info` run")
    parser.add_argument(
        "--capped-sizes",
        default="20m",
        help="sizes whose DuckDB runs are repeated inside a memory cgroup limited to "
        "--cap-ratio times the text size ('' for none)",
    )
    parser.add_argument("--cap-ratio", type=float, default=0.9, help="the cap / text size")
    parser.add_argument(
        "--keep-other-sizes",
        action="store_true",
        help="keep the rows (and the data info run) of sizes not measured now from "
        "benchmarks/results/scale_data.json; each row shows its own load average",
    )
    parser.add_argument(
        "--publish-only",
        action="store_true",
        help="rewrite the BENCHMARKS.md section from benchmarks/results/scale_data.json",
    )
    args = parser.parse_args()
    if args.publish_only:
        write_markdown(json.loads(RESULTS.read_text()))
        return
    rows, loads, capped = [], [], []
    for size in args.sizes.split(","):
        n, n_users, n_items = SIZES[size]
        folder = args.data_root / f"s{size}"
        if not (folder / "manifest.json").is_file():
            write_world(folder, n, n_users, n_items)
        cache = args.data_root / f"cache-{size}"
        shutil.rmtree(cache, ignore_errors=True)
        parquet_mb = folder_mb(folder / "interactions", "*.parquet")
        text_mb = csv_equivalent_mb(folder)
        runs = [("duckdb", "first run"), ("duckdb", "cached")]
        if size in args.pandas_sizes.split(","):
            runs.append(("pandas", "in memory"))
        for engine, label in runs:
            row = measure_load(folder, engine, cache)
            loads.append(load_average())
            row.update(size=size, engine=engine, run=label, parquet_mb=parquet_mb)
            row.update(load_average=loads[-1], measured=time.strftime("%Y-%m-%d", time.gmtime()))
            row["rss_per_file"] = row["peak_mb"] / parquet_mb
            row["rss_per_csv"] = row["peak_mb"] / text_mb
            row["text_mb"] = text_mb
            print(json.dumps(row), flush=True)
            rows.append(row)
        scans = list((cache / "scans").glob("*"))
        if scans:
            rows[-len(runs)]["cache_mb"] = folder_mb(scans[0], "*.npy")
        if size in args.capped_sizes.split(","):
            caches = {"first run": args.data_root / f"cache-{size}-capped", "cached": cache}
            capped += capped_runs(folder, caches, size, text_mb, args)
    info = None
    if args.info_size:
        folder = args.data_root / f"s{args.info_size}"
        cache = args.data_root / f"cache-info-{args.info_size}"
        shutil.rmtree(cache, ignore_errors=True)
        info = [measure_info(folder, cache), measure_info(folder, cache)]
        print(json.dumps(info), flush=True)
    info_size = args.info_size
    if args.keep_other_sizes and RESULTS.exists():
        old = json.loads(RESULTS.read_text())
        rows, loads, info, info_size = kept_with(old, rows, info)
        capped = capped or old.get("capped", [])
    publish(rows, info, loads, info_size, capped)


def capped_runs(folder: Path, caches: dict, size: str, text_mb: float, args) -> list[dict]:
    """The first and the cached DuckDB run again, each in a memory cgroup limited to
    ``args.cap_ratio`` times the text size: whether they finish in that much memory. The first
    run builds into ``caches["first run"]`` (emptied first); the cached one opens
    ``caches["cached"]``, built before."""
    shutil.rmtree(caches["first run"], ignore_errors=True)
    cap = args.cap_ratio * text_mb
    rows = []
    for label, cache in caches.items():
        try:
            row = measure_load(folder, "duckdb", cache, cap_mb=cap)
        except OSError as exc:
            print(f"no memory cgroup to cap the runs in ({exc}); skipped", flush=True)
            return rows
        row.update(size=size, engine="duckdb", run=f"{label}, capped", text_mb=text_mb)
        row.update(load_average=load_average(), measured=time.strftime("%Y-%m-%d", time.gmtime()))
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def kept_with(old: dict, rows: list[dict], info) -> tuple[list, list, list | None, str]:
    """The earlier record's rows of the sizes not in ``rows`` (each given the load average
    recorded beside it), then ``rows``, in size order; the earlier data info run when none was
    made now."""
    for row, load in zip(old["rows"], old["loads"]):
        row.setdefault("load_average", load)
    measured = {r["size"] for r in rows}
    merged = [r for r in old["rows"] if r["size"] not in measured] + rows
    merged.sort(key=lambda r: list(SIZES).index(r["size"]))
    loads = [r["load_average"] for r in merged]
    if info is None:
        return merged, loads, old["info"], old["info_size"]
    return merged, loads, info, rows[0]["size"] if rows else old["info_size"]


def csv_equivalent_mb(folder: Path) -> float:
    """Size of the same interactions as a text file of ``user<TAB>item<TAB>rating<TAB>time``
    lines (RecBole's ``.inter`` layout; ratings written as "4.0"), counted from the Parquet
    parts without writing it."""
    import pyarrow.parquet as pq

    total = 0
    for part in sorted((folder / "interactions").glob("*.parquet")):
        table = pq.read_table(part, columns=["user_id", "item_id", "timestamp"])
        for column in table.column_names:
            values = np.abs(table.column(column).to_numpy()).astype(np.float64)
            total += int(np.floor(np.log10(np.maximum(values, 1))).sum()) + len(values)
        total += table.num_rows * (3 + 4)  # "4.0", three tabs and a newline
    return total / 2**20


def versions() -> dict:
    import duckdb
    import pyarrow

    from genrec import __version__

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "genrec": __version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(terse=True),
    }


def publish(
    rows: list[dict], info: list[dict] | None, loads: list[float], info_size, capped: list[dict]
) -> None:
    record = {"versions": versions(), "rows": rows, "info": info, "info_size": info_size}
    record["capped"] = capped
    record |= {"loads": loads, "seeds": {"data": SEED, "split": SPLIT_SEED}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    write_markdown(record)


def verdict(record: dict) -> list[str]:
    """The targets, met or not, in words, from the measured rows."""
    rows, info, info_size = record["rows"], record["info"], record["info_size"]
    big = {r["run"]: r for r in rows if r["size"] == "20m" and r["engine"] == "duckdb"}
    said = []
    if "first run" not in big:
        return said
    first, cached = big["first run"], big.get("cached")
    said.append(
        f"Targets: 20M interactions loaded and split in {first['wall_s']:.0f} s at a peak of "
        f"{first['peak_mb'] / 1024:.2f} GB on the first run (goal: 5 minutes, 4 GB)"
        + (
            f", {cached['wall_s']:.0f} s and {cached['peak_mb'] / 1024:.2f} GB from the cache"
            if cached
            else ""
        )
        + (
            f"; `genrec data info` on {info_size} at {info[0]['peak_mb']:,.0f} MB (goal: 1.5 GB)."
            if info
            else "."
        )
    )
    runs = {"first run": "on the first run", "cached": "from the cache"}
    parts = []
    for label, where in runs.items():
        if label in big:
            r = big[label]
            peak, own = r["rss_per_csv"], r.get("own_peak_mb", r["peak_mb"]) / r["text_mb"]
            parts.append(
                f"{where}, {peak:.2f}x ({9 / peak:.0f}x less than RecBole"
                + (", an order of magnitude" if peak <= 0.9 else "")
                + f"), of it the process's own memory {own:.2f}x ({9 / own:.0f}x less)"
            )
    said.append(
        "Peak / text at 20M (the process's peak resident memory, mapped file pages included, "
        "against the same rows as RecBole's text file; RecBole ~9x, an order of magnitude "
        "below it 0.9x): " + "; ".join(parts) + "."
    )
    said.append(
        "Where it goes. From the cache, the dataset and its stored split are memory-mapped: "
        "the split store keeps each part's columns as files beside the part codes, opened like "
        "the cache itself, and both are checked (indices within their vocabularies, finite "
        "values) by reading the files a chunk at a time rather than through the maps; ids "
        "become strings and the CSR's ones are read only when used. What stays resident is "
        "the interpreter with numpy, DuckDB and pyarrow (about 115 MB before any data), the "
        "item table and the pages a step has read, which are page cache the kernel can drop "
        "and read again. On the first run the build's peak is DuckDB's working memory (by "
        "default 64 MB per DuckDB thread, 32 MB while it sorts, plus about 80 MB DuckDB holds "
        "beyond its limit; the arrays are written to disk in order, not through maps); the "
        "split's is its shuffle (4 bytes an interaction) beside blocks of whole users sorted "
        "from the cached time order, its parts written to the store a chunk at a time, and the "
        "pages of the mapped arrays it reads: those count in the first run's peak (the gap "
        "between its peak and its own memory) but are page cache, as the capped runs show."
    )
    capped = record.get("capped") or []
    if capped:
        cap = capped[0]["cap_mb"]
        runs = []
        for r in capped:
            label = "first run" if r["run"].startswith("first") else "cached run"
            if r.get("finished"):
                runs.append(
                    f"the {label} finished in {r['wall_s']:.0f} s (peak usage "
                    f"{r['cgroup_peak_mb']:,.0f} MB, the limit reached "
                    f"{r.get('limit_hits', 0):,} times)"
                )
            else:
                runs.append(f"the {label} did not finish (exit code {r['returncode']})")
        said.append(
            f"Under a hard limit: each 20M run again inside a memory cgroup limited to "
            f"{cap:,.0f} MB ({cap / capped[0]['text_mb']:.1f}x the text; page cache counts "
            f"against the limit and is reclaimed under it; no swap): " + "; ".join(runs) + "."
        )
    return said


def write_markdown(record: dict) -> None:
    rows, info, info_size = record["rows"], record["info"], record["info_size"]
    v, loads = record["versions"], record["loads"]
    lines = [
        "## Data at scale: loading and splitting out of core",
        "",
        "Written by `benchmarks/scale_data.py` (`--data-root` a scratch folder). Data from "
        "`genrec data synth interactions` (Parquet parts + `items.parquet`; power-law item "
        f"popularity, log-normal user activity; seed {SEED}), split with `holdout` "
        f"(seed {SPLIT_SEED}). Each row is one fresh process: load (+ filters, none here) "
        "and split; peak = the process's maximum resident memory (`VmHWM`, mapped file pages "
        "included); own = its resident memory less file-backed pages, sampled every 2 ms (the "
        "memory it cannot give back). `duckdb` scans the files with DuckDB into memory-mapped "
        "arrays (`genrec.data.scan`) and stores the split beside them; `cached` is a second "
        "process opening that cache and the stored split; `pandas` is the in-memory path "
        "(`read_in_memory`, no cache). Peak / text compares the load + split peak with the "
        "same rows as a RecBole `.inter` text file (counted, not written), the form of "
        "RecBole's ~9x; peak / Parquet with the files read.",
        "",
        "| size | users | items | engine | run | load s | split s | total s | peak after "
        "load MB | peak load + split MB | own peak MB | peak / Parquet | peak / text "
        "| own peak / text | 1-min load |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        load = r.get("load_average")
        own = r.get("own_peak_mb")
        lines.append(
            f"| {r['size']} ({r['interactions']:,}) | {r['users']:,} | {r['items']:,} | "
            f"{r['engine']} | {r['run']} | {r['load_s']:.1f} | {r['split_s']:.1f} | "
            f"{r['wall_s']:.1f} | {r['load_peak_mb']:,.0f} | {r['peak_mb']:,.0f} | "
            + ("-" if own is None else f"{own:,.0f}")
            + f" | {r['rss_per_file']:.1f}x | {r['rss_per_csv']:.2f}x | "
            + ("-" if own is None else f"{own / r['text_mb']:.2f}x")
            + " | "
            + (
                "-"
                if load is None
                else f"{load:.1f}" + (f" ({r['measured']})" if "measured" in r else "")
            )
            + " |"
        )
    if info:
        lines += [
            "",
            f"`genrec data info` on {info_size} (`--engine duckdb`): first run "
            f"{info[0]['wall_s']:.1f} s, peak {info[0]['peak_mb']:,.0f} MB; cached "
            f"{info[1]['wall_s']:.1f} s, peak {info[1]['peak_mb']:,.0f} MB.",
        ]
    if any("measured" in r for r in rows) and len({r.get("measured") for r in rows}) > 1:
        lines += [
            "",
            "Rows with a date in the last column were re-measured that day "
            "(`--keep-other-sizes`); the others are from an earlier run of this script, with "
            "the code of that time.",
        ]
    for paragraph in verdict(record):
        lines += ["", paragraph]
    lines += [
        "",
        f"Machine: {v['cpu_count']} cores, {v['platform']}, Python {v['python']}, numpy "
        f"{v['numpy']}, DuckDB {v['duckdb']}, pyarrow {v['pyarrow']}, genrec {v['genrec']}; "
        "1-minute load average during the runs: "
        + ", ".join(f"{x:.2f}" for x in loads)
        + " (the machine is shared).",
    ]
    write_section("data", "\n".join(lines))


if __name__ == "__main__":
    main()
