"""The variance decomposition against a naive one-way ANOVA on the 0/1 answers, statsmodels' mixed model (REML, which
equals the ANOVA estimator on balanced data) and a simulation of seeds and eval sets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from harness.report.variance import (
    EVAL_PROBLEMS,
    SEEDS,
    UNKNOWN,
    difference_sampling_variance,
    variance_split,
)


def _answers(rng: np.random.Generator, accuracies: list, n: int) -> np.ndarray:
    """trails × problems matrix of 0/1 answers."""
    return (rng.random((len(accuracies), n)) < np.asarray(accuracies)[:, None]).astype(float)


def test_matches_a_naive_one_way_anova_of_the_answers() -> None:
    rng = np.random.default_rng(0)
    y = _answers(rng, [0.55, 0.62, 0.60, 0.70, 0.48], 512)
    k, n = y.shape
    means = y.mean(axis=1)
    ms_between = n * ((means - y.mean()) ** 2).sum() / (k - 1)
    ms_within = ((y - means[:, None]) ** 2).sum() / (k * (n - 1))
    split = variance_split(means, n)
    assert split.observed == pytest.approx(ms_between / n, rel=1e-12)
    assert split.sampling == pytest.approx(ms_within / n, rel=1e-12)
    assert split.seed == pytest.approx((ms_between - ms_within) / n, rel=1e-12)


def test_matches_statsmodels_mixed_model_reml() -> None:
    rng = np.random.default_rng(1)
    y = _answers(rng, [0.52, 0.64, 0.58, 0.69, 0.45, 0.60], 256)
    frame = pd.DataFrame({"y": y.ravel(), "trail": np.repeat(np.arange(y.shape[0]), y.shape[1])})
    fit = smf.mixedlm("y ~ 1", frame, groups=frame["trail"]).fit(reml=True)
    split = variance_split(y.mean(axis=1), y.shape[1])
    assert split.seed == pytest.approx(float(fit.cov_re.iloc[0, 0]), rel=1e-3)
    assert split.sampling * y.shape[1] == pytest.approx(float(fit.scale), rel=1e-3)


def test_unbiased_by_simulation_of_seeds_and_eval_sets() -> None:
    rng = np.random.default_rng(2)
    seed_sd, n, k, reps = 0.03, 512, 5, 20_000
    theta = np.clip(rng.normal(0.6, seed_sd, size=(reps, k)), 0, 1)
    p = rng.binomial(n, theta) / n
    sampling = (p * (1 - p) / (n - 1)).mean(axis=1)
    raw_seed = p.var(axis=1, ddof=1) - sampling            # before truncation at 0: unbiased for σ²_seed
    assert sampling.mean() == pytest.approx((theta * (1 - theta)).mean() / n, rel=0.01)
    assert raw_seed.mean() == pytest.approx(seed_sd ** 2, rel=0.05)
    one = variance_split(p[0], n)
    assert one.seed == pytest.approx(max(0.0, raw_seed[0])) and one.sampling == pytest.approx(sampling[0])


def test_which_buys_more_precision() -> None:
    # binomial SD at p = 0.6 on 512 problems ≈ 0.0217 (the 0.022); seeds far apart → more seeds
    spread = variance_split([0.50, 0.55, 0.60, 0.65, 0.70], 512)
    p = np.array([0.50, 0.55, 0.60, 0.65, 0.70])
    assert spread.sampling_sd == pytest.approx(math.sqrt(np.mean(p * (1 - p)) / 511), rel=1e-12)
    assert spread.sampling_sd == pytest.approx(0.0217, abs=0.0003)
    assert spread.better_buy == SEEDS and spread.sampling_share < 0.5
    # seeds close together: the eval set is most of the noise → more eval problems
    tight = variance_split([0.59, 0.61, 0.60, 0.62, 0.58], 512)
    assert tight.seed == 0.0 and tight.better_buy == EVAL_PROBLEMS and tight.sampling_share == 1.0
    # the projection: doubling seeds halves the variance of the mean; an infinite eval set leaves σ²_seed / k
    assert spread.mean_variance(10, 512) == pytest.approx(spread.mean_variance(5, 512) / 2)
    assert spread.mean_variance(5, math.inf) == pytest.approx(spread.seed / 5)
    assert variance_split([0.6], 512).better_buy == UNKNOWN


def test_per_trail_sizes_and_bad_values() -> None:
    split = variance_split([0.5, 0.6, math.nan], [100, 4096, 512])
    assert split.trails == 2
    assert split.sampling == pytest.approx((0.25 / 99 + 0.24 / 4095) / 2)
    assert variance_split([], 512).trails == 0


def test_difference_sampling_variance() -> None:
    assert difference_sampling_variance([0.5, 0.6], [0.4, 0.5], 512, 4096) == pytest.approx(
        np.mean([0.25 / 511 + 0.24 / 4095, 0.24 / 511 + 0.25 / 4095]))
    assert math.isnan(difference_sampling_variance([0.5], [0.4], math.nan, 512))
