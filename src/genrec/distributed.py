"""Data-parallel training across processes and machines, on ``torch.distributed``.

A data-parallel fit runs the same ``fit`` in N processes (ranks) joined in one process group:
every rank holds the whole model, trains on its own shard of each batch, and the gradients are
averaged across ranks before every optimiser step, so all ranks keep identical weights (the
neural trainers' side lives in :class:`genrec.models.neural.DataParallel`). Rank 0 alone
validates, saves and reports; the others wait for it.

Two ways to start one:

* ``genrec train ... --nproc N`` (:func:`launch`): N local worker processes on a free port of
  127.0.0.1; if one fails, the others are ended and its error is raised in the caller;
* ``torchrun --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT] -m
  genrec.cli train ...``: torchrun starts the workers (on one or several machines) and the CLI
  joins the group it describes (:func:`process_group` with ``init_method="env://"``).

The backend follows the device: gloo on CPU, NCCL on CUDA (:func:`backend_for`). The group is
destroyed when the ``with`` block ends, also on error.

Example:
    >>> current()  # outside any process group: one process, rank 0
    Group(rank=0, world_size=1)
    >>> threads_per_process(total=8, nproc=3)
    2
"""

from __future__ import annotations

import contextlib
import datetime
import os
import queue
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from genrec.errors import ConfigError, DistributedError, GenrecError


@dataclass(frozen=True)
class Group:
    """This process's place in a data-parallel run: its ``rank`` among ``world_size``."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that validates, saves and reports."""
        return self.rank == 0


def current() -> Group:
    """The process group this process has joined, or ``Group()`` (one process) when none."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Group()
    return Group(dist.get_rank(), dist.get_world_size())


def backend_for(device: str) -> str:
    """The collective backend for a torch device: ``"nccl"`` on CUDA, ``"gloo"`` otherwise."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


@contextlib.contextmanager
def process_group(
    *,
    rank: int,
    world_size: int,
    init_method: str,
    device: str = "cpu",
    local_rank: int = 0,
    timeout_s: float = 1800.0,
) -> Iterator[Group]:
    """Join a process group for the block; destroy it afterwards, also when the block raises.

    Args:
        rank, world_size: this process's rank in ``0 .. world_size - 1``.
        init_method: where the ranks meet: ``"tcp://HOST:PORT"`` (rank 0 listens there) or
            ``"env://"`` (``MASTER_ADDR``, ``MASTER_PORT``, ... as torchrun sets them).
        device: the training device; it picks the backend (:func:`backend_for`) and, on CUDA,
            the GPU ``local_rank``.
        timeout_s: how long a collective waits for the other ranks before failing.

    Raises:
        ConfigError: the rank is outside ``0 .. world_size - 1`` or a group is already joined.
    """
    import torch
    import torch.distributed as dist

    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ConfigError(f"world_size must be a positive integer, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ConfigError(f"rank must be an integer in 0..{world_size - 1}, got {rank!r}")
    if dist.is_initialized():
        raise ConfigError("this process has already joined a process group; leave it first")
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend,
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in a single process)."""
    import torch.distributed as dist

    if current().world_size > 1:
        dist.barrier()


def all_sum(tensor):
    """Sum ``tensor`` over the ranks, in place, and return it (unchanged when alone)."""
    import torch.distributed as dist

    if current().world_size > 1:
        _collective(tensor, lambda t: dist.all_reduce(t, op=dist.ReduceOp.SUM))
    return tensor


def broadcast_from_main(tensor):
    """Overwrite ``tensor`` on every rank with rank 0's values, in place, and return it."""
    import torch.distributed as dist

    if current().world_size > 1:
        _collective(tensor, lambda t: dist.broadcast(t, src=0))
    return tensor


def _collective(tensor, op) -> None:
    """Run ``op`` on ``tensor`` in place; NCCL works on GPU tensors only, so a CPU tensor goes
    to the current GPU and back."""
    import torch.distributed as dist

    if dist.get_backend() != "nccl" or tensor.device.type == "cuda":
        op(tensor)
        return
    moved = tensor.cuda()
    op(moved)
    tensor.copy_(moved.cpu())


def threads_per_process(*, total: int, nproc: int) -> int:
    """Intra-op threads for each of ``nproc`` processes sharing ``total`` cores (at least 1):
    ``total // nproc``, so the processes together never oversubscribe the cores."""
    return max(1, total // max(1, nproc))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (for rank 0 to listen on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def launch(
    target: Callable[..., Any],
    args: Sequence[Any] = (),
    *,
    nproc: int,
    threads: int,
    device: str = "cpu",
    timeout_s: float | None = None,
) -> list[Any]:
    """Run ``target(*args)`` in ``nproc`` new local processes joined in one process group.

    Each worker uses ``threads`` intra-op threads, joins the group on a free port of
    127.0.0.1, runs ``target`` and leaves the group. ``target`` and ``args`` must be picklable
    (a module-level function). If a worker fails, the others are ended and the failure is
    raised here; no worker outlives this call.

    Returns:
        ``target``'s return values in rank order.

    Raises:
        ConfigError: ``nproc`` or ``threads`` is not a positive integer.
        GenrecError: the error a worker raised (re-raised as is when it is a genrec error).
        DistributedError: a worker failed with another exception, died without reporting, or
            the run took longer than ``timeout_s`` seconds.
    """
    import multiprocessing

    for name, value in (("nproc", nproc), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    ctx = multiprocessing.get_context("spawn")  # never fork a process that holds torch threads
    results: queue.Queue = ctx.Queue()
    init_method = f"tcp://127.0.0.1:{free_port()}"
    workers = [
        ctx.Process(
            target=_worker,
            args=(
                target,
                tuple(args),
                rank,
                nproc,
                init_method,
                device,
                threads,
                results,
                os.getpid(),
            ),
            daemon=True,  # ended with this process even if it is killed
        )
        for rank in range(nproc)
    ]
    try:
        for worker in workers:
            worker.start()
        return _collect(workers, results, timeout_s)
    finally:
        _end(workers)


def _worker(
    target, args, rank, world_size, init_method, device, threads, results, launcher: int
) -> None:
    """One launched process: join the group, run ``target``, report its result or error (the
    error before leaving the group, with the time it happened: the first failure is the cause,
    later ones are other ranks losing their peer)."""
    import time

    import torch

    _end_with(launcher)
    torch.set_num_threads(threads)
    reported = False
    try:
        with process_group(
            rank=rank,
            world_size=world_size,
            init_method=init_method,
            device=device,
            local_rank=rank,  # one machine: GPU i for rank i
        ):
            try:
                value = target(*args)
            except BaseException as exc:
                results.put((rank, False, _portable(exc, rank, world_size), time.time()))
                reported = True
                raise
        results.put((rank, True, value, 0.0))
    except BaseException as exc:
        if not reported:  # joining or leaving the group failed
            results.put((rank, False, _portable(exc, rank, world_size), time.time()))
        raise SystemExit(1) from None


def _end_with(launcher: int) -> None:
    """On Linux, have the kernel end this worker when the launcher ``launcher`` dies, even by
    SIGKILL (which runs no cleanup in the launcher); elsewhere ``daemon`` covers normal exits."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != launcher:  # it died before the request
        os._exit(1)


def _portable(exc: BaseException, rank: int, world_size: int) -> GenrecError:
    """``exc`` as an error the launcher can re-raise: a genrec error as is, anything else as a
    :class:`DistributedError` carrying its type, message and traceback."""
    if isinstance(exc, GenrecError):
        return exc
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    error = DistributedError(
        f"training process {rank} of {world_size} failed: {type(exc).__name__}: {exc}"
    )
    error.worker_traceback = detail
    return error


def _collect(workers, results, timeout_s: float | None) -> list[Any]:
    """Each worker's result in rank order; raise the earliest failure."""
    import time

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    values: dict[int, Any] = {}
    while len(values) < len(workers):
        try:
            rank, ok, value, when = results.get(timeout=0.2)
        except queue.Empty:
            silent = [r for r, w in enumerate(workers) if w.exitcode not in (None, 0)]
            if silent and results.empty():
                raise DistributedError(
                    f"training process {silent[0]} of {len(workers)} ended with exit code "
                    f"{workers[silent[0]].exitcode} without reporting: it could not start, was "
                    "killed or ran out of memory (its output above says which)"
                ) from None
            if deadline is not None and time.monotonic() > deadline:
                raise DistributedError(
                    f"the {len(workers)} training processes did not finish within {timeout_s} s; "
                    "raise the timeout or train on less data"
                ) from None
            continue
        if not ok:
            raise _earliest([(when, value)], results)
        values[rank] = value
    return [values[rank] for rank in range(len(workers))]


def _earliest(failures: list, results, wait_s: float = 1.0) -> GenrecError:
    """The failure that happened first, among ``failures`` and those reported within
    ``wait_s`` seconds (a rank whose peer failed fails too, a little later)."""
    with contextlib.suppress(queue.Empty):
        while True:
            _, ok, value, when = results.get(timeout=wait_s)
            if not ok:
                failures.append((when, value))
    return min(failures, key=lambda failure: failure[0])[1]


def _end(workers, grace_s: float = 5.0) -> None:
    """Let finished workers exit; terminate, then kill, any still running."""
    for worker in workers:
        if worker.exitcode is None and worker.pid is not None:
            worker.join(grace_s if all(w.exitcode in (None, 0) for w in workers) else 0.1)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
            worker.join(grace_s)
        if worker.is_alive():
            worker.kill()
            worker.join()


__all__ = [
    "Group",
    "all_sum",
    "backend_for",
    "barrier",
    "broadcast_from_main",
    "current",
    "free_port",
    "launch",
    "process_group",
    "threads_per_process",
]
