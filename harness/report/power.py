"""Power of a paired comparison: the smallest difference a contrast's n can separate, the n that would separate an
observed difference, and the chance that a smaller or larger run separates it again.

Reading: the paired t test of H0: mean difference = 0, two-sided at level α. When the paired differences are normal
with mean δ and SD σ, its statistic T = d̄ / (s_d / √n) follows a noncentral t with n − 1 degrees of freedom and
noncentrality λ = δ √n / σ, so its power is P(T' > t_{1−α/2, n−1}) + P(T' < −t_{1−α/2, n−1}) (Cohen 1988,
*Statistical Power Analysis for the Behavioral Sciences*, ch. 2; the computation of statsmodels' `TTestPower` and of
G*Power's "difference from constant"). The report's paired 95 % interval excludes 0 exactly when this test rejects at
α = 0.05, so "power" here is the chance that the report would state the difference.

Every figure that plugs in an observed SD (and, for the seeds needed, an observed difference) is an estimate: with
few seeds the SD itself is uncertain, and the observed difference of a "cannot tell" is as likely too small as too
large. `separation_probability` also gives the assurance, which averages the power over that uncertainty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05        # two-sided, as the report's 95 % intervals
POWER = 0.80        # the conventional target (Cohen 1988)
MAX_SEEDS = 1_000_000
WINDOW = 32        # seed counts whose power seeds_needed computes in one call


def _critical(n: int, alpha: float) -> float:
    return float(stats.t.ppf(1 - alpha / 2, n - 1))


def _two_sided(crit: float, dof: int, lam: float) -> float:
    """P(T' > crit) + P(T' < −crit); the lower tail as the upper tail at −λ (the same by symmetry, where scipy's
    nct.cdf returns nan for large λ)."""
    return float(stats.nct.sf(crit, dof, lam) + stats.nct.sf(crit, dof, -lam))


def paired_power(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Two-sided power of the paired t test with n pairs whose differences have mean `delta` and SD `sd`; nan when
    n < 2 or sd is not finite."""
    if n < 2 or not (math.isfinite(sd) and math.isfinite(delta)) or sd < 0:
        return math.nan
    if sd == 0:
        return 1.0 if delta != 0 else alpha
    return _two_sided(_critical(n, alpha), n - 1, delta * math.sqrt(n) / sd)


def min_detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest |mean difference| that n pairs with this SD of differences separate from 0 with the given power
    (two-sided α): λ solves power(λ) = target for the noncentral t with n − 1 degrees of freedom, and the effect is
    λ σ / √n. nan when n < 2 or the SD is unknown; 0 when the SD is 0 (every pair agrees)."""
    if n < 2 or not math.isfinite(sd) or sd < 0:
        return math.nan
    return _noncentrality(n, alpha, power) * sd / math.sqrt(n)


@lru_cache(maxsize=1024)
def _noncentrality(n: int, alpha: float, power: float) -> float:
    """The noncentrality at which the two-sided test with n − 1 degrees of freedom has the given power (a function
    of n alone at fixed α and power, so a report with one seed count solves it once)."""
    crit = _critical(n, alpha)

    def gap(lam: float) -> float:
        return _two_sided(crit, n - 1, lam) - power

    hi = crit + 10.0
    while gap(hi) < 0:
        hi *= 2
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-12))


def seeds_needed(delta: float, sd: float, alpha: float = ALPHA, power: float = POWER,
                 max_seeds: int = MAX_SEEDS) -> Optional[int]:
    """The smallest number of pairs n ≥ 2 whose paired t test separates a true difference `delta` at SD `sd` with the
    given power; None when no n up to `max_seeds` does (delta 0, or tiny against the SD). Power rises with n, so the
    powers of a window of n from just below the normal approximation n ≈ ((z_{1−α/2} + z_power) σ / δ)² are
    computed at once and the first that reaches the target is taken."""
    if not (math.isfinite(delta) and math.isfinite(sd)) or sd < 0 or delta == 0:
        return None
    if sd == 0:
        return 2
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    approx = (z * sd / abs(delta)) ** 2
    if approx > max_seeds:
        return None
    lo = max(2, int(approx) - 2)
    while lo <= max_seeds:
        ns = np.arange(lo, min(lo + WINDOW, max_seeds + 1))
        crit = stats.t.ppf(1 - alpha / 2, ns - 1)
        lam = abs(delta) * np.sqrt(ns) / sd
        reached = np.nonzero(stats.nct.sf(crit, ns - 1, lam) + stats.nct.sf(crit, ns - 1, -lam) >= power)[0]
        if reached.size and reached[0] == 0 and lo > 2:
            lo = max(2, lo - WINDOW + 1)    # the approximation overshot: look lower, the old start included
        elif reached.size:
            return int(ns[reached[0]])
        else:
            lo += WINDOW
    return None


def _directional(delta: np.ndarray, sd: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """P(the two-sided (1 − α) interval lies above 0) per (delta, sd): the noncentral t's upper tail past the
    critical value."""
    crit = _critical(n, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = delta * math.sqrt(n) / sd
    out = stats.nct.sf(crit, n - 1, lam)
    return np.where(sd > 0, out, (delta > 0).astype(float))


@dataclass(frozen=True)
class Separation:
    """Estimates of the chance that a run of `n` paired seeds gives the contrast an interval that excludes 0 on the
    side of the observed mean difference. All three are estimates from `observed_n` seeds, not facts."""

    n: int
    observed_n: int
    mean: float              # the observed mean difference
    sd: float                # the SD of differences the estimate assumes (observed, after any variance shift)
    noncentral_t: float      # plug-in power: δ = the observed mean, σ = `sd`
    resampled: float         # share of resampled runs (n differences drawn with replacement) that separate
    assurance: float         # the power averaged over the uncertainty of δ and σ given the observed seeds


def separation_probability(differences: Sequence[float], n: int, alpha: float = ALPHA,
                           variance_shift: float = 0.0, draws: int = 20_000, seed: int = 0) -> Separation:
    """How likely a run with `n` paired seeds separates a contrast, estimated from a finished sweep's per-seed paired
    differences (a − b per seed). "Separates" means the paired two-sided (1 − α) interval excludes 0 on the side of
    the observed mean, as the report would state it.

    - noncentral_t: the noncentral-t power at δ = the observed mean, σ = the observed SD (the module's reading).
    - resampled: a bootstrap of the whole run: n differences drawn with replacement from the observed ones (their
      deviations from the mean rescaled so that the resampled variance is σ²), each run's t interval checked. It
      keeps the observed shape of the differences, which with few seeds has lighter tails than a normal one, so it
      runs above the plug-in when n exceeds the seeds observed.
    - assurance: the expected power when δ and σ are themselves uncertain (O'Hagan, Stevens & Campbell 2005,
      "Assurance in clinical trial design", Pharmaceutical Statistics 4:187): draws from their posterior under the
      reference prior p(μ, σ²) ∝ 1/σ² (σ² ~ (m − 1) s² / χ²_{m−1}, δ ~ N(d̄, σ²/m), m observed seeds), each draw's
      power averaged. It is lower than the plug-in when the observed effect is barely resolved.
    `variance_shift` is added to the variance of the differences before any estimate: e.g. minus the eval-set
    sampling variance of a difference at the sweep's eval size plus that at the planned one (variance.py).
    """
    d = np.asarray([v for v in differences if v is not None and math.isfinite(v)], dtype=float)
    m = int(d.size)
    if m < 2 or n < 2:
        return Separation(n, m, float(d.mean()) if m else math.nan, math.nan, math.nan, math.nan, math.nan)
    mean, s = float(d.mean()), float(d.std(ddof=1))
    sd = math.sqrt(max(0.0, s * s + variance_shift))
    sign = 1.0 if mean >= 0 else -1.0
    plug_in = float(_directional(np.array([sign * mean]), np.array([sd]), n, alpha)[0])
    rng = np.random.default_rng(seed)
    # deviations rescaled so that the resampling distribution's variance is sd² (the empirical one's is s²(m−1)/m)
    dev = (d - mean) * (sd / s * math.sqrt(m / (m - 1)) if s > 0 else 0.0)
    runs = sign * (mean + dev[rng.integers(0, m, size=(draws, n))])
    run_sd = runs.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = runs.mean(axis=1) / (run_sd / math.sqrt(n))
    resampled = float(np.mean(np.where(run_sd > 0, t > _critical(n, alpha), runs.mean(axis=1) > 0)))
    sigma2 = s * s * (m - 1) / rng.chisquare(m - 1, size=draws)
    delta = sign * rng.normal(mean, np.sqrt(sigma2 / m))
    assurance = float(_directional(delta, np.sqrt(np.maximum(0.0, sigma2 + variance_shift)), n, alpha).mean())
    return Separation(n, m, mean, sd, plug_in, resampled, assurance)


__all__ = ["ALPHA", "POWER", "Separation", "min_detectable_effect", "paired_power", "seeds_needed",
           "separation_probability"]
