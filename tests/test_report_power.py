"""Power of the paired t test against statsmodels' TTestPower, a textbook sample size and a brute-force simulation of
the test itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sp
from statsmodels.stats.power import TTestPower

from harness.report.power import (
    min_detectable_effect,
    paired_power,
    seeds_needed,
    separation_probability,
)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.floats(0.01, 0.2), st.floats(-0.3, 0.3))
def test_power_matches_statsmodels(n: int, sd: float, delta: float) -> None:
    expected = TTestPower().power(effect_size=delta / sd, nobs=n, alpha=0.05, alternative="two-sided")
    assume(math.isfinite(expected))  # statsmodels' lower tail (scipy's nct.cdf) is nan at large noncentrality
    assert paired_power(delta, sd, n) == pytest.approx(expected, abs=1e-9)


def test_power_stays_finite_where_the_noncentral_cdf_does_not() -> None:
    # n = 17, effect 2.25 SD: scipy's nct.cdf(−crit) is nan, so statsmodels' power is; the lower tail is ~0 there
    assert math.isnan(TTestPower().power(effect_size=2.25, nobs=17, alpha=0.05, alternative="two-sided"))
    crit = sp.t.ppf(0.975, 16)
    assert paired_power(2.25, 1.0, 17) == pytest.approx(sp.nct.sf(crit, 16, 2.25 * math.sqrt(17)), abs=1e-12)
    assert paired_power(-2.25, 1.0, 17) == pytest.approx(paired_power(2.25, 1.0, 17), abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20, 100])
def test_minimum_detectable_effect_matches_statsmodels(n: int) -> None:
    sd = 0.045
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    assert min_detectable_effect(sd, n) == pytest.approx(d * sd, rel=1e-5)    # statsmodels' solver tolerance
    assert paired_power(min_detectable_effect(sd, n), sd, n) == pytest.approx(0.8, abs=1e-9)


@pytest.mark.parametrize("effect", [0.2, 0.5, 0.8, 1.0, 1.5, 3.0])
def test_seeds_needed_matches_statsmodels(effect: float) -> None:
    sd = 0.045
    n = TTestPower().solve_power(effect_size=effect, nobs=None, alpha=0.05, power=0.8, alternative="two-sided")
    assert seeds_needed(effect * sd, sd) == max(2, math.ceil(n - 1e-9))
    assert seeds_needed(-effect * sd, sd) == seeds_needed(effect * sd, sd)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.05, 3.0), st.sampled_from([0.01, 0.05, 0.1]), st.sampled_from([0.5, 0.8, 0.95]))
def test_seeds_needed_is_the_first_n_that_reaches_the_power(effect: float, alpha: float, power: float) -> None:
    n = seeds_needed(effect, 1.0, alpha, power)
    assert n is not None and paired_power(effect, 1.0, n, alpha) >= power
    assert n == 2 or paired_power(effect, 1.0, n - 1, alpha) < power


def test_textbook_sample_size() -> None:
    # Cohen (1988) / G*Power "difference from constant": d = 0.5, two-sided α = 0.05, power 0.80 -> n = 34
    assert seeds_needed(0.5, 1.0) == 34
    assert paired_power(0.5, 1.0, 33) < 0.8 <= paired_power(0.5, 1.0, 34)


def test_power_is_the_rejection_rate_of_the_paired_t_test_by_simulation() -> None:
    rng = np.random.default_rng(3)
    n, sd = 6, 0.045
    delta = min_detectable_effect(sd, n)
    d = rng.normal(delta, sd, size=(40_000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    rejected = np.abs(t) > sp.t.ppf(0.975, n - 1)
    assert rejected.mean() == pytest.approx(0.8, abs=0.01)


def test_degenerate_inputs() -> None:
    assert math.isnan(min_detectable_effect(0.03, 1)) and math.isnan(paired_power(0.1, 0.03, 1))
    assert min_detectable_effect(0.0, 5) == 0.0
    assert seeds_needed(0.0, 0.03) is None                 # no n separates a difference of 0
    assert seeds_needed(1e-6, 1.0) is None                 # beyond any practical n
    assert seeds_needed(0.1, 0.0) == 2


def test_more_seeds_separate_smaller_differences() -> None:
    mdes = [min_detectable_effect(0.045, n) for n in (2, 5, 10, 20)]
    assert mdes == sorted(mdes, reverse=True)
    # at the observed SD of the contrasts (0.045) five seeds separate about 0.074, ten about 0.045
    assert mdes[1] == pytest.approx(0.0744, abs=0.002) and mdes[2] == pytest.approx(0.0448, abs=0.002)


def test_separation_probability_agrees_with_a_simulation_of_the_demo() -> None:
    rng = np.random.default_rng(7)
    observed = rng.normal(0.04, 0.045, size=10)
    est = separation_probability(observed, n=8, draws=40_000)
    mean, sd = observed.mean(), observed.std(ddof=1)
    assert est.mean == pytest.approx(mean) and est.sd == pytest.approx(sd)
    # plug-in: the chance that eight normal differences at the observed mean and SD give an interval above 0
    d = rng.normal(mean, sd, size=(40_000, 8))
    lo = d.mean(axis=1) - sp.t.ppf(0.975, 7) * d.std(axis=1, ddof=1) / math.sqrt(8)
    assert est.noncentral_t == pytest.approx((lo > 0).mean(), abs=0.01)
    # the resampled runs, by a plain loop over scipy's one-sample t interval
    scale = math.sqrt(10 / 9)
    hits = [sp.ttest_1samp(mean + (observed[rng.integers(0, 10, 8)] - mean) * scale, 0.0)
            .confidence_interval(0.95).low > 0 for _ in range(4000)]
    assert est.resampled == pytest.approx(np.mean(hits), abs=0.025)
    assert abs(est.resampled - est.noncentral_t) < 0.15
    # assurance averages over the uncertainty of δ and σ: below the plug-in for a barely-resolved effect
    assert 0 < est.assurance < est.noncentral_t
    more = separation_probability(observed, n=30)
    assert more.noncentral_t > est.noncentral_t and more.assurance > est.assurance


def test_separation_probability_is_directional_and_takes_a_variance_shift() -> None:
    observed = np.array([-0.05, -0.02, -0.09, -0.04, -0.06, -0.01])
    est = separation_probability(observed, n=6)
    assert est.mean < 0 and est.noncentral_t > 0.5          # the interval below 0, as observed
    quieter = separation_probability(observed, n=6, variance_shift=-0.5 * observed.var(ddof=1))
    assert quieter.sd == pytest.approx(math.sqrt(0.5) * observed.std(ddof=1))
    assert quieter.noncentral_t > est.noncentral_t and quieter.resampled > est.resampled
    assert math.isnan(separation_probability([0.1], n=5).noncentral_t)
