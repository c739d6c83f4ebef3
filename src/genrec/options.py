"""Run-time options: how to run (seed, device, threads, progress), never what to learn.

Hyper-parameters live in each model's typed config; these travel separately so that the same
config gives the same model on any machine.
"""

from __future__ import annotations

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
        threads: intra-op threads; ``None`` means :func:`free_cores`.
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
        return self.threads or free_cores()

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
