"""Latency and throughput of ``genrec serve`` on loopback, at fixed request rates and overload.

Starts ``genrec serve --dataset ml-100k --models ease,sasrec`` (training and saving what is
missing under --artifacts), then, per model and rate, sends ``GET /users/{id}/recommendations``
for random users as an open-loop Poisson-free fixed-interval stream for ``--seconds`` seconds
from a bounded asyncio/httpx client (at most ``--max-outstanding`` requests outstanding; the
rest are counted as not sent). Reports p50/p95/p99 latency of 200s, achieved throughput, the
status counts (429/503 under overload, never a crash) and the server's RSS before and after
(flat memory over the run). Rewrites the ``serving`` section of BENCHMARKS.md.

    python benchmarks/serving.py --rates 50,200,500 --seconds 10 --workers 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, load_average, write_section  # noqa: E402


def start(args, workers: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = 18000 + random.randrange(1000)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [
        sys.executable,
        "-m",
        "genrec.cli",
        "serve",
        "--dataset",
        args.dataset,
        "--models",
        args.models,
        "--artifacts",
        str(args.artifacts),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--threads",
        "1",
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900  # the first start trains the models
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"genrec serve failed: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("genrec serve did not start")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (uvicorn workers), in MB."""
    pids = [pid] + [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


async def run_rate(
    url: str, paths: list[str], rate: float, seconds: float, max_outstanding: int
) -> dict:
    """Send ``rate`` GET requests/s for ``seconds``, each to a random one of ``paths`` (with
    their query strings); latencies of the answered ones and statuses."""
    latencies, statuses, not_sent = [], {}, 0
    limits = httpx.Limits(
        max_connections=max_outstanding, max_keepalive_connections=max_outstanding
    )
    outstanding = 0
    rng = random.Random(0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

        async def one(path: str):
            nonlocal outstanding
            start = time.perf_counter()
            try:
                status = (await client.get(path)).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(time.perf_counter() - start)
            outstanding -= 1

        tasks, n = [], int(rate * seconds)
        begin = time.perf_counter()
        for i in range(n):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if outstanding >= max_outstanding:
                not_sent += 1
                continue
            outstanding += 1
            tasks.append(asyncio.create_task(one(rng.choice(paths))))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    ms = np.array(latencies) * 1000
    pct = (lambda q: float(np.percentile(ms, q))) if len(ms) else (lambda q: float("nan"))
    return {
        "rate": rate,
        "sent": len(tasks),
        "not_sent": not_sent,
        "ok": len(ms),
        "throughput": len(ms) / elapsed,
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "statuses": statuses,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--models", default="ease,sasrec")
    p.add_argument("--artifacts", type=Path, default=ROOT / "artifacts" / "serving-bench")
    p.add_argument("--rates", default="50,200,500")
    p.add_argument("--overload", type=float, default=2000.0, help="rate of the overload run")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workers", default="1", help="comma-separated worker counts")
    p.add_argument("--max-outstanding", type=int, default=256)
    p.add_argument("--write", action="store_true", help="rewrite the BENCHMARKS.md section")
    args = p.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    rows, loads = [], []
    for workers in [int(x) for x in args.workers.split(",")]:
        proc, url = start(args, workers, ["--max-in-flight", "64"])
        try:
            users = [str(u) for u in range(1, 944)] if args.dataset == "ml-100k" else ["1"]
            before = rss_mb(proc.pid)
            for model in args.models.split(","):
                paths = [f"/users/{u}/recommendations?k=10&model={model}" for u in users]
                for rate in rates + [args.overload]:
                    res = asyncio.run(
                        run_rate(url, paths, rate, args.seconds, args.max_outstanding)
                    )
                    res.update(model=model, workers=workers, overload=rate == args.overload)
                    rows.append(res)
                    loads.append(load_average())
                    print(res, flush=True)
            after = rss_mb(proc.pid)
            rows.append({"workers": workers, "rss_before": before, "rss_after": after})
            alive = proc.poll() is None
            rows.append({"workers": workers, "alive_after": alive})
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    markdown = table(rows, args, loads)
    print(markdown)
    if args.write:
        write_section("serving", markdown)


def table(rows: list[dict], args, loads: list[float]) -> str:
    import genrec

    lines = [
        "## Serving: `genrec serve` latency and throughput",
        "",
        f"`python benchmarks/serving.py --rates {args.rates} --overload {args.overload:g} "
        f"--seconds {args.seconds:g} --workers {args.workers}`: loopback, "
        f"`GET /users/{{id}}/recommendations?k=10` for random {args.dataset} users, a "
        "fixed-interval open-loop asyncio/httpx client (at most "
        f"{args.max_outstanding} outstanding), server `--threads 1 --max-in-flight 64`. "
        f"Machine: {os.cpu_count()} cores shared with other jobs, {platform.platform()}, "
        f"Python {platform.python_version()}, genrec {genrec.__version__}; 1-minute load "
        f"average during the runs {min(loads):.1f} to {max(loads):.1f}.",
        "",
        "| model | workers | offered rps | achieved rps | p50 ms | p95 ms | p99 ms | statuses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "rate" not in r:
            continue
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items(), key=str))
        if r["not_sent"]:
            statuses += f", not sent (client bound): {r['not_sent']}"
        offered = f"{r['rate']:g}" + (" (overload)" if r["overload"] else "")
        lines.append(
            f"| {r['model']} | {r['workers']} | {offered} | {r['throughput']:.0f} | "
            f"{r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {statuses} |"
        )
    for r in rows:
        if "rss_before" in r:
            lines.append(
                f"\nServer RSS with {r['workers']} worker(s): {r['rss_before']:.0f} MB "
                f"before the runs, {r['rss_after']:.0f} MB after."
            )
        if "alive_after" in r:
            lines.append(f"Server still up after the overload runs: {r['alive_after']}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
