"""Scenario ``efficiency``: what a model costs to train and to serve, and an energy and CO2
estimate from a stated power model.

CPU seconds are the process's CPU time (``time.process_time``: every thread, user + system)
around the fit and around scoring the evaluated users; peak memory is the resident set sampled
every 20 ms (:class:`genrec.evaluation.runner.PeakRSS`). This machine exposes no energy counters
(no RAPL access, no GPU), so energy is estimated, CodeCarbon-style, from a power model:

    energy_kWh = (cpu_seconds * WATTS_PER_CORE + wall_seconds * peak_GB * WATTS_PER_GB) / 3.6e6
    co2_g      = energy_kWh * GRAMS_CO2_PER_KWH

with the constants below (change them in :class:`PowerModel`). The numbers are estimates of
the order of magnitude, good for comparing models on one machine, not a measurement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from genrec.audit.context import AuditContext
from genrec.audit.results import Definition, Finding, point

NAME = "efficiency"
HEADLINE = "energy_wh_train"


@dataclass(frozen=True)
class PowerModel:
    """The stated power model of the energy estimate (see the module docstring)."""

    watts_per_core: float = 15.0  # one busy core of a ~65 W, 4-core server CPU (TDP / cores,
    #                               CodeCarbon's fallback when it cannot read counters is TDP-based)
    watts_per_gb: float = 0.375  # resident memory: CodeCarbon's 3 W per 8 GB
    grams_co2_per_kwh: float = (
        475.0  # world-average grid intensity (IEA 2019; CodeCarbon's default)
    )

    def energy_kwh(self, cpu_seconds: float, wall_seconds: float, peak_mb: float) -> float:
        return (
            cpu_seconds * self.watts_per_core + wall_seconds * peak_mb / 1024 * self.watts_per_gb
        ) / 3.6e6


POWER = PowerModel()
METRICS = {
    "cpu_seconds_train": Definition(
        "CPU time of the process during fit (all threads).", "time.process_time", "lower"
    ),
    "wall_seconds_train": Definition("Elapsed time of fit.", "time.perf_counter", "lower"),
    "peak_memory_mb": Definition(
        "Peak resident memory of the process while fitting (sampled "
        "every 20 ms; includes the interpreter, libraries and data).",
        "/proc/self/statm; genrec.evaluation.runner.PeakRSS",
        "lower",
    ),
    "memory_increase_mb": Definition(
        "Peak resident memory during fit minus the resident memory "
        "when the fit began (what fitting added; models fitted "
        "earlier in the same process stay resident).",
        "/proc/self/statm",
        "lower",
    ),
    "cpu_seconds_per_1k_recs": Definition(
        "CPU time of scoring all items and taking the top-K, per 1,000 users served.",
        "time.process_time around genrec.evaluation.protocol.evaluate",
        "lower",
    ),
    "energy_wh_train": Definition(
        "Estimated energy of fit in watt-hours under the power model "
        "(module docstring of genrec.audit.efficiency).",
        "power model after CodeCarbon (TDP share per core, 3 W / 8 GB RAM)",
        "lower",
    ),
    "energy_wh_per_1k_recs": Definition(
        "Estimated energy of serving 1,000 users, watt-hours.", "same power model", "lower"
    ),
    "co2_g_train": Definition(
        "Estimated CO2-equivalent of fit, grams: energy x 475 g/kWh.",
        "IEA 2019 world average grid intensity (CodeCarbon default)",
        "lower",
    ),
    "co2_g_per_1k_recs": Definition(
        "Estimated CO2-equivalent of serving 1,000 users, grams.", "same", "lower"
    ),
}


def applies(model) -> str | None:
    return None


def run(ctx: AuditContext, label: str) -> Finding:
    ctx.evaluation(label)  # fits and scores once; records the costs
    c = ctx.costs[label]
    per_k = 1000.0 / max(c.recommendations, 1)
    train_kwh = POWER.energy_kwh(c.fit_cpu_seconds, c.fit_wall_seconds, c.peak_rss_mb)
    serve_kwh = POWER.energy_kwh(c.score_cpu_seconds, c.score_wall_seconds, c.peak_rss_mb) * per_k
    metrics = {
        "cpu_seconds_train": point(c.fit_cpu_seconds),
        "wall_seconds_train": point(c.fit_wall_seconds),
        "peak_memory_mb": point(c.peak_rss_mb),
        "memory_increase_mb": point(c.peak_rss_mb - c.start_rss_mb),
        "cpu_seconds_per_1k_recs": point(c.score_cpu_seconds * per_k),
        "energy_wh_train": point(train_kwh * 1000),
        "energy_wh_per_1k_recs": point(serve_kwh * 1000),
        "co2_g_train": point(train_kwh * POWER.grams_co2_per_kwh),
        "co2_g_per_1k_recs": point(serve_kwh * POWER.grams_co2_per_kwh),
    }
    settings = {
        "power_model": asdict(POWER),
        "threads": ctx.options.n_threads,
        "users_scored": c.recommendations,
        "note": "estimates from a power model; no energy counters on this machine",
    }
    return Finding(label, NAME, metrics, settings)
