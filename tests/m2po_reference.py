"""Naive references of the M2PO readings, written from their definitions (one token at a time), for the tests."""

from __future__ import annotations

import math


def greedy_keep(sq, valid, pop, tau, strict=False, keep_one=False):
    """Reference of Algorithm 1 as written: while the mean of sq over the kept *population* exceeds τ, drop the
    largest kept population token (earliest position among ties); tokens outside the population are kept and never
    counted. Stops when the population is empty, or (keep_one) when one population token is left."""
    keep = list(valid)
    members = [bool(v and p) for v, p in zip(valid, pop, strict=True)]
    while True:
        rest = [s for s, k, m in zip(sq, keep, members, strict=True) if k and m]
        mean = sum(rest) / len(rest) if rest else 0.0
        if (mean < tau) if strict else (mean <= tau):
            break
        options = [i for i in range(len(sq)) if keep[i] and members[i]]
        if not options or (keep_one and len(options) == 1):
            break
        keep[max(options, key=lambda i: (sq[i], -i))] = False
    return keep


def water_fill_reference(values, budget):
    """The official solver re-derived from its definition, naively: the first k (ascending order) at which capping
    every value at u_k reaches the budget's total; τ² is the breakpoint before it. Returns (τ, M2 before, after)."""
    n = len(values)
    if n == 0:
        return math.inf, 0.0, 0.0
    m2 = sum(values) / n
    if m2 <= budget + 1e-12:
        return math.inf, m2, m2
    u = sorted(values)
    target = budget * n
    for k in range(n):
        capped_total = sum(min(x, u[k] - 1e-12) for x in u[k + 1:]) + sum(u[: k + 1])
        if capped_total >= target - 1e-12:
            if k == 0:
                return 0.0, m2, m2
            after = sum(min(x, u[k - 1]) for x in u) / n
            return max(u[k - 1] - 1e-12, 0.0) ** 0.5, m2, after
    raise AssertionError("unreachable: capping at the largest value gives the total")
