"""Uncertainty and significance for per-user metric arrays.

* :func:`bootstrap_ci` — percentile bootstrap interval of a per-user mean (vectorised, chunked so
  memory stays bounded for millions of users);
* :func:`paired_tests` — paired t-test and Wilcoxon signed-rank test of two models on the same
  users;
* :func:`holm` — Holm-Bonferroni adjusted p-values;
* :func:`compare_with_best` — every model against the best one, Holm-adjusted across models;
* :func:`group_gap` — one model's metric between disjoint user groups (unpaired): the gap
  between the best and worst group with a bootstrap interval and a test of equal groups.

Corpus-level set statistics (coverage, Gini) get no interval: resampling users with replacement
shrinks the set of recommended items, so a percentile bootstrap of them is biased downwards.

All randomness comes from ``numpy.random.default_rng(seed)``: the same seed gives the same
interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import scipy.stats

from genrec.errors import ConfigError, DataError

__all__ = ["bootstrap_ci", "paired_tests", "holm", "compare_with_best", "group_gap"]

# Largest number of resampled indices held at once (int64: 32 MB).
_CHUNK_ELEMENTS = 1 << 22


def bootstrap_ci(
    values: np.ndarray, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over users.

    Args:
        values: (U,) per-user metric values; NaNs (users without a defined value) are dropped.
        n_resamples: bootstrap resamples (users drawn with replacement, U' = non-NaN count).
        level: coverage of the interval, in (0, 1).
        seed: seed of the resampling generator.

    Returns:
        ``(low, high)``, the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
        resampled means. Resamples are drawn in chunks of at most ~4M indices.

    Raises:
        ConfigError: ``n_resamples < 1`` or ``level`` outside (0, 1).
        DataError: no non-NaN value.

    Example:
        >>> low, high = bootstrap_ci(np.arange(100.0), n_resamples=200)
        >>> bool(low < 49.5 < high)
        True
    """
    _check_resampling(n_resamples, level)
    values = _finite_values(values)
    n = values.size
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, rows_per_chunk):
        rows = min(rows_per_chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(rows, n))  # (rows, U')
        means[start : start + rows] = values[idx].mean(axis=1)
    return _percentile_interval(means, level)


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired t-test and Wilcoxon signed-rank test of ``a`` against ``b`` on the same users.

    Args:
        a, b: (U,) per-user values of two models, aligned by user. Pairs where either is NaN
            are dropped.

    Returns:
        ``{"n": pairs used, "mean_diff": mean(a - b), "p_t": two-sided paired t-test p-value,
        "p_wilcoxon": two-sided Wilcoxon signed-rank p-value}`` from ``scipy.stats.ttest_rel``
        and ``scipy.stats.wilcoxon`` (default ``zero_method="wilcox"``: zero differences are
        dropped). When every difference is zero both p-values are 1.0.

    Raises:
        DataError: shapes differ, or fewer than two non-NaN pairs.

    Example:
        >>> out = paired_tests(np.array([1., 2., 3.]), np.array([1., 2., 3.]))
        >>> out["p_t"], out["p_wilcoxon"]
        (1.0, 1.0)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise DataError(f"a and b must be 1-D arrays aligned by user; got {a.shape}, {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if a.size < 2:
        raise DataError(f"paired tests need at least 2 users with both values; got {a.size}")
    diff = a - b
    out = {"n": int(a.size), "mean_diff": float(diff.mean())}
    if not diff.any():
        return {**out, "p_t": 1.0, "p_wilcoxon": 1.0}
    with warnings.catch_warnings():
        # scipy warns about precision loss when differences are (nearly) constant.
        warnings.simplefilter("ignore", RuntimeWarning)
        p_t = float(scipy.stats.ttest_rel(a, b).pvalue)
        p_w = float(scipy.stats.wilcoxon(diff).pvalue)
    return {**out, "p_t": p_t, "p_wilcoxon": p_w}


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order.

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) * p_(j))``, so
    the adjusted values keep the order of the raw ones and never exceed 1. Reject the
    hypotheses whose adjusted p-value is below alpha.

    Raises:
        DataError: a p-value that is NaN or outside [0, 1].

    Example:
        >>> holm(np.array([0.01, 0.04, 0.03]))
        array([0.03, 0.06, 0.06])
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise DataError(f"p-values must lie in [0, 1]; got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])  # (m,)
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def compare_with_best(
    per_user: Mapping[str, np.ndarray], *, alpha: float = 0.05
) -> dict[str, dict]:
    """Test every model against the one with the highest mean on the same users.

    The same as :func:`compare_with` with the best model as the reference, plus ``"best"``
    (True for that model). ``significant`` then means: worse than the best by both tests.

    Example:
        >>> out = compare_with_best({"a": np.array([1., 2., 3.]), "b": np.array([0., 1., 2.])})
        >>> out["a"]["best"], out["b"]["mean_diff"]
        (True, -1.0)
    """
    if not per_user:
        raise ConfigError("compare_with_best needs at least one model; got none")
    means = {
        name: _finite_values(np.asarray(v, np.float64), name).mean() for name, v in per_user.items()
    }
    best = max(means, key=means.get)  # first on a tie
    out = compare_with(per_user, best, alpha=alpha)
    return {name: {"best": name == best, **row} for name, row in out.items()}


def compare_with(
    per_user: Mapping[str, np.ndarray], reference: str, *, alpha: float = 0.05
) -> dict[str, dict]:
    """Test every model against ``reference`` on the same users (paired, Holm-corrected).

    Args:
        per_user: model name -> (U,) per-user values of one metric, aligned by user (NaNs
            dropped pairwise). Higher is better.
        reference: the name of the model the others are compared with.
        alpha: significance level for the Holm-adjusted p-values.

    Returns:
        For each model ``{"mean", "mean_diff": mean(model - reference), "p_t", "p_wilcoxon",
        "p_t_holm", "p_wilcoxon_holm", "significant", "verdict"}``. Holm's correction runs over
        the non-reference models, separately for the t-test and the Wilcoxon p-values.
        ``significant`` is True when *both* adjusted p-values are below ``alpha``; ``verdict`` is
        ``"better"`` or ``"worse"`` (significant, by the sign of ``mean_diff``), ``"no
        significant difference"``, or ``"reference"`` (whose p-values are NaN).

    Raises:
        ConfigError: no models, a reference that is not among them, or ``alpha`` outside (0, 1).
        DataError: arrays of different lengths, a model with no non-NaN value, or fewer than
            two users with values for both models of a pair.

    Example:
        >>> out = compare_with({"a": np.array([1., 2., 3.]), "b": np.array([1., 2., 3.5])}, "a")
        >>> out["b"]["verdict"], out["b"]["mean_diff"]
        ('no significant difference', 0.16666666666666666)
    """
    if reference not in per_user:
        raise ConfigError(f"the reference model {reference!r} is not among {list(per_user)}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must lie in (0, 1); got {alpha}")
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in per_user.items()}
    if len({v.shape for v in arrays.values()}) != 1:
        raise DataError(
            "per-user arrays must have one shape (the same users); got "
            f"{ {name: v.shape for name, v in arrays.items()} }"
        )
    means = {name: _finite_values(v, name).mean() for name, v in arrays.items()}
    others = [name for name in arrays if name != reference]
    tests = {name: paired_tests(arrays[name], arrays[reference]) for name in others}
    p_t_holm = holm(np.array([tests[n]["p_t"] for n in others]))
    p_w_holm = holm(np.array([tests[n]["p_wilcoxon"] for n in others]))
    nan = float("nan")
    out = {
        reference: {
            "mean": float(means[reference]),
            "mean_diff": 0.0,
            "p_t": nan,
            "p_wilcoxon": nan,
            "p_t_holm": nan,
            "p_wilcoxon_holm": nan,
            "significant": False,
            "verdict": "reference",
        }
    }
    for name, pt, pw in zip(others, p_t_holm, p_w_holm):
        significant = bool(pt < alpha and pw < alpha)
        diff = tests[name]["mean_diff"]
        verdict = (
            ("better" if diff > 0 else "worse") if significant else "no significant difference"
        )
        out[name] = {
            "mean": float(means[name]),
            "mean_diff": diff,
            "p_t": tests[name]["p_t"],
            "p_wilcoxon": tests[name]["p_wilcoxon"],
            "p_t_holm": float(pt),
            "p_wilcoxon_holm": float(pw),
            "significant": significant,
            "verdict": verdict,
        }
    return {name: out[name] for name in arrays}


def group_gap(
    groups: Mapping[str, np.ndarray], *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> dict:
    """How far apart the per-user means of disjoint user groups are (e.g. NDCG by gender).

    Args:
        groups: group name -> (U_g,) per-user values of one metric (NaNs dropped); at least two
            groups with two values each.
        n_resamples, level, seed: as :func:`bootstrap_ci`.

    Returns:
        ``{"gap", "ci_low", "ci_high", "high", "low", "p_value", "test"}``: ``gap`` is the
        largest group mean minus the smallest (``high`` and ``low`` name those groups); the
        interval resamples users with replacement *within each group* and recomputes
        ``mean(high) - mean(low)`` for the two groups named (percentile bootstrap);
        ``p_value`` is Welch's unequal-variance t-test for two groups and the Kruskal-Wallis
        H-test for more (scipy), testing that the groups do not differ.

    Raises:
        DataError: fewer than two groups with at least two values.

    Example:
        >>> out = group_gap({"a": np.array([1., 1., 0., 1.]), "b": np.array([0., 0., 1., 0.])})
        >>> out["gap"], out["high"], out["low"], out["test"]
        (0.5, 'a', 'b', 'welch_t')
    """
    _check_resampling(n_resamples, level)
    values = {}
    for name, v in groups.items():
        v = np.asarray(v, np.float64).ravel()
        v = v[~np.isnan(v)]
        if v.size >= 2:
            values[name] = v
    if len(values) < 2:
        raise DataError(
            f"group_gap needs at least two groups with two or more values; got "
            f"sizes { {n: int(np.size(v)) for n, v in groups.items()} }"
        )
    means = {name: v.mean() for name, v in values.items()}
    high, low = max(means, key=means.get), min(means, key=means.get)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for r in range(n_resamples):  # two small resamples per round
        a, b = values[high], values[low]
        diffs[r] = (
            a[rng.integers(0, a.size, a.size)].mean() - b[rng.integers(0, b.size, b.size)].mean()
        )
    ci_low, ci_high = _percentile_interval(diffs, level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if len(values) == 2:
            p = scipy.stats.ttest_ind(*values.values(), equal_var=False).pvalue
            test = "welch_t"
        else:
            try:
                p = scipy.stats.kruskal(*values.values()).pvalue
            except ValueError:  # every value identical
                p = 1.0
            test = "kruskal_wallis"
    p = 1.0 if not np.isfinite(p) else float(p)
    return {
        "gap": float(means[high] - means[low]),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "high": high,
        "low": low,
        "p_value": p,
        "test": test,
    }


def _check_resampling(n_resamples: int, level: float) -> None:
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ConfigError(f"n_resamples must be an integer >= 1; got {n_resamples!r}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must lie in (0, 1), e.g. 0.95; got {level!r}")


def _finite_values(values, name: str = "values") -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise DataError(f"{name} has no non-NaN entry; nothing to summarise")
    return values


def _percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)
