"""The O(n log n) M2PO mask against a naive greedy reference (drop the largest candidate, recompute, repeat)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from m2po_reference import greedy_keep, water_fill_reference

from harness.engines.embedded.m2po_mask import select_m2_mask, water_fill_bound


def _select(sq, valid, cand, tau, **kw):
    return select_m2_mask(torch.tensor(sq, dtype=torch.float64), torch.tensor(valid), torch.tensor(cand), tau, **kw)


def test_drops_largest_until_mean_below_tau():
    # mean = (0.25 + 3·0.01)/4 = 0.07 > 0.04; without 0.25: 0.03/3 = 0.01 ≤ 0.04 → drop exactly one token
    sel = _select([0.25, 0.01, 0.01, 0.01], [True] * 4, [True] * 4, 0.04)
    assert sel.keep.tolist() == [False, True, True, True]
    assert sel.m2_before == pytest.approx(0.07)
    assert sel.m2_after == pytest.approx(0.01)
    assert sel.masked_frac == pytest.approx(0.25)


def test_below_tau_keeps_everything():
    sel = _select([0.03, 0.05, 0.0], [True] * 3, [True] * 3, 0.04)  # mean 0.08/3 ≈ 0.027 ≤ 0.04
    assert sel.keep.all() and sel.n_dropped == 0 and sel.m2_after == sel.m2_before


def test_dropped_tokens_leave_numerator_and_denominator():
    # the mean after dropping is over the remaining population: (0.04 + 0.04)/2 = 0.04 ≤ τ after one drop.
    # (Keeping the dropped token in the denominator would give 0.08/3 and stop earlier — not this convention.)
    sel = _select([0.5, 0.04, 0.04], [True] * 3, [True] * 3, 0.04)
    assert sel.keep.tolist() == [False, True, True]
    assert sel.m2_after == pytest.approx(0.04)


def test_mean_is_over_the_population_only():
    # the 0.25 token is outside the population: never dropped, never counted. Population {0.09, 0.0, 0.01} has mean
    # 0.0333 ≤ 0.04, so nothing is dropped — averaging over all valid tokens (0.0875) would instead drop the whole
    # population, the misreading that turns M2PO into PPO-clip with ε = 0 under lag.
    sel = _select([0.25, 0.09, 0.0, 0.01], [True] * 4, [False, True, True, True], 0.04)
    assert sel.keep.all() and sel.n_dropped == 0
    assert sel.m2_before == pytest.approx(0.1 / 3) and sel.n_population == 3
    # population {0.25, 0.09, 0.0}: mean 0.113 → drop 0.25 → 0.045 → drop 0.09 → 0.0 ≤ τ; the outsider stays
    sel = _select([0.25, 0.09, 0.0, 0.36], [True] * 4, [True, True, True, False], 0.04)
    assert sel.keep.tolist() == [False, False, True, True] and sel.m2_after == 0.0
    assert sel.masked_frac == pytest.approx(0.5)


def test_invalid_tokens_ignored_and_empty_batch():
    sel = _select([9.0, 0.01, 0.01], [False, True, True], [True] * 3, 0.04)
    assert sel.keep.tolist() == [False, True, True] and sel.n_dropped == 0 and sel.m2_before == pytest.approx(0.01)
    empty = _select([1.0, 2.0], [False, False], [True, True], 0.04)
    assert not empty.keep.any() and empty.masked_frac == 0.0 and empty.m2_after == 0.0


def test_inf_tau_keeps_all_and_negative_tau_rejected():
    sel = _select([100.0, 50.0], [True, True], [True, True], math.inf)
    assert sel.keep.all() and sel.m2_after == pytest.approx(75.0)
    with pytest.raises(ValueError):
        _select([1.0], [True], [True], -0.1)


def test_areal_keep_one_and_strict():
    # every value ≥ τ: AReaL keeps the smallest one instead of dropping every token
    sel = _select([0.25, 0.16], [True, True], [True, True], 0.04, strict=True, keep_one=True)
    assert sel.keep.tolist() == [False, True]
    # mean exactly τ: ≤ keeps it, < drops the largest
    assert _select([0.06, 0.02], [True] * 2, [True] * 2, 0.04).n_dropped == 0
    assert _select([0.06, 0.02], [True] * 2, [True] * 2, 0.04, strict=True).keep.tolist() == [False, True]


def test_ties_broken_by_position_and_shape_kept():
    sel = _select([[0.5, 0.5], [0.0, 0.0]], [[True] * 2] * 2, [[True] * 2] * 2, 0.2)
    # mean 0.25 > 0.2; dropping the first 0.5 gives 0.5/3 ≈ 0.167 ≤ 0.2
    assert sel.keep.tolist() == [[False, True], [True, True]]


# values are multiples of 1/64 (exact in float64) so both implementations compare sums exactly; small range → ties
_vals = st.integers(min_value=0, max_value=96).map(lambda i: i / 64)
_token = st.tuples(_vals, st.booleans(), st.booleans())
_tau = st.one_of(st.integers(min_value=0, max_value=64).map(lambda i: i / 64), st.just(math.inf))


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(_token, min_size=0, max_size=300), tau=_tau, strict=st.booleans(), keep_one=st.booleans(),
       p_cand=st.sampled_from(["mixed", "all", "none"]))
def test_matches_greedy_reference(tokens, tau, strict, keep_one, p_cand):
    sq = [t[0] for t in tokens]
    valid = [t[1] for t in tokens]
    cand = {"mixed": [t[2] for t in tokens], "all": [True] * len(tokens), "none": [False] * len(tokens)}[p_cand]
    if keep_one:  # AReaL's fallback only exists where every valid token is in the population
        cand = [True] * len(tokens)
    sel = select_m2_mask(torch.tensor(sq, dtype=torch.float64), torch.tensor(valid, dtype=torch.bool),
                         torch.tensor(cand, dtype=torch.bool), tau, strict=strict, keep_one=keep_one)
    expected = greedy_keep(sq, valid, cand, tau, strict=strict, keep_one=keep_one)
    assert sel.keep.tolist() == expected
    kept = [s for s, k, c, v in zip(sq, expected, cand, valid, strict=True) if k and c and v]
    assert sel.m2_after == pytest.approx(sum(kept) / len(kept) if kept else 0.0)
    assert sel.n_dropped == sum(valid) - sum(expected)


def test_scales_to_a_large_batch():
    # 200k tokens: sort + suffix sums take milliseconds; the one-at-a-time loop would take hours
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    sq = torch.rand(n, generator=gen, dtype=torch.float64) ** 4  # mean 0.2, heavy right tail
    sel = select_m2_mask(sq, torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool), 0.04)
    assert sel.m2_after <= 0.04 and 0 < sel.masked_frac < 1
    # minimality: putting back the smallest dropped value would push the mean above τ
    dropped_min = sq[~sel.keep].min()
    assert (sq[sel.keep].sum() + dropped_min) / (sel.keep.sum() + 1) > 0.04


def test_bucketed_selection_equals_the_full_sort_on_large_batches():
    # large enough to use many buckets, with ties (quantised values) and a heavy tail; the full-sort answer is the
    # suffix-mean rule of the module docstring computed directly
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        n = 30_000
        sq = (torch.rand(n, generator=gen, dtype=torch.float64) ** 6 * 64).round() / 64
        pop = torch.rand(n, generator=gen) < 0.6
        tau = float(torch.rand(1, generator=gen)) * 0.1
        sel = select_m2_mask(sq, torch.ones(n, dtype=torch.bool), pop, tau)
        vals = sq[pop]
        order = torch.sort(vals, descending=True, stable=True).indices
        rest = vals.sum() - torch.cat([torch.zeros(1, dtype=torch.float64), vals[order].cumsum(0)])
        cnt = vals.numel() - torch.arange(vals.numel() + 1, dtype=torch.float64)
        k = int((rest <= tau * cnt).nonzero()[0, 0])
        expected = torch.ones(n, dtype=torch.bool)
        expected[pop.nonzero().squeeze(1)[order[:k]]] = False
        assert torch.equal(sel.keep, expected), seed


# ---------------------------------------------------------------------------------------------------------------
# the official code's water-filling bound
# ---------------------------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(values=st.lists(_vals, min_size=0, max_size=300), budget=st.integers(min_value=1, max_value=64).map(
    lambda i: i / 256))
def test_water_fill_matches_reference(values, budget):
    tau, before, after = water_fill_bound(torch.tensor(values, dtype=torch.float64), budget)
    ref = water_fill_reference(values, budget)
    assert (tau, before) == pytest.approx(ref[:2]) and after == pytest.approx(ref[2])


def test_water_fill_bound_keeps_the_capped_mean_within_budget():
    gen = torch.Generator().manual_seed(1)
    sq = torch.rand(50_000, generator=gen, dtype=torch.float64) ** 5
    tau, before, after = water_fill_bound(sq, 0.04)
    assert before > 0.04 and 0 < tau < 1
    assert float(sq.clamp(max=tau ** 2).mean()) <= 0.04 + 1e-9
    assert after == pytest.approx(float(sq.clamp(max=tau ** 2 + 1e-12).mean()))
    assert water_fill_bound(sq * 0.0, 0.04)[0] == math.inf
