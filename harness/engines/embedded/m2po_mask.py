"""M2PO's second-moment token mask, selected in O(n log n).

M2PO bounds the second moment of the log importance ratio, M2 = (1/N) Σ (log r_t)², over the N valid tokens of a batch:
while M2 > τ it drops the masking candidates with the largest (log r)². Dropping one token at a time and recomputing
the mean is O(n²); sorting the candidates once and reading suffix sums gives the same answer in O(n log n).

Conventions (shared by every M2PO reading in the loss registry and by the greedy reference in the tests):
- the mean after dropping k tokens is taken over the remaining valid tokens: (Σ_valid s − Σ_dropped s) / (N − k),
  i.e. a dropped token leaves both the numerator and the denominator of M2 (paper, Algorithm 1; AReaL's suffix mean);
- k is the smallest number of top candidates whose removal makes that mean ≤ τ (or < τ with ``strict``, AReaL's
  comparison); the mean of zero remaining tokens counts as 0;
- if no k works (the non-candidates alone exceed τ), every candidate is dropped — what the greedy loop does when it
  runs out of candidates;
- ties in s are broken by position: among equal values the earlier token (row-major order) is dropped first;
- τ = +inf keeps every token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class M2Selection:
    keep: torch.Tensor      # bool, same shape as the input: valid tokens that survive the mask
    m2_before: float        # mean of s over all valid tokens
    m2_after: float         # mean of s over the kept tokens (0.0 when none are kept)
    n_valid: int
    n_dropped: int

    @property
    def masked_frac(self) -> float:
        return self.n_dropped / self.n_valid if self.n_valid else 0.0


def select_m2_mask(
    sq: torch.Tensor,
    valid: torch.Tensor,
    candidates: torch.Tensor,
    tau: float,
    *,
    strict: bool = False,
    keep_one: bool = False,
) -> M2Selection:
    """Drop the fewest largest-``sq`` candidates so that the mean of ``sq`` over the remaining valid tokens is ≤ τ.

    ``sq`` holds (log r)² per token (detached here), ``valid`` the tokens that count, ``candidates`` those that may be
    dropped (intersected with ``valid``). ``strict`` compares with < instead of ≤; ``keep_one`` never drops every
    valid token (AReaL keeps the single smallest one). Work is done in float64 so the selection does not depend on
    the summation order of float32.
    """
    tau = float(tau)
    if math.isnan(tau) or tau < 0:
        raise ValueError(f"M2 threshold τ must be ≥ 0 (or inf), got {tau}")
    valid_b = valid.bool()
    flat_sq = sq.detach().reshape(-1).to(torch.float64)
    v = valid_b.reshape(-1)
    c = candidates.bool().reshape(-1) & v
    n = int(v.sum())
    keep = v.clone()
    m2_before = float(flat_sq[v].mean()) if n else 0.0
    if n == 0 or math.isinf(tau):
        return M2Selection(keep.view_as(valid_b), m2_before, m2_before, n, 0)

    cand_idx = c.nonzero().squeeze(1)
    m = cand_idx.numel()
    cand_vals = flat_sq[cand_idx]
    order = torch.sort(cand_vals, descending=True, stable=True).indices
    sorted_vals = cand_vals[order]
    base = flat_sq[v & ~c].sum()
    # suffix[k] = sum of the candidates left after dropping the top k; suffix[m] = 0 exactly
    suffix = torch.zeros(m + 1, dtype=torch.float64)
    if m:
        suffix[:m] = sorted_vals.flip(0).cumsum(0).flip(0)
    remaining_sum = base + suffix
    remaining_cnt = n - torch.arange(m + 1, dtype=torch.float64)
    bound = tau * remaining_cnt
    ok = remaining_sum < bound if strict else remaining_sum <= bound
    hits = ok.nonzero()
    k = int(hits[0, 0]) if hits.numel() else m
    if keep_one and k == n:
        k = n - 1
    keep[cand_idx[order[:k]]] = False
    m2_after = float(flat_sq[keep].mean()) if n - k else 0.0
    return M2Selection(keep.view_as(valid_b), m2_before, m2_after, n, k)
