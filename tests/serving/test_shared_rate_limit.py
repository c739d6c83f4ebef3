"""Rate limits shared by the worker processes of one server: two processes taking from one
SQLite file pass exactly ``burst`` requests together, not ``burst`` each."""

from __future__ import annotations

import multiprocessing

from genrec.serving.keys import RateLimiter, SharedRateLimiter

BURST = 7
RATE = 1e-6  # no refill during the test


def _passes(path: str, client: str, n: int) -> int:
    limiter = SharedRateLimiter(RATE, BURST, path)
    return sum(limiter.take(client) == 0 for _ in range(n))


def test_two_processes_share_one_budget(tmp_path):
    path = str(tmp_path / "rates.sqlite")
    SharedRateLimiter(RATE, BURST, path)  # the file exists before the workers start
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        passed = pool.starmap(_passes, [(path, "key:web", 40), (path, "key:web", 40)])
    assert sum(passed) == BURST


def test_clients_have_their_own_buckets_and_a_wait(tmp_path):
    limiter = SharedRateLimiter(2.0, 1, tmp_path / "rates.sqlite")
    assert limiter.take("a") == 0 and limiter.take("b") == 0
    wait = limiter.take("a")
    assert 0 < wait <= 0.5  # one token at 2/s


def test_per_process_limiter_counts_alone():
    one, two = RateLimiter(RATE, BURST), RateLimiter(RATE, BURST)
    assert sum(one.take("k") == 0 for _ in range(20)) == BURST
    assert sum(two.take("k") == 0 for _ in range(20)) == BURST  # what several workers used to do
