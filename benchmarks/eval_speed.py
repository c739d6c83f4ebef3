"""Full-ranking evaluation throughput against the machine's own matrix-multiply rate.

A 64-factor dot-product scorer on synthetic users x items (200k x 50k by default), every user
with a history to exclude and test items to find. We time ``genrec.evaluation.evaluate`` (score,
mask, top-k, metrics, batch by batch) and, in the same run, the bare matmul that produces the
same scores, and report users/s of both and their ratio. Peak RSS is sampled during evaluation to
show memory is bounded by the batch, not users x items.

With ``--write`` it also times, in the same run, the evaluation with the full-row top-k
(``genrec.ranking._top_k_full``, what every batch used before the block-maximum prefilter of
``genrec.ranking.top_k``), checks that both give identical top lists, and rewrites the
``eval-speed`` section of BENCHMARKS.md and benchmarks/results/eval_speed.json.

    python benchmarks/eval_speed.py --users 200000 --items 50000 --repeats 3 --write
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import genrec
import genrec.evaluation.protocol as protocol
import genrec.ranking as ranking
from genrec.data import Dataset, Vocabulary
from genrec.evaluation.protocol import RANKING, evaluate
from genrec.evaluation.runner import PeakRSS
from genrec.models.base import ModelConfig, Recommender


class DotProduct(Recommender):
    """Fixed random user and item factors; score = U[users] @ V.T."""

    name = "dot"
    Config = ModelConfig

    def __init__(self, user_factors, item_factors):
        super().__init__()
        self.user_factors, self.item_factors = user_factors, item_factors
        self.n_users_, self.n_items_ = len(user_factors), len(item_factors)

    def _score(self, histories, users):
        return (self.user_factors[torch.from_numpy(users)] @ self.item_factors.T).numpy()


def synthetic(n_users: int, n_items: int, per_user: int, seed: int):
    rng = np.random.default_rng(seed)
    users = Vocabulary(np.arange(n_users), kind="user")
    items = Vocabulary(np.arange(n_items), kind="item")
    u = np.repeat(np.arange(n_users), per_user)
    i = rng.zipf(1.3, len(u)) % n_items  # popularity-skewed items
    is_test = rng.random(len(u)) < 0.2
    history = Dataset(users, items, u[~is_test], i[~is_test])
    target = Dataset(users, items, u[is_test], i[is_test])
    return history, target


def measure(
    n_users=200_000,
    n_items=50_000,
    dim=64,
    per_user=20,
    batch_size=1024,
    repeats=3,
    seed=0,
    threads=1,
    full_top_k=False,
) -> dict:
    """Evaluation and bare-matmul rates (median of ``repeats``); ``full_top_k`` evaluates with
    the full-row top-k instead of the block-prefiltered one (for the before/after comparison)."""
    torch.set_num_threads(threads)
    history, target = synthetic(n_users, n_items, per_user, seed)
    gen = torch.Generator().manual_seed(seed)
    model = DotProduct(
        torch.randn(n_users, dim, generator=gen), torch.randn(n_items, dim, generator=gen)
    )
    users = np.flatnonzero(np.diff(target.user_items.indptr) > 0)
    eval_times, mm_times, peaks, eval_cpu, mm_cpu = [], [], [], [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        for lo in range(0, n_users, batch_size):  # the bare matmul rate of the same scores
            (model.user_factors[lo : lo + batch_size] @ model.item_factors.T)
        mm_times.append(time.perf_counter() - start)
        mm_cpu.append(time.process_time() - cpu)
        with PeakRSS() as peak, top_k_used(full_top_k):
            start, cpu = time.perf_counter(), time.process_time()
            result = evaluate(
                model, history, target, ks=(10, 20), batch_size=batch_size, metrics=RANKING
            )
            eval_times.append(time.perf_counter() - start)
            eval_cpu.append(time.process_time() - cpu)  # the RSS sampler's share is tiny
        peaks.append(peak.mb)
    eval_s, mm_s = statistics.median(eval_times), statistics.median(mm_times)
    return {
        "users": n_users,
        "items": n_items,
        "dim": dim,
        "batch_size": batch_size,
        "evaluated_users": int(len(users)),
        "threads": threads,
        "repeats": repeats,
        "eval_seconds": eval_s,
        "eval_users_per_s": len(users) / eval_s,
        "matmul_seconds": mm_s,
        "matmul_users_per_s": n_users / mm_s,
        "ratio": (len(users) / eval_s) / (n_users / mm_s),
        # CPU seconds of this process: on a shared machine, less dependent on other jobs
        "eval_cpu_seconds": statistics.median(eval_cpu),
        "matmul_cpu_seconds": statistics.median(mm_cpu),
        "cpu_ratio": (len(users) / statistics.median(eval_cpu))
        / (n_users / statistics.median(mm_cpu)),
        "peak_rss_mb": max(peaks),
        "dense_scores_mb_if_unbatched": n_users * n_items * 4 / 2**20,
        "full_top_k": full_top_k,
        "top_items_sum": int(result.top_items.sum()),  # a fingerprint of the lists
    }


@contextlib.contextmanager
def top_k_used(full: bool):
    """Evaluate with the full-row top-k when ``full`` (the evaluator's previous hot path)."""
    saved = protocol.top_k
    protocol.top_k = ranking._top_k_full if full else saved
    try:
        yield
    finally:
        protocol.top_k = saved


def write(new: dict, old: dict) -> None:
    from common import ROOT, write_section

    (ROOT / "benchmarks" / "results" / "eval_speed.json").write_text(
        json.dumps({"block_top_k": new, "full_top_k": old}, indent=2) + "\n"
    )
    same = "identical" if new["top_items_sum"] == old["top_items_sum"] else "DIFFERENT"
    rows = [
        f"| {name} | {r['eval_users_per_s']:,.0f} users/s ({r['eval_seconds']:.1f} s) | "
        f"{r['matmul_users_per_s']:,.0f} users/s ({r['matmul_seconds']:.1f} s) | "
        f"{r['ratio']:.2f} | {r['eval_cpu_seconds']:.1f} s / {r['matmul_cpu_seconds']:.1f} s | "
        f"**{r['cpu_ratio']:.2f}** | {r['peak_rss_mb']:,.0f} MB |"
        for name, r in (("full-row top-k (before)", old), ("block-max top-k (now)", new))
    ]
    write_section(
        "eval-speed",
        f"""## Evaluation throughput against the bare matmul rate

`python benchmarks/eval_speed.py --users {new["users"]} --items {new["items"]} --repeats \
{new["repeats"]} --write`: a {new["dim"]}-factor dot-product scorer, {new["users"]:,} users x \
{new["items"]:,} items ({new["evaluated_users"]:,} with test items), batch {new["batch_size"]}, \
ranking metrics at 10 and 20, {new["threads"]} thread, median of {new["repeats"]} runs; both \
evaluators and their matmul measured in this one run. Machine: {platform.machine()}, \
Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, genrec \
{genrec.__version__}; the machine was shared with other jobs, so the ratio (measured back to \
back) is the number to read, not the absolute rates; the CPU-time ratio (this process's CPU
seconds, per user) depends least on the other jobs.

| top-k | evaluation | bare matmul of the same scores | wall ratio | CPU s eval / matmul | CPU ratio (goal >= 0.8) | peak RSS |
| --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Top-10/20 lists of the two runs: {same}. The block-max top-k takes each row's maximum over
blocks of {ranking.BLOCK} items, ranks only the items of the k best blocks that reach the k-th
block maximum, and falls back to the full row where block maxima tie (exact; see
`genrec.ranking.top_k`). Before this change the committed foundation run measured 0.54.""",
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--write",
        action="store_true",
        help="also time the full-row top-k and rewrite the eval-speed section of BENCHMARKS.md",
    )
    a = p.parse_args()
    if a.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        kw = dict(batch_size=a.batch_size, repeats=a.repeats, threads=a.threads)
        new = measure(a.users, a.items, **kw)
        old = measure(a.users, a.items, full_top_k=True, **kw)
        write(new, old)
        print(json.dumps({"new": new, "old": old}, indent=2))
        raise SystemExit(0)
    print(
        json.dumps(
            measure(
                a.users, a.items, batch_size=a.batch_size, repeats=a.repeats, threads=a.threads
            ),
            indent=2,
        )
    )
