"""Each statistic against an independent reference: scipy's own tests, a published worked example, or a brute-force
inversion of the test the interval belongs to."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from harness.report.stats import (
    Z,
    estimate,
    fieller_ratio,
    newcombe_difference,
    normalised_auc,
    paired_difference,
    steps_to_target,
    welch_difference,
    wilson_interval,
)

samples = st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_t_interval_matches_scipy(x: list) -> None:
    est = estimate(x)
    lo, hi = sp.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sp.sem(x)) if np.std(x) > 0 else (np.mean(x),) * 2
    assert est.n == len(x)
    assert est.lo == pytest.approx(lo, abs=1e-9) and est.hi == pytest.approx(hi, abs=1e-9)


def test_t_interval_by_hand() -> None:
    # 0.40, 0.42, 0.44: mean 0.42, s 0.02, t(0.975, 2) = 4.302653 -> half 4.302653 · 0.02 / √3 = 0.049683
    assert estimate([0.40, 0.42, 0.44]).half == pytest.approx(0.049683, abs=1e-6)
    one = estimate([0.5])
    assert one.n == 1 and not one.has_interval and one.mean == 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=8))
def test_paired_difference_matches_scipy_ttest_rel(pairs: list) -> None:
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    d = np.subtract(a, b)
    est = paired_difference(a, b)
    assert est.n == len(pairs) and est.mean == pytest.approx(d.mean(), abs=1e-12)
    if d.std() > 1e-9:
        ci = sp.ttest_rel(a, b).confidence_interval(0.95)
        assert est.lo == pytest.approx(ci.low, abs=1e-9) and est.hi == pytest.approx(ci.high, abs=1e-9)


def test_paired_interval_is_tighter_than_welch_when_seeds_share_an_effect() -> None:
    seed = np.array([-0.1, 0.0, 0.1, 0.05, -0.05])
    a, b = 0.5 + seed + [0.01, -0.01, 0.0, 0.01, -0.005], 0.4 + seed
    paired, welch = paired_difference(a, b), welch_difference(a, b)
    assert paired.excludes(0.0) and not welch.excludes(0.0)
    assert paired.half < welch.half / 5


@settings(max_examples=60, deadline=None)
@given(samples, samples)
def test_welch_matches_scipy(a: list, b: list) -> None:
    est = welch_difference(a, b)
    if np.std(a) > 1e-6 and np.std(b) > 1e-6:
        ci = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        assert est.lo == pytest.approx(ci.low, abs=1e-9) and est.hi == pytest.approx(ci.high, abs=1e-9)


def test_wilson_published_example_and_score_test_inversion() -> None:
    # Newcombe (1998a), example 81/263: Wilson 95 % interval 0.2553 to 0.3662
    lo, hi = wilson_interval(81 / 263, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    # independent reading: the p0 on a fine grid whose score test does not reject
    for k, n in ((0, 10), (3, 10), (10, 10), (110, 512)):
        grid = np.linspace(1e-6, 1 - 1e-6, 200001)
        accept = grid[np.abs(k / n - grid) <= Z * np.sqrt(grid * (1 - grid) / n)]
        lo, hi = wilson_interval(k / n, n)
        assert lo == pytest.approx(max(accept.min(), 0.0) if k else 0.0, abs=1e-4)
        assert hi == pytest.approx(accept.max() if k < n else 1.0, abs=1e-4)


def test_newcombe_published_example() -> None:
    # Newcombe (1998b), example (a): 56/70 − 48/80 = 0.2000, method 10 interval 0.0524 to 0.3339
    est = newcombe_difference(56 / 70, 70, 48 / 80, 80)
    assert est.mean == pytest.approx(0.2)
    assert (round(est.lo, 4), round(est.hi, 4)) == (0.0524, 0.3339)
    assert est.excludes(0.0)
    assert not newcombe_difference(0.30, 512, 0.28, 512).excludes(0.0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0.25, 1.0, width=32), st.floats(0.25, 1.0, width=32)), min_size=3, max_size=6),
       st.booleans())
@example([(0.8125, 0.8125), (0.8125, 0.8125), (0.59375, 0.59375)], True)  # a = b: a point, as wide as rounding
@example([(1.0, 1.0), (1.0, 1.0), (0.59375, 0.59375)], True)              # ... and ā / b̄ rounded below it
def test_fieller_is_the_inverted_t_test(pairs: list, paired: bool) -> None:
    """Fieller's set = the ρ for which a t test of mean(a − ρ b) = 0 does not reject (paired: one-sample t on the
    pairs' a − ρ b; unpaired: Welch-free, covariance 0, dof min(n) − 1)."""
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    ratio, lo, hi = fieller_ratio(a, b, paired=paired)
    assert ratio == pytest.approx(a.mean() / b.mean())
    n = len(a)
    t = sp.t.ppf(0.975, n - 1)


    def accepted(rho: np.ndarray) -> np.ndarray:
        if paired:  # one-sample t statistic of d = a − ρ b, for every ρ at once
            d = a[None, :] - rho[:, None] * b[None, :]
            se = d.std(axis=1, ddof=1) / math.sqrt(n)
        else:
            se = np.sqrt(a.var(ddof=1) / n + rho ** 2 * b.var(ddof=1) / n)
        return np.abs(a.mean() - rho * b.mean()) <= t * se + 1e-12

    if not math.isfinite(lo):
        assert accepted(np.array([-1e6, 1e6])).any()  # unbounded: the set reaches arbitrarily far
        return
    eps = 1e-6 * max(1.0, abs(lo), abs(hi))
    assert lo - 1e-12 <= ratio <= hi + 1e-12
    if hi - lo < 2 * eps:  # no spread (a = ρ b for every pair): a point, up to the square root of a rounding error
        return
    assert accepted(np.array([lo + eps, hi - eps])).all()   # just inside: the test does not reject
    assert not accepted(np.array([lo - eps, hi + eps])).any()  # just outside: it rejects
    grid = np.linspace(lo - 1.0, hi + 1.0, 20001)
    inside = (grid > lo + eps) & (grid < hi - eps)
    outside = (grid < lo - eps) | (grid > hi + eps)
    ok = accepted(grid)
    assert ok[inside].all() and not ok[outside].any()


def test_fieller_unbounded_when_the_denominator_may_be_zero() -> None:
    _, lo, hi = fieller_ratio([0.5, 0.6, 0.4], [0.1, -0.1, 0.05])
    assert lo == -math.inf and hi == math.inf
    ratio, lo, hi = fieller_ratio([0.5], [0.25])
    assert ratio == 2.0 and math.isnan(lo) and math.isnan(hi)


def test_learning_speed_by_hand() -> None:
    steps, values = [50, 100, 150, 200], [0.2, 0.4, 0.5, 0.45]
    assert steps_to_target(steps, values, 0.4) == 100        # first eval step at or above the target
    assert steps_to_target(steps, values, 0.45) == 150
    assert math.isnan(steps_to_target(steps, values, 0.6))   # not reached
    # trapezoids: (0.2+0.4)/2·50 + (0.4+0.5)/2·50 + (0.5+0.45)/2·50 = 15 + 22.5 + 23.75 = 61.25, over 150 steps
    assert normalised_auc(steps, values) == pytest.approx(61.25 / 150)
    assert normalised_auc([400], [0.3]) == pytest.approx(0.3)
    assert normalised_auc(steps, [0.5] * 4) == pytest.approx(0.5)  # a flat curve's AUC is its level
