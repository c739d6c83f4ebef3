"""``genrec serve`` beside Cornac's Flask serving, and a bounded memory soak.

Peer: Cornac 3.0.1 serves one saved model through its Flask app (``cornac.serving.app``,
started with ``flask run`` as Cornac documents), from its own virtualenv
(``bash scripts/setup_cornac.sh``). Both servers get BPR trained on all of ML-100K (Cornac's
own BPR, k=64, 100 epochs; genrec's ``bpr``) and the same open-loop request stream from
benchmarks/serving.py: ``GET /users/{id}/recommendations?k=10&model=bpr`` against
``GET /recommend?uid={id}&k=10&remove_seen=true``, random users, fixed rates, one process
each. A few malformed requests show how each answers bad input.

Soak: ``genrec serve`` with ease under a steady mixed stream (user recommendations, similar
items, text search) for ``--soak-seconds``, its RSS read after every window: memory should
stay flat once warm.

    bash scripts/setup_cornac.sh
    python benchmarks/serving_peers.py --rates 50,200,500 --seconds 10 --soak-seconds 300 --write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import rss_mb, run_rate, start  # noqa: E402

from genrec.data import sources  # noqa: E402
from genrec.io import atomic_write  # noqa: E402

from common import ROOT, load_average, write_section  # noqa: E402

CORNAC = ROOT / ".venv-cornac" / "bin"
RESULTS = ROOT / "benchmarks" / "results" / "serving_peers.json"
PROBES = (  # (what, genrec path, Cornac path)
    ("unknown user", "/users/nobody/recommendations?k=10", "/recommend?uid=nobody&k=10"),
    ("k not a number", "/users/196/recommendations?k=ten", "/recommend?uid=196&k=ten"),
    ("no user", "/users//recommendations?k=10", "/recommend?k=10"),
)


def start_cornac(triplets: Path, folder: Path) -> tuple[subprocess.Popen, str]:
    """Train and save Cornac's BPR, then start Cornac's Flask server on a loopback port."""
    if not (CORNAC / "flask").exists():
        raise SystemExit("Cornac is not installed: run `bash scripts/setup_cornac.sh` first")
    runner = Path(__file__).with_name("cornac_runner.py")
    subprocess.run([CORNAC / "python", runner, triplets, folder], check=True)
    port = 19000 + random.randrange(1000)
    env = {
        **os.environ,
        "MODEL_PATH": str(folder / "BPR"),
        "MODEL_CLASS": "cornac.models.BPR",
        "FLASK_APP": "cornac.serving.app",
        # one BLAS thread, as genrec serve scores each request on one: idle BLAS threads
        # spin-wait and would bill Cornac for CPU time it does not use for work
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        [CORNAC / "flask", "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("Cornac's server exited at start")
        try:
            httpx.get(url + "/recommend?uid=1&k=1", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("Cornac's server did not start")


def write_triplets(data, path: Path) -> None:
    users, items = data.users.ids[data.user_idx], data.items.ids[data.item_idx]
    path.write_text("".join(f"{u}\t{i}\t1\n" for u, i in zip(users, items)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(proc: subprocess.Popen, url: str, paths: list[str], n: int = 400) -> float:
    """Server CPU milliseconds per answered request over ``n`` sequential requests (after 50
    to warm up): what a request costs, whatever else the machine is doing."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for path in paths[:50]:
            client.get(path)
        before = cpu_seconds(proc.pid)
        ok = sum(client.get(path).status_code == 200 for path in paths[:n])
    return (cpu_seconds(proc.pid) - before) * 1000 / max(ok, 1)


def probe(url: str, path: str) -> str:
    r = httpx.get(url + path, timeout=10)
    kind = "JSON" if r.headers.get("content-type", "").startswith("application/json") else "HTML"
    return f"{r.status_code} {kind}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def compare(args, data, users: list[str]) -> dict:
    """The same request stream to genrec's and Cornac's BPR servers, one after the other."""
    rows, probes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        triplets = Path(tmp) / "ml-100k.tsv"
        write_triplets(data, triplets)
        servers = {
            "genrec": start(
                SimpleNamespace(dataset="ml-100k", models="bpr", artifacts=args.artifacts),
                1,
                ["--max-in-flight", "64"],
            ),
            "cornac": start_cornac(triplets, Path(tmp) / "cornac"),
        }
        paths = {
            "genrec": [f"/users/{u}/recommendations?k=10&model=bpr" for u in users],
            "cornac": [f"/recommend?uid={u}&k=10&remove_seen=true" for u in users],
        }
        try:
            for rate in [float(r) for r in args.rates.split(",")]:
                for name, (_, url) in servers.items():
                    res = asyncio.run(
                        run_rate(url, paths[name], rate, args.seconds, args.max_outstanding)
                    )
                    res.update(server=name, load=load_average())
                    rows.append(res)
                    print(res, flush=True)
            for what, ours, theirs in PROBES:
                probes.append(
                    {
                        "request": what,
                        "genrec": probe(servers["genrec"][1], ours),
                        "cornac": probe(servers["cornac"][1], theirs),
                    }
                )
            cpu_ms = {
                name: cpu_per_request(proc, url, paths[name])
                for name, (proc, url) in servers.items()
            }
            memory = {name: rss_mb(proc.pid) for name, (proc, _) in servers.items()}
        finally:
            for proc, _ in servers.values():
                stop(proc)
    return {"rows": rows, "probes": probes, "rss_mb": memory, "cpu_ms": cpu_ms}


def soak(args, users: list[str], items: list[str]) -> dict:
    """A steady mixed stream at ``--soak-rate`` for ``--soak-seconds``; RSS after each window."""
    proc, url = start(
        SimpleNamespace(dataset="ml-100k", models="ease", artifacts=args.artifacts),
        1,
        ["--max-in-flight", "64"],
    )
    words = ["star", "love", "war", "night", "city", "man", "day", "king"]
    paths = (
        [f"/users/{u}/recommendations?k=10" for u in users]
        + [f"/items/{i}/similar?k=10" for i in items]
        + [f"/search?q={w}&k=10" for w in words] * 50
    )
    samples = [{"seconds": 0.0, "rss_mb": rss_mb(proc.pid), "ok": 0}]
    try:
        elapsed = 0.0
        while elapsed < args.soak_seconds:
            res = asyncio.run(run_rate(url, paths, args.soak_rate, args.window, 256))
            elapsed += args.window
            samples.append({"seconds": elapsed, "rss_mb": rss_mb(proc.pid), "ok": res["ok"]})
            print(samples[-1], flush=True)
        alive = proc.poll() is None
    finally:
        stop(proc)
    return {"samples": samples, "alive": alive, "rate": args.soak_rate}


def render(payload: dict) -> str:
    meta = payload["meta"]
    lines = [
        "## Serving beside Cornac, and a memory soak",
        "",
        f"`{meta['command']}` on {meta['date']}. Machine: {meta['cores']} cores shared with "
        f"other jobs (1-minute load {meta['load_min']:.1f} to {meta['load_max']:.1f}), "
        f"{meta['platform']}, Python {meta['python']}, genrec {meta['genrec']}, Cornac 3.0.1 "
        "(Flask's server via `flask run`, as Cornac documents, with one BLAS thread). Both "
        "serve BPR fitted on all of ML-100K in one process; genrec with `--threads 1 "
        "--max-in-flight 64`; the same open-loop stream of random users from "
        "benchmarks/serving.py.",
        "",
        "| offered rps | server | achieved rps | p50 ms | p95 ms | p99 ms | statuses |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in payload["compare"]["rows"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items(), key=str))
        if r["not_sent"]:
            statuses += f", not sent (client bound): {r['not_sent']}"
        lines.append(
            f"| {r['rate']:g} | {r['server']} | {r['throughput']:.0f} | {r['p50']:.1f} | "
            f"{r['p95']:.1f} | {r['p99']:.1f} | {statuses} |"
        )
    lines += ["", "p99 ratio (Cornac / genrec) per offered rate: " + _ratios(payload)]
    memory, cpu = payload["compare"]["rss_mb"], payload["compare"]["cpu_ms"]
    lines += [
        f"Server CPU per request (400 sequential requests, independent of the machine's load): "
        f"genrec {cpu['genrec']:.2f} ms, Cornac {cpu['cornac']:.2f} ms "
        f"({cpu['cornac'] / cpu['genrec']:.1f}x).",
        f"Server RSS after the runs: genrec {memory['genrec']:.0f} MB, "
        f"Cornac {memory['cornac']:.0f} MB.",
        "",
        "| bad request | genrec | Cornac |",
        "|---|---|---|",
    ]
    lines += [
        f"| {p['request']} | {p['genrec']} | {p['cornac']} |" for p in payload["compare"]["probes"]
    ]
    s = payload["soak"]
    first, warm, last = s["samples"][0], s["samples"][1], s["samples"][-1]
    minutes = (last["seconds"] - warm["seconds"]) / 60 or float("nan")
    lines += [
        "",
        f"Soak: `genrec serve --models ease`, {s['rate']:g} requests/s of user recommendations, "
        f"similar items and text search for {last['seconds']:.0f} s "
        f"({sum(x['ok'] for x in s['samples'])} answered 200). RSS {first['rss_mb']:.0f} MB at "
        f"start, {warm['rss_mb']:.0f} MB after the first window (warm), {last['rss_mb']:.0f} MB "
        f"at the end: {(last['rss_mb'] - warm['rss_mb']) / minutes:+.1f} MB/min once warm. "
        f"Server up at the end: {s['alive']}.",
        "",
        "RSS per window (s: MB): "
        + ", ".join(f"{x['seconds']:.0f}: {x['rss_mb']:.0f}" for x in s["samples"]),
    ]
    return "\n".join(lines)


def _ratios(payload: dict) -> str:
    by = {}
    for r in payload["compare"]["rows"]:
        by.setdefault(r["rate"], {})[r["server"]] = r["p99"]
    return ", ".join(
        f"{rate:g}: {v['cornac'] / v['genrec']:.1f}x" for rate, v in by.items() if len(v) == 2
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="50,200,500")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--max-outstanding", type=int, default=256)
    p.add_argument("--soak-seconds", type=float, default=300.0)
    p.add_argument("--soak-rate", type=float, default=100.0)
    p.add_argument("--window", type=float, default=20.0, help="soak seconds between RSS reads")
    p.add_argument("--artifacts", type=Path, default=ROOT / "artifacts" / "serving-bench")
    p.add_argument("--cache-dir", type=Path, default=sources.default_cache_dir())
    p.add_argument("--write", action="store_true", help="rewrite the BENCHMARKS.md section")
    args = p.parse_args()
    import genrec

    data = sources.load("ml-100k", cache_dir=args.cache_dir)
    users, items = [str(u) for u in data.users.ids], [str(i) for i in data.items.ids]
    loads = [load_average()]
    payload = {"compare": compare(args, data, users), "soak": soak(args, users, items)}
    loads.append(load_average())
    loads += [r["load"] for r in payload["compare"]["rows"]]
    payload["meta"] = {
        "command": "python benchmarks/serving_peers.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "load_min": min(loads),
        "load_max": max(loads),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "genrec": genrec.__version__,
    }
    markdown = render(payload)
    print(markdown)
    if args.write:
        atomic_write(RESULTS, json.dumps(payload, indent=1))
        write_section("serving-peers", markdown)


if __name__ == "__main__":
    main()
