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
BERT4Rec, TIGER (all with LayerNorm) and GRU4Rec with BPR-max. The
default (``threads=None``) follows the machine's load (:func:`free_cores`), so a run is resolved
to a fixed count once (:meth:`RunOptions.pinned`) and results record it; pass that count to
reproduce a run.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from genrec.errors import ConfigError


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
        device: torch device for models that use torch ("cpu" here).
        threads: intra-op threads; ``None`` means :func:`free_cores` at the time of use. Part of
            what makes a run reproducible (see the module docstring).
        progress: show progress bars on long work.
    """

    seed: int = 42
    device: str = "cpu"
    threads: int | None = None
    progress: bool = False

    def __post_init__(self):
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {self.threads!r}")

    @property
    def n_threads(self) -> int:
        """The thread count to use now: :attr:`threads`, or :func:`free_cores` (which changes with
        the machine's load: use :meth:`pinned` to decide it once for a whole run)."""
        return self.threads or free_cores()

    def pinned(self) -> "RunOptions":
        """These options with ``threads`` decided now (:attr:`n_threads`) when it was ``None``, so
        every fit of a run uses, and its results record, the same count."""
        return self if self.threads is not None else dataclasses.replace(self, threads=self.n_threads)

    def track(self, iterable, *, total: int | None = None, desc: str = "", unit: str = "it"):
        """``iterable`` with a progress bar when :attr:`progress` is on."""
        return progress_bar(iterable, enabled=self.progress, total=total, desc=desc, unit=unit)

    def apply_threads(self) -> None:
        """Set torch's intra-op thread count to :attr:`n_threads`."""
        import torch

        torch.set_num_threads(self.n_threads)


def progress_bar(iterable, *, enabled: bool, total: int | None = None, desc: str = "",
                 unit: str = "it"):
    """``iterable`` in a tqdm bar, silent unless ``enabled`` (so ``set_postfix`` always works)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled)
