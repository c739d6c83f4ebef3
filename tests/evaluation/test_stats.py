"""Statistics: bootstrap intervals, paired tests checked against scipy, Holm by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.errors import ConfigError, DataError
from genrec.evaluation import stats as S

# ---------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_users():
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 500, 5000):
        values = rng.random(n)
        low, high = S.bootstrap_ci(values, n_resamples=400)
        assert low < values.mean() < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_ci_is_seeded_ignores_nan_and_widens_with_level():
    rng = np.random.default_rng(1)
    values = rng.random(300)
    with_nan = np.concatenate([values, [np.nan] * 20])
    assert S.bootstrap_ci(values, seed=3) == S.bootstrap_ci(values, seed=3)
    low, high = S.bootstrap_ci(with_nan, n_resamples=300)
    assert np.isfinite([low, high]).all() and low < values.mean() < high
    low90, high90 = S.bootstrap_ci(values, level=0.90, n_resamples=300)
    low99, high99 = S.bootstrap_ci(values, level=0.99, n_resamples=300)
    assert low99 <= low90 and high90 <= high99


def test_bootstrap_ci_in_small_chunks(monkeypatch):
    values = np.random.default_rng(2).random(1000)
    monkeypatch.setattr(S, "_CHUNK_ELEMENTS", 1500)  # one resample per chunk
    low, high = S.bootstrap_ci(values, n_resamples=200)
    assert low < values.mean() < high
    assert high - low < 0.1


def test_bootstrap_ci_rejects_bad_arguments():
    with pytest.raises(DataError):
        S.bootstrap_ci(np.array([np.nan, np.nan]))
    with pytest.raises(ConfigError):
        S.bootstrap_ci(np.ones(3), level=1.5)
    with pytest.raises(ConfigError):
        S.bootstrap_ci(np.ones(3), n_resamples=0)


# ---------------------------------------------------------------- paired tests


def test_paired_tests_match_scipy_and_drop_nan_pairs():
    rng = np.random.default_rng(4)
    a = rng.random(120)
    b = a - 0.05 + rng.normal(0, 0.1, size=120)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[[3, 7]] = np.nan
    b_nan[[10]] = np.nan
    keep = np.ones(120, bool)
    keep[[3, 7, 10]] = False
    out = S.paired_tests(a_nan, b_nan)
    assert out["n"] == 117
    assert out["mean_diff"] == pytest.approx(np.mean(a[keep] - b[keep]))
    assert out["p_t"] == pytest.approx(scipy.stats.ttest_rel(a[keep], b[keep]).pvalue)
    assert out["p_wilcoxon"] == pytest.approx(scipy.stats.wilcoxon(a[keep] - b[keep]).pvalue)


def test_paired_tests_all_zero_differences_give_p_one():
    a = np.array([0.1, 0.5, 0.2, np.nan])
    out = S.paired_tests(a, a.copy())
    assert out == {"n": 3, "mean_diff": 0.0, "p_t": 1.0, "p_wilcoxon": 1.0}


def test_paired_tests_rejects_bad_inputs():
    with pytest.raises(DataError):
        S.paired_tests(np.ones(3), np.ones(4))
    with pytest.raises(DataError):
        S.paired_tests(np.array([1.0, np.nan]), np.array([0.0, 1.0]))


# ---------------------------------------------------------------- Holm


def test_holm_hand_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max so far 0.06
    got = S.holm(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(S.holm(np.array([0.5, 0.6])), [1.0, 1.0])
    assert S.holm(np.array([])).shape == (0,)
    with pytest.raises(DataError):
        S.holm(np.array([0.1, np.nan]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_holm_is_monotone_capped_and_no_smaller_than_raw(pvalues):
    p = np.array(pvalues)
    adj = S.holm(p)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)
    assert np.all(adj <= 1.0) and np.all(adj >= p)


# ---------------------------------------------------------------- compare with best


def test_compare_with_best_flags_the_clearly_worse_model_only():
    rng = np.random.default_rng(5)
    best = rng.random(300)
    per_user = {
        "tied": best + rng.normal(0, 0.05, size=300) - 0.001,
        "best": best,
        "worse": best - 0.2 + rng.normal(0, 0.05, size=300),
    }
    out = S.compare_with_best(per_user)
    assert list(out) == ["tied", "best", "worse"]
    assert out["best"]["best"] and not out["best"]["significant"]
    assert out["best"]["mean_diff"] == 0.0 and np.isnan(out["best"]["p_t"])
    assert out["worse"]["significant"] and not out["tied"]["significant"]
    assert out["worse"]["mean_diff"] == pytest.approx(np.mean(per_user["worse"] - best))
    raw_t = np.array([out["tied"]["p_t"], out["worse"]["p_t"]])
    raw_w = np.array([out["tied"]["p_wilcoxon"], out["worse"]["p_wilcoxon"]])
    np.testing.assert_allclose([out["tied"]["p_t_holm"], out["worse"]["p_t_holm"]], S.holm(raw_t))
    np.testing.assert_allclose(
        [out["tied"]["p_wilcoxon_holm"], out["worse"]["p_wilcoxon_holm"]], S.holm(raw_w)
    )
    assert out["worse"]["p_t"] == pytest.approx(
        scipy.stats.ttest_rel(per_user["worse"], best).pvalue
    )


def test_compare_with_best_single_model_and_errors():
    out = S.compare_with_best({"only": np.array([0.1, 0.2])})
    assert out["only"]["best"] and not out["only"]["significant"]
    with pytest.raises(ConfigError):
        S.compare_with_best({})
    with pytest.raises(DataError):
        S.compare_with_best({"a": np.ones(3), "b": np.ones(4)})


def test_compare_with_reference_gives_signed_verdicts():
    rng = np.random.default_rng(6)
    ref = rng.random(300)
    per_user = {
        "ref": ref,
        "up": ref + 0.1 + rng.normal(0, 0.02, 300),
        "same": ref + rng.normal(0, 0.05, 300),
        "down": ref - 0.1 + rng.normal(0, 0.02, 300),
    }
    out = S.compare_with(per_user, "ref")
    assert [out[m]["verdict"] for m in per_user] == [
        "reference",
        "better",
        "no significant difference",
        "worse",
    ]
    assert out["up"]["mean_diff"] == pytest.approx(np.mean(per_user["up"] - ref))
    with pytest.raises(ConfigError, match="reference"):
        S.compare_with(per_user, "ease")
