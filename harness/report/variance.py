"""Where the spread of a cell's final eval rewards comes from: the eval problems each trail was scored on, or the
seeds.

Reading: the one-way random-effects model (Searle, Casella & McCulloch 1992, *Variance Components*, §3.5, the ANOVA
estimator for balanced data). A trail's eval reward is the share p̂ᵢ of nᵢ eval problems its model solves, an
estimate of its model's accuracy θᵢ on the eval distribution: p̂ᵢ = θᵢ + eᵢ, where θᵢ varies from seed to seed and
the eval-set error eᵢ has the binomial variance of a proportion, θᵢ(1 − θᵢ)/nᵢ (greedy answers are fixed per
problem, so the randomness is which problems were drawn; a sampled answer is one Bernoulli draw per problem, which
gives the same variance). Then E[s²] = σ²_seed + E[θ(1 − θ)/n] for the between-trail variance s² of the p̂ᵢ, and
since E[p̂(1 − p̂)] = θ(1 − θ)(n − 1)/n:
- sampling variance of one trail's reward: the mean over trails of p̂ᵢ(1 − p̂ᵢ)/(nᵢ − 1) (unbiased; with Bernoulli
  data this is the ANOVA's within-trail mean square divided by n);
- seed variance: max(0, s² − sampling), the ANOVA estimator (between minus within mean square, over n), truncated at
  0 as is usual.
The variance of a cell mean over k seeds is (σ²_seed + σ²_sampling)/k: more seeds shrink both terms, a larger eval
set only the second. So more eval problems buy more than doubling the seeds only when the sampling term is larger
than the seed term, and no eval set, however large, brings the variance below σ²_seed / k.

One caveat the model does not carry: every trail of a sweep is scored on the same eval problems (the first n of
the eval split), so their eval-set errors are positively correlated (a hard problem is hard for every trail). Part
of the sampling variance then moves together and does not show in s²: the seed variance above is a lower bound,
the sampling share an upper bound, and a paired difference carries less eval-set noise than the sum of its two
sides' sampling variances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

SEEDS, EVAL_PROBLEMS, UNKNOWN = "more seeds", "more eval problems", "unknown"


@dataclass(frozen=True)
class VarianceSplit:
    """One cell's variance decomposition of a per-trail proportion (variances, not SDs)."""

    trails: int
    eval_size: float     # the mean number of eval problems per trail
    observed: float      # s², between trails (ddof 1); nan with one trail
    sampling: float      # eval-set sampling variance of one trail's reward
    seed: float          # seed-to-seed variance, max(0, s² − sampling); nan with one trail

    @property
    def observed_sd(self) -> float:
        return math.sqrt(self.observed) if math.isfinite(self.observed) else math.nan

    @property
    def sampling_sd(self) -> float:
        return math.sqrt(self.sampling) if math.isfinite(self.sampling) else math.nan

    @property
    def seed_sd(self) -> float:
        return math.sqrt(self.seed) if math.isfinite(self.seed) else math.nan

    @property
    def sampling_share(self) -> float:
        """The eval set's share of one trail's variance, sampling / (seed + sampling)."""
        total = self.seed + self.sampling
        return self.sampling / total if math.isfinite(total) and total > 0 else math.nan

    def mean_variance(self, seeds: int, eval_size: float) -> float:
        """Projected variance of a cell mean over `seeds` trails each scored on `eval_size` problems (the sampling
        term scales as 1/n)."""
        return (self.seed + self.sampling * self.eval_size / eval_size) / seeds

    @property
    def better_buy(self) -> str:
        """Which of doubling the seeds or enlarging the eval set (without limit) lowers a cell mean's variance more:
        the first removes half of seed + sampling, the second at most all of sampling."""
        if not (math.isfinite(self.seed) and math.isfinite(self.sampling)):
            return UNKNOWN
        return EVAL_PROBLEMS if self.sampling > self.seed else SEEDS


def variance_split(values: Sequence[float], eval_sizes: Union[float, Sequence[float]]) -> VarianceSplit:
    """Decompose the per-trail rewards `values` (proportions), scored on `eval_sizes` problems (one number for
    every trail, or one per trail). Non-finite values and sizes below 2 are left out."""
    p = np.asarray(values, dtype=float)
    n = np.broadcast_to(np.asarray(eval_sizes, dtype=float), p.shape)
    keep = np.isfinite(p) & np.isfinite(n) & (n >= 2)
    p, n = np.clip(p[keep], 0.0, 1.0), n[keep]
    if p.size == 0:
        return VarianceSplit(0, math.nan, math.nan, math.nan, math.nan)
    sampling = float(np.mean(p * (1 - p) / (n - 1)))
    if p.size < 2:
        return VarianceSplit(1, float(n.mean()), math.nan, sampling, math.nan)
    observed = float(p.var(ddof=1))
    return VarianceSplit(int(p.size), float(n.mean()), observed, sampling, max(0.0, observed - sampling))


def difference_sampling_variance(a: Sequence[float], b: Sequence[float], size_a: float, size_b: float) -> float:
    """Eval-set sampling variance of one paired difference p̂_a − p̂_b, as if the two evals were independent: the mean
    over pairs of p̂_a(1 − p̂_a)/(n_a − 1) + p̂_b(1 − p̂_b)/(n_b − 1). An upper bound when both were scored on the
    same problems (see the module's caveat)."""
    x, y = np.clip(np.asarray(a, dtype=float), 0, 1), np.clip(np.asarray(b, dtype=float), 0, 1)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any() or not (size_a >= 2 and size_b >= 2):
        return math.nan
    x, y = x[keep], y[keep]
    return float(np.mean(x * (1 - x) / (size_a - 1) + y * (1 - y) / (size_b - 1)))


__all__ = ["EVAL_PROBLEMS", "SEEDS", "UNKNOWN", "VarianceSplit", "difference_sampling_variance", "variance_split"]
