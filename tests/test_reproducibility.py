"""Same seed and thread count, same numbers: the thread count of a run is decided once, used by
every fit and recorded, and caps the BLAS and OpenMP pools too. (Bit-identical refits of every
model: tests/models/contract.py.)"""

from __future__ import annotations

import itertools

import pytest
import torch

import genrec.options
from genrec.data.synthetic import planted_clusters
from genrec.evaluation.runner import run_benchmark
from genrec.models import Pop
from genrec.options import RunOptions


class ThreadProbe(Pop):
    """Pop that records the torch thread count its fit ran with."""

    name = "thread-probe"
    seen: list[int] = []

    def _fit(self, train, valid, options):
        ThreadProbe.seen.append(torch.get_num_threads())
        super()._fit(train, valid, options)


@pytest.fixture
def busy_machine(monkeypatch):
    """free_cores() answers 1, 2, 1, 2, ...: a load average that changes during a run."""
    answers = itertools.cycle([1, 2])
    monkeypatch.setattr(genrec.options, "free_cores", lambda: next(answers))
    ThreadProbe.seen = []
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_pinned_decides_the_default_once(busy_machine):
    options = RunOptions(seed=3)
    pinned = options.pinned()
    assert pinned.threads == 1 and pinned.seed == 3
    assert [pinned.n_threads for _ in range(3)] == [1, 1, 1]
    assert [options.n_threads for _ in range(2)] == [2, 1]  # unpinned: follows the load
    explicit = RunOptions(threads=4)
    assert explicit.pinned() is explicit


def test_benchmark_fits_and_records_one_thread_count(busy_machine):
    world = planted_clusters(n_users=30, n_items=12, n_clusters=2, noise=1, seed=0)
    result = run_benchmark(
        world.split,
        {"a": ThreadProbe, "b": ThreadProbe},
        protocol={"dataset": "planted"},
        ks=(5,),
        options=RunOptions(seed=0),
    )
    assert ThreadProbe.seen == [1, 1]
    assert result.to_dict()["protocol"]["threads"] == 1


def test_explicit_threads_are_used_and_recorded(busy_machine):
    world = planted_clusters(n_users=30, n_items=12, n_clusters=2, noise=1, seed=0)
    result = run_benchmark(
        world.split, {"a": ThreadProbe}, protocol={}, ks=(5,), options=RunOptions(seed=0, threads=2)
    )
    assert ThreadProbe.seen == [2]
    assert result.to_dict()["protocol"]["threads"] == 2


def _pool_threads() -> dict[str, int]:
    """Thread count of each BLAS / OpenMP pool threadpoolctl sees (numpy, scipy, torch)."""
    from threadpoolctl import threadpool_info

    return {f"{p['user_api']}:{p['filepath']}": p["num_threads"] for p in threadpool_info()}


def test_thread_caps_cover_blas_and_openmp_and_are_restored():
    import scipy.linalg  # noqa: F401 - its OpenBLAS is one of the pools capped
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2):  # a known "before" above the cap on any machine
        before, torch_before = _pool_threads(), torch.get_num_threads()
        assert before and set(before.values()) == {2}
        with RunOptions(threads=1).capped_threads():
            inside = _pool_threads()
            assert set(inside) == set(before) and set(inside.values()) == {1}
            assert torch.get_num_threads() == 1
        assert _pool_threads() == before
        assert torch.get_num_threads() == torch_before


def test_a_fit_runs_with_blas_capped(busy_machine):
    seen = []

    class BlasProbe(ThreadProbe):
        def _fit(self, train, valid, options):
            seen.append(set(_pool_threads().values()))
            super()._fit(train, valid, options)

    BlasProbe().fit(planted_clusters().split.train, options=RunOptions(threads=1))
    assert seen == [{1}]
