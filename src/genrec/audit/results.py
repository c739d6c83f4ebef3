"""What one audit cell holds: a metric's value with its interval, a scenario's findings, the
written definition of every metric, and the "n/a" marker.

A metric value is ``{"mean", "ci_low", "ci_high"}``. Per-user quantities (a user's NDCG, a
user's share of long-tail items) get a percentile bootstrap interval over users from
:func:`genrec.evaluation.stats.bootstrap_ci`; corpus-level set statistics (Gini, coverage) get
none (``ci_low = ci_high = None``), for the reason given in :mod:`genrec.evaluation.stats`.
A scenario that does not apply to a model is recorded as :data:`NA` with the reason, never as
zeros.

Example:
    >>> summarise(np.array([0.0, 1.0, 1.0, 0.0]), seed=0)["mean"]
    0.5
    >>> point(0.25)
    {'mean': 0.25, 'ci_low': None, 'ci_high': None}
    >>> family("target_hr@10_attacked[bandwagon,1%,random]")
    'target_hr_attacked'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from genrec.evaluation.stats import bootstrap_ci

NA = "n/a"
N_RESAMPLES = 1000  # bootstrap resamples of every interval in an audit


@dataclass(frozen=True)
class Definition:
    """The written meaning of one metric family (``gini`` covers ``gini@10``, ``gini@20``)."""

    text: str  # what is computed, in words and symbols
    source: str  # where the definition comes from (paper, library file), or "genrec"
    better: str = ""  # "higher", "lower", "0.5" (closest to), or "" when neither


@dataclass
class Finding:
    """One row of ``results``: a model under a scenario.

    ``metrics`` maps a metric name to ``{"mean", "ci_low", "ci_high"}`` (optionally ``p_value``),
    or is :data:`NA` when the scenario does not apply (``settings["reason"]`` says why).
    """

    model: str
    scenario: str
    metrics: dict | str
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "scenario": self.scenario,
            "metrics": self.metrics,
            "settings": self.settings,
        }


def not_applicable(model: str, scenario: str, reason: str) -> Finding:
    """The n/a row of a scenario that does not apply to ``model``."""
    return Finding(model, scenario, NA, {"reason": reason})


def summarise(values, *, seed: int) -> dict:
    """Mean of per-user ``values`` (NaNs dropped) and its 95% bootstrap interval; a single
    finite value gets no interval; none at all gives mean None."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None}
    if finite.size == 1:
        return point(float(finite[0]))
    low, high = bootstrap_ci(finite, n_resamples=N_RESAMPLES, seed=seed)
    return {"mean": float(finite.mean()), "ci_low": float(low), "ci_high": float(high)}


def point(value: float | None) -> dict:
    """A corpus-level value without an interval (None/NaN/inf become None: JSON-safe)."""
    ok = value is not None and math.isfinite(float(value))
    return {"mean": float(value) if ok else None, "ci_low": None, "ci_high": None}


_CUT = re.compile(r"@\d+|\[[^\]]*\]")


def family(metric: str) -> str:
    """The definition key of a metric name: cut-offs ``@K`` and ``[...]`` cell labels removed."""
    return _CUT.sub("", metric)


__all__ = ["Definition", "Finding", "NA", "family", "not_applicable", "point", "summarise"]
