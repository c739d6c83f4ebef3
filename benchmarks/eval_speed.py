"""Full-ranking evaluation throughput against the machine's own matrix-multiply rate.

A 64-factor dot-product scorer on synthetic users x items (200k x 50k by default), every user
with a history to exclude and test items to find. We time ``genrec.evaluation.evaluate`` (score,
mask, top-k, metrics, batch by batch) and, in the same run, the bare matmul that produces the
same scores, and report users/s of both and their ratio. Peak RSS is sampled during evaluation to
show memory is bounded by the batch, not users x items.

    python benchmarks/eval_speed.py --users 200000 --items 50000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

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
) -> dict:
    torch.set_num_threads(threads)
    history, target = synthetic(n_users, n_items, per_user, seed)
    gen = torch.Generator().manual_seed(seed)
    model = DotProduct(
        torch.randn(n_users, dim, generator=gen), torch.randn(n_items, dim, generator=gen)
    )
    users = np.flatnonzero(np.diff(target.user_items.indptr) > 0)
    eval_times, mm_times, peaks = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for lo in range(0, n_users, batch_size):  # the bare matmul rate of the same scores
            (model.user_factors[lo : lo + batch_size] @ model.item_factors.T)
        mm_times.append(time.perf_counter() - start)
        with PeakRSS() as peak:
            start = time.perf_counter()
            evaluate(model, history, target, ks=(10, 20), batch_size=batch_size, metrics=RANKING)
            eval_times.append(time.perf_counter() - start)
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
        "peak_rss_mb": max(peaks),
        "dense_scores_mb_if_unbatched": n_users * n_items * 4 / 2**20,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    print(
        json.dumps(
            measure(
                a.users, a.items, batch_size=a.batch_size, repeats=a.repeats, threads=a.threads
            ),
            indent=2,
        )
    )
