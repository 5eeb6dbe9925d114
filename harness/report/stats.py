"""The report's statistics, each a textbook reading, with no report logic in it.

Why these: sweeps have few seeds (1–5), and seeds are *paired* — the same seed is the same train-problem stream,
base model and sampling seed for every algorithm and staleness — so a comparison of two cells is a paired difference
with a Student-t interval whenever seeds match; a Welch interval when they do not; and with one seed the only
uncertainty that can be stated is the sampling of the eval problems (a binomial proportion), while the seed-to-seed
variance stays unknown. Learning speed is read from the eval curve: steps to a target and the normalised area.
All intervals are two-sided at LEVEL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import stats

Curve = Union[Sequence[float], np.ndarray]  # an eval curve's steps or values

LEVEL = 0.95
Z = float(stats.norm.ppf(0.5 + LEVEL / 2))


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its interval [lo, hi] (nan when there is none) and the n it rests on."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half(self) -> float:
        """Half-width; for an asymmetric interval, the larger side."""
        return max(self.mean - self.lo, self.hi - self.mean) if self.has_interval else math.nan

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def excludes(self, value: float = 0.0) -> bool:
        return self.has_interval and (self.hi < value or self.lo > value)


def symmetric(mean: float, half: float, n: int) -> Estimate:
    return Estimate(mean, mean - half, mean + half, n)


def _finite(values: Iterable[Optional[float]]) -> np.ndarray:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    return x[np.isfinite(x)]


def _t(dof: float) -> float:
    return float(stats.t.ppf(0.5 + LEVEL / 2, dof))


def estimate(values: Iterable[Optional[float]]) -> Estimate:
    """One-sample Student-t interval of a mean: x̄ ± t_{0.975, n−1} · s / √n over the finite values (no interval
    when n < 2)."""
    x = _finite(values)
    n = int(x.size)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, math.nan, math.nan, 1)
    return symmetric(mean, _t(n - 1) * float(x.std(ddof=1)) / math.sqrt(n), n)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """Paired-sample t interval (the paired t test's interval): d_i = a_i − b_i over pairs where both are finite,
    d̄ ± t_{0.975, n−1} · s_d / √n. n is the number of pairs."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return estimate(x[keep] - y[keep])


def welch_difference(a: Iterable[float], b: Iterable[float]) -> Estimate:
    """Welch's unequal-variance t interval of ā − b̄ with the Welch–Satterthwaite degrees of freedom; for samples
    that cannot be paired. No interval when either side has n < 2; n is the smaller side."""
    x, y = _finite(a), _finite(b)
    if x.size == 0 or y.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean() - y.mean())
    n = int(min(x.size, y.size))
    if x.size < 2 or y.size < 2:
        return Estimate(mean, math.nan, math.nan, n)
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        return symmetric(mean, 0.0, n)
    dof = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    return symmetric(mean, _t(dof) * se, n)


def wilson_interval(p: float, n: int) -> Tuple[float, float]:
    """Wilson score interval of a binomial proportion p = k/n (Wilson 1927; Agresti & Coull 1998): the p₀ whose
    score test |p − p₀| ≤ z·√(p₀(1 − p₀)/n) does not reject. Used for one seed's eval reward over n eval problems."""
    if not (math.isfinite(p) and n and n > 0):
        return (math.nan, math.nan)
    p = min(max(p, 0.0), 1.0)
    z2 = Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_difference(p1: float, n1: int, p2: float, n2: int) -> Estimate:
    """Newcombe's hybrid score interval of p1 − p2 (Newcombe 1998, method 10), built from the two Wilson
    intervals: d − √((p1−l1)² + (u2−p2)²) to d + √((u1−p1)² + (p2−l2)²). Used for two single-seed eval rewards:
    it covers the sampling of the eval problems only (treated as independent samples), never seed variance."""
    l1, u1 = wilson_interval(p1, n1)
    l2, u2 = wilson_interval(p2, n2)
    d = p1 - p2
    if not all(math.isfinite(v) for v in (l1, u1, l2, u2)):
        return Estimate(d, math.nan, math.nan, 1)
    return Estimate(d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
                    d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2), 1)


def fieller_ratio(a: Sequence[float], b: Sequence[float], paired: bool = True) -> Tuple[float, float, float]:
    """(ratio ā / b̄, lower, upper) by Fieller's theorem (Fieller 1954): the ρ for which the t test of
    mean(a − ρ·b) = 0 does not reject. Paired: the covariance of the pairs enters and dof = n − 1; unpaired:
    covariance 0 and the conservative dof = min(n_a, n_b) − 1. Bounds are ±inf when b̄ is not clearly away from 0
    (the set is then unbounded), nan when there is no interval (n < 2)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
    else:
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return (math.nan, math.nan, math.nan)
    ma, mb = float(x.mean()), float(y.mean())
    ratio = ma / mb if mb else math.nan
    if min(x.size, y.size) < 2:
        return (ratio, math.nan, math.nan)
    vaa, vbb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    vab = float(np.cov(x, y, ddof=1)[0, 1]) / x.size if paired else 0.0
    t2 = _t((x.size if paired else min(x.size, y.size)) - 1) ** 2
    # (ma − ρ mb)² ≤ t² (vaa − 2ρ vab + ρ² vbb)  ⇔  A ρ² − 2 B ρ + C ≤ 0
    qa, qb, qc = mb * mb - t2 * vbb, ma * mb - t2 * vab, ma * ma - t2 * vaa
    disc = qb * qb - qa * qc
    if qa <= 0:  # the denominator's interval contains 0: the confidence set is unbounded
        return (ratio, -math.inf, math.inf)
    root = math.sqrt(max(disc, 0.0))
    return (ratio, (qb - root) / qa, (qb + root) / qa)


def steps_to_target(steps: Curve, values: Curve, target: float) -> float:
    """The first eval step whose value is ≥ target (a first-passage time read off the eval curve); nan when the
    curve never reaches it ('not reached')."""
    for step, value in zip(steps, values, strict=True):
        if math.isfinite(value) and value >= target:
            return float(step)
    return math.nan


def normalised_auc(steps: Curve, values: Curve) -> float:
    """Area under the eval curve by the trapezoid rule over the eval points, divided by the step span it covers:
    a time-averaged reward on the reward's own scale (one eval point: its value)."""
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0:
        return math.nan
    if x.size == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / (x[-1] - x[0]))
