"""M2PO's second-moment selections, found by a bucketed selection in O(n) expected time (no full sort).

Two published computations need the order statistics of s_t = (log r_t)² over a population of tokens:

- **drop** (:func:`select_m2_mask`): drop the fewest largest-s tokens of the population so that the mean of s over the
  *remaining population* is ≤ τ. This is Algorithm 1 of arXiv 2510.01161 with the population = the trust-region
  tokens T (``m2po/paper``), and AReaL's ``_get_m2po_loss_mask`` with the population = every valid token
  (``m2po/areal``). Tokens outside the population are never dropped and never counted.
- **water-fill** (:func:`water_fill_bound`): the clip bound of the official M2PO code
  (``_solve_tau_from_sorted_delta2`` in Infini-AI-Lab/M2PO ``verl/trainer/ppo/core_algos.py``, commit af54a3e):
  the largest breakpoint τ² = s_(k−1) of the ascending order such that capping s at τ² keeps Σ_T min(s, τ²) below
  the budget τ_M2 · |T|.

Conventions of the drop (shared by the greedy reference in the tests):
- k is the smallest number of top tokens whose removal makes the mean of the rest ≤ τ (< τ with ``strict``, AReaL's
  comparison); the mean of zero remaining tokens counts as 0 (so with ``strict`` and τ = 0 every token goes);
- ``keep_one`` never drops the whole population (AReaL keeps the single smallest token);
- ties in s are broken by position: among equal values the earlier token (row-major order) is dropped first;
- τ = +inf keeps every token.

Why buckets: a stable float64 sort of 1 M values costs ~200 ms on one CPU thread, while the answer only depends on
the values near the cut. The values are bucketed by the top bits of their float pattern (1/256 of a binade per
bucket); per-bucket counts, sums and maxima (one pass each) locate the bucket where the cut falls exactly, and only
that bucket is sorted. The
mean of the remaining tokens only falls as larger tokens are dropped, so the predicate is monotone and the bucket
search is exact; the answer equals that of the full sort (tested against the naive greedy loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import torch

MANTISSA_BITS = 8
# the official code's tolerance in `_solve_tau_from_sorted_delta2` and `kpo_clip_harmful_tokens`
OFFICIAL_EPS = 1e-12
NO_CLIP_BOUND = 100000.0  # what the official code returns as "no clipping needed" (a ratio bound, not a τ)


@dataclass
class M2Selection:
    keep: torch.Tensor      # bool, same shape as the input: valid tokens that survive the mask
    m2_before: float        # mean of s over the population
    m2_after: float         # mean of s over the kept population (0.0 when none are kept)
    n_valid: int
    n_population: int
    n_dropped: int

    @property
    def masked_frac(self) -> float:
        """Dropped tokens as a fraction of all valid tokens (AReaL's 1 − n_valid_tokens after / before)."""
        return self.n_dropped / self.n_valid if self.n_valid else 0.0


@dataclass
class _Buckets:
    """The population split into buckets of ascending value ranges, with each bucket's count, sum and maximum."""
    ids: torch.Tensor       # bucket of each value
    counts: torch.Tensor    # float64 [B]
    sums: torch.Tensor      # float64 [B]
    maxes: torch.Tensor     # float64 [B] (−inf for an empty bucket)


def _bucketize(values: torch.Tensor) -> _Buckets:
    """Bucket non-negative float64 values by the top bits of their IEEE-754 pattern (sign, exponent and the first
    ``MANTISSA_BITS`` of the mantissa): for non-negative floats the bit pattern orders exactly like the value, so the
    buckets are ascending value ranges (1/256 of a binade each), equal values share one, and no search is needed."""
    keys = values.view(torch.int64) >> (52 - MANTISSA_BITS)
    keys = keys - keys.min()
    b = int(keys.max()) + 1
    counts = torch.bincount(keys, minlength=b).to(torch.float64)
    sums = torch.bincount(keys, weights=values, minlength=b)
    maxes = torch.full((b,), -math.inf, dtype=torch.float64).scatter_reduce(0, keys, values, "amax")
    return _Buckets(keys, counts, sums, maxes)


def _top_k_to_drop(values: torch.Tensor, tau: float, strict: bool) -> torch.Tensor:
    """Positions (into ``values``) of the fewest largest values whose removal brings the mean of the rest to ≤ τ
    (< τ if ``strict``); ties: the earlier position goes first. ``values`` is float64, 1-D, its mean above τ.
    The rest is always summed from the small end, as a loop over the kept tokens would."""
    m = values.numel()

    def ok(rest_sum: torch.Tensor, rest_cnt: torch.Tensor) -> torch.Tensor:
        bound = tau * rest_cnt
        # the empty rest has mean 0: it passes "≤ τ" always and "< τ" only when τ > 0
        empty = torch.full_like(rest_cnt, 0.0 < tau if strict else True, dtype=torch.bool)
        return torch.where(rest_cnt > 0, rest_sum < bound if strict else rest_sum <= bound, empty)

    bk = _bucketize(values)
    # keeping buckets 0..j (dropping every bucket above j) for j = 0 … B−1: passes[j] is true for the low j (much
    # dropped) and false above some j; the cut lies in the lowest failing bucket c (keeping c whole fails, dropping
    # c whole passes). One fails: keeping everything is the mean, which exceeds τ.
    passes = ok(bk.sums.cumsum(0), bk.counts.cumsum(0))
    c = int((~passes).nonzero()[0, 0])
    below_sum = bk.sums[:c].sum()
    below_cnt = bk.counts[:c].sum()
    in_c = (bk.ids == c).nonzero().squeeze(1)
    order = torch.sort(values[in_c], descending=True, stable=True).indices
    vals_c = values[in_c][order]
    # dropping the top t = 1 … len of bucket c leaves vals_c[t:]
    left = vals_c.flip(0).cumsum(0).flip(0)
    rest_sum = below_sum + torch.cat([left[1:], torch.zeros(1, dtype=torch.float64)])
    rest_cnt = below_cnt + torch.arange(vals_c.numel() - 1, -1, -1, dtype=torch.float64)
    hit = ok(rest_sum, rest_cnt).nonzero()
    t = int(hit[0, 0]) + 1 if hit.numel() else vals_c.numel()
    assert t <= m
    return torch.cat([(bk.ids > c).nonzero().squeeze(1), in_c[order[:t]]])


def select_m2_mask(
    sq: torch.Tensor,
    valid: torch.Tensor,
    population: torch.Tensor,
    tau: float,
    *,
    strict: bool = False,
    keep_one: bool = False,
) -> M2Selection:
    """Drop the fewest largest-``sq`` tokens of ``population`` so that the mean of ``sq`` over the remaining population
    is ≤ τ. ``sq`` holds (log r)² per token (detached here), ``valid`` the tokens of the batch, ``population`` the
    tokens that are both averaged and droppable (intersected with ``valid``); other valid tokens are always kept.
    Work is done in float64 so the selection does not depend on the summation order of float32."""
    tau = float(tau)
    if math.isnan(tau) or tau < 0:
        raise ValueError(f"M2 threshold τ must be ≥ 0 (or inf), got {tau}")
    valid_b = valid.bool()
    v = valid_b.reshape(-1)
    pop = population.bool().reshape(-1) & v
    n_valid = int(v.sum())
    keep = v.clone()
    pop_idx = pop.nonzero().squeeze(1)
    m = pop_idx.numel()
    values = sq.detach().reshape(-1)[pop_idx].to(torch.float64)
    total = float(values.sum())
    m2_before = total / m if m else 0.0
    within = m2_before < tau if strict else m2_before <= tau
    if m == 0 or math.isinf(tau) or within:
        return M2Selection(keep.view_as(valid_b), m2_before, m2_before, n_valid, m, 0)
    drop = _top_k_to_drop(values, tau, strict)
    if keep_one and drop.numel() == m:
        # the token that would be dropped last stays: the smallest value, the latest among equals
        smallest = int((values == values.min()).nonzero()[-1, 0])
        drop = drop[drop != smallest]
    keep[pop_idx[drop]] = False
    k = drop.numel()
    kept = torch.ones(m, dtype=torch.bool)
    kept[drop] = False
    m2_after = float(values[kept].sum()) / (m - k) if m - k else 0.0
    return M2Selection(keep.view_as(valid_b), m2_before, m2_after, n_valid, m, k)


def water_fill_bound(sq: torch.Tensor, budget: float) -> Tuple[float, float, float]:
    """The official M2PO clip bound for the trust-region values ``sq`` (1-D): returns (τ, M2 before, M2 after).

    Follows ``kpo_clip_harmful_tokens`` → ``_solve_tau_from_sorted_delta2`` (Infini-AI-Lab/M2PO, commit af54a3e):
    with u ascending, n = |T| and target S = budget · n, no clip (τ = ``NO_CLIP_BOUND`` as a log bound of +inf) when
    mean(u) ≤ budget + 1e-12; otherwise k = the first index with (u_k − 1e-12)·(n − k − 1) + Σ_{i≤k} u_i ≥ S − 1e-12;
    τ = 0 when k = 0 (the official code then reports the unclipped mean as "M2 after", reproduced here), else
    τ = √(u_{k−1} − 1e-12) and M2 after = (u_{k−1}·(n − k) + Σ_{i<k} u_i) / n, the mean of min(u, u_{k−1}).
    """
    values = sq.detach().reshape(-1).to(torch.float64)
    n = values.numel()
    if n == 0:
        return math.inf, 0.0, 0.0
    total = float(values.sum())
    m2 = total / n
    if m2 <= budget + OFFICIAL_EPS:
        return math.inf, m2, m2
    target = budget * n
    # A zero budget has no official answer: `_solve_tau_from_sorted_delta2` returns a bare 0.0 there, not the
    # (τ, M2 after) pair its caller unpacks, so the official code raises TypeError. τ = 0 (every harmful ratio clamped
    # to 1, M2 reported unclipped as in its k = 0 case) is this implementation's choice, not the official code's.
    if target <= OFFICIAL_EPS:
        return 0.0, m2, m2
    bk = _bucketize(values)
    # F(k) = (u_k − eps)(n − k − 1) + csum[k] is non-decreasing in k: evaluate it at each bucket's last element
    end_cnt = bk.counts.cumsum(0)                # global index of a bucket's last element + 1
    end_sum = bk.sums.cumsum(0)
    f_end = (bk.maxes - OFFICIAL_EPS) * (n - end_cnt) + end_sum
    reached = (f_end >= target - OFFICIAL_EPS) & (bk.counts > 0)
    c = int(reached.nonzero()[0, 0])
    below_cnt = float(end_cnt[c] - bk.counts[c])
    below_sum = float(end_sum[c] - bk.sums[c])
    vals_c = values[bk.ids == c].sort().values
    ks = below_cnt + torch.arange(vals_c.numel(), dtype=torch.float64)
    csum = below_sum + vals_c.cumsum(0)
    f = (vals_c - OFFICIAL_EPS) * (n - ks - 1) + csum
    p = int((f >= target - OFFICIAL_EPS).nonzero()[0, 0])
    k = int(below_cnt) + p
    if k == 0:
        return 0.0, m2, m2
    if p > 0:
        prev, prev_csum = float(vals_c[p - 1]), float(csum[p - 1])
    else:
        prev = float(bk.maxes[:c][bk.counts[:c] > 0][-1])
        prev_csum = below_sum
    # the official √(u_{k−1} − 1e-12) is complex (and raises TypeError downstream) when u_{k−1} < 1e-12; the floor
    # at 0 is this implementation's choice
    tau = max(prev - OFFICIAL_EPS, 0.0) ** 0.5
    return tau, m2, (prev * (n - k) + prev_csum) / n
