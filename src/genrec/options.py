"""Run-time options: how to run (seed, device, threads, progress), never what to learn.

Hyper-parameters live in each model's typed config; these travel separately so that the same
config gives the same model on any machine.

Reproducibility: the same data, config, seed *and thread count* give bit-identical weights and
scores on one machine and library stack. The thread count is part of the recipe because some CPU
kernels split a reduction across threads and add the partial sums in thread order (LayerNorm's
weight and bias gradients; a large tensor summed to one number), so another count changes the
last bits of a gradient, and over many epochs that can move a metric in the third decimal. On
tiny data, 1 and 2 threads give identical scores for BPR, MultDAE, MultVAE, CDAE, DiffRec,
L-DiffRec, IRGAN, ListCVAE and GRU4Rec (CE) and different low bits for RecVAE, SASRec/gSASRec,
BERT4Rec, TIGER (all with LayerNorm) and GRU4Rec with BPR-max. The default (``threads=None``)
follows the machine's load (:func:`free_cores`), so a run is resolved to a fixed count once
(:meth:`RunOptions.pinned`) and results record it; pass that count to reproduce a run.

Threads: :meth:`RunOptions.capped_threads` caps torch's intra-op pool *and* the BLAS/OpenMP pools
numpy and scipy call into (through threadpoolctl), so a run on ``n`` threads never
oversubscribes the machine with a second, uncapped pool; both are restored afterwards.

Device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA when torch sees a
GPU, else CPU). :meth:`RunOptions.pinned` resolves ``"auto"`` once and checks that the device
exists, so every part of a run uses, and its results record, one concrete device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from genrec.errors import ConfigError

DEVICES = ("cpu", "cuda", "cuda:N", "mps", "auto")  # the accepted forms of RunOptions.device
PRECISIONS = ("auto", "float32", "bfloat16")  # RunOptions.precision
_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps|auto")


def free_cores() -> int:
    """Cores not busy right now (from the load average): the safe default thread count.

    OpenMP spin-waiting makes a 2-thread run many times slower than a 1-thread run when another
    process holds a core, so we never default to ``os.cpu_count()`` blindly. (The CLI passes 1
    under CI.)
    """
    n_cpu = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(n_cpu, int(n_cpu - busy + 0.5)))


@dataclass(frozen=True)
class RunOptions:
    """How to run a fit or an evaluation.

    Attributes:
        seed: seed of every random choice (sampling, initialisation, shuffling).
        device: torch device of every neural model's weights and batches: one of
            :data:`DEVICES` (``"auto"``: CUDA when available, else CPU; :meth:`pinned` resolves
            it). Models without torch ignore it.
        threads: intra-op threads; ``None`` means :func:`free_cores` at the time of use. Part of
            what makes a run reproducible (see the module docstring).
        progress: show progress bars on long work.
        precision: the arithmetic of neural training's forward passes: ``"auto"`` (mixed
            precision on CUDA: bfloat16, or float16 with loss scaling; float32 elsewhere),
            ``"float32"`` (never mixed) or ``"bfloat16"`` (bfloat16 autocast on any device,
            the CPU included: about 2x faster SASRec epochs on a CPU with AVX-512 BF16, see
            docs/scale.md). Weights stay float32 in every case.
        on_validation: called as ``on_validation(epoch, value)`` with each validation NDCG@10
            an epoch-based trainer computes (early stopping); hyper-parameter search prunes and
            trackers log through it. An exception it raises stops the fit and propagates.
    """

    seed: int = 42
    device: str = "cpu"
    threads: int | None = None
    progress: bool = False
    precision: str = "auto"
    on_validation: Callable[[int, float], None] | None = field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ConfigError(
                f"threads must be a positive integer (or None: the free cores), "
                f"got {self.threads!r}"
            )
        check_device(self.device)
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )

    @property
    def n_threads(self) -> int:
        """The thread count to use now: :attr:`threads`, or :func:`free_cores` (which changes with
        the machine's load: use :meth:`pinned` to decide it once for a whole run)."""
        return self.threads or free_cores()

    def pinned(self) -> RunOptions:
        """These options with ``threads`` decided now (:attr:`n_threads`) when it was ``None`` and
        ``device`` resolved (:func:`resolve_device`), so every fit of a run uses, and its results
        record, the same count and device.

        Raises:
            ConfigError: the device is not available on this machine.
        """
        threads = self.n_threads if self.threads is None else self.threads
        device = resolve_device(self.device)
        if (threads, device) == (self.threads, self.device):
            return self
        return dataclasses.replace(self, threads=threads, device=device)

    def track(self, iterable, *, total: int | None = None, desc: str = "", unit: str = "it"):
        """``iterable`` with a progress bar when :attr:`progress` is on."""
        return progress_bar(iterable, enabled=self.progress, total=total, desc=desc, unit=unit)

    def apply_threads(self) -> None:
        """Set torch's intra-op thread count to :attr:`n_threads` for the rest of the process
        (scripts that own their process; the library uses :meth:`capped_threads`)."""
        import torch

        torch.set_num_threads(self.n_threads)

    def capped_threads(self) -> contextlib.AbstractContextManager[None]:
        """A ``with`` block running on :attr:`n_threads` threads, torch and BLAS/OpenMP alike,
        restoring the caller's counts after it (``fit`` and evaluation leave process-wide state
        as they found it). See :func:`capped_threads`."""
        return capped_threads(self.n_threads)


def check_device(device) -> None:
    """Raise :class:`ConfigError` unless ``device`` is one of the forms in :data:`DEVICES`
    (whether it exists on this machine is :func:`resolve_device`'s question)."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(
            f"device must be one of {', '.join(DEVICES)}, got {device!r}; "
            "use --device cpu, or auto to take a GPU when there is one"
        )


def resolve_device(device: str) -> str:
    """The concrete device ``device`` names on this machine: ``"auto"`` becomes ``"cuda"`` when
    torch sees a GPU and ``"cpu"`` otherwise; other values are checked and returned as given.

    Raises:
        ConfigError: CUDA (or device ``cuda:N``, or MPS) was asked for and this machine or torch
            build lacks it; the message suggests ``--device cpu`` or ``auto``.
    """
    check_device(device)
    if device == "cpu":
        return device  # no torch import for models that never use it
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError(
                "device 'mps' is not available (no Apple GPU, or torch without MPS); "
                "use --device cpu or --device auto"
            )
        return device
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asks for CUDA, but this machine has no CUDA GPU (or torch "
            f"{torch.__version__} is a CPU build); use --device cpu or --device auto"
        )
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"cuda:0..cuda:{torch.cuda.device_count() - 1}; pick one of them or use --device auto"
        )
    return device


@contextlib.contextmanager
def capped_threads(n: int) -> Iterator[None]:
    """Run the block with torch's intra-op pool and every BLAS/OpenMP pool numpy, scipy and
    torch loaded (OpenBLAS, MKL, BLIS, libgomp/libomp) capped at ``n`` threads; restore all of
    them afterwards. Pools are found by threadpoolctl when the block starts, so a library first
    loaded inside the block is not capped by it."""
    from threadpoolctl import threadpool_limits

    with torch_threads(n), threadpool_limits(limits=n):
        yield


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch intra-op threads, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def progress_bar(
    iterable,
    *,
    enabled: bool,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    file: IO[str] | None = None,
):
    """``iterable`` with progress shown on ``file`` (default stderr) when ``enabled``.

    The one place genrec decides how progress looks: a tqdm bar on a terminal; on a file or a
    pipe (a log), which carriage-return frames would fill, at most a dozen plain lines (the
    start, every 10% of ``total``, the end) from :class:`LineProgress`; nothing unless
    ``enabled``. Every form supports ``set_postfix`` and ``close``.
    """
    file = sys.stderr if file is None else file
    if enabled and not _is_terminal(file):
        return LineProgress(iterable, total=total, desc=desc, unit=unit, file=file)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, file=file)


def _is_terminal(file) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress:
    """Progress as whole lines, for streams that are not terminals.

    Writes ``desc: n/total unit (p%) key=value ...`` when iteration starts, each time another
    10% of ``total`` is done (only the start and the end when ``total`` is unknown), and a last
    line with the elapsed time when the iterable is exhausted, the loop is left, or
    :meth:`close` is called.
    """

    STEPS = 10  # lines between start and end when the total is known

    def __init__(self, iterable, *, total: int | None, desc: str, unit: str, file: IO[str]):
        if total is None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        self.iterable, self.total, self.desc, self.unit, self.file = (
            iterable,
            total,
            desc,
            unit,
            file,
        )
        self.n, self.postfix, self.closed, self._start = 0, "", False, time.perf_counter()

    def __iter__(self):
        self._write()
        next_line = self._milestone(1)
        try:
            for item in self.iterable:
                yield item
                self.n += 1
                if next_line is not None and self.n >= next_line and self.n < (self.total or 0):
                    self._write()
                    next_line = self._milestone(self.n * self.STEPS // self.total + 1)
        finally:
            self.close()

    def _milestone(self, step: int) -> int | None:
        """The item count at which the ``step``-th tenth of the total is done."""
        if not self.total:
            return None
        return max(1, -(-step * self.total // self.STEPS))

    def set_postfix(self, ordered_dict=None, **kwargs) -> None:
        values = {**dict(ordered_dict or {}), **kwargs}
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._write(done=True)

    def _write(self, *, done: bool = False) -> None:
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        tail = f" in {time.perf_counter() - self._start:.1f}s" if done else ""
        parts = (
            f"{self.desc}:" if self.desc else "",
            f"{count} {self.unit}{share}{tail}",
            self.postfix,
        )
        print(" ".join(p for p in parts if p), file=self.file, flush=True)
