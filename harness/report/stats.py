"""Seed statistics: mean ± 95 % Student-t interval, Welch interval of a difference, and the noise rule.

Why Student t: sweeps have few seeds (2–5), where a normal interval would be far too narrow.
The noise rule the report uses: a difference is claimed only if both sides have n ≥ 2 and their intervals are disjoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """Mean of n seeds with the half-width of its 95 % interval (nan when n < 2)."""

    mean: float
    half: float
    n: int

    @property
    def lo(self) -> float:
        return self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean + self.half

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and math.isfinite(self.half)


def estimate(values: Iterable[float]) -> Estimate:
    """Mean ± t_{0.975, n-1} · s / √n over the finite values."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, math.nan, 1)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Estimate(mean, half, n)


def difference(a: Estimate, b: Estimate, sd_a: float, sd_b: float) -> Estimate:
    """a − b with a Welch interval (unequal variances); half is nan when either side has n < 2."""
    mean = a.mean - b.mean
    n = min(a.n, b.n)
    if a.n < 2 or b.n < 2:
        return Estimate(mean, math.nan, n)
    va, vb = sd_a ** 2 / a.n, sd_b ** 2 / b.n
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Estimate(mean, 0.0, n)
    dof = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    return Estimate(mean, float(stats.t.ppf(0.5 + LEVEL / 2, dof) * se), n)


def sample_sd(values: Iterable[float]) -> float:
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1)) if x.size >= 2 else math.nan


def within_noise(a: Estimate, b: Estimate) -> bool:
    """True unless both have an interval and the two intervals are disjoint."""
    if not (a.has_interval and b.has_interval):
        return True
    return not (a.hi < b.lo or b.hi < a.lo)
