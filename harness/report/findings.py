"""Findings: sentences written from the trail table, each with its numbers, claiming nothing the data does not show.

A difference is claimed only when both sides have n ≥ 2 seeds and their 95 % intervals are disjoint
(stats.within_noise); otherwise the sentence says "within noise". Trails that diverged, failed or did not finish
are named with their reason and left out of every number here.
"""

from __future__ import annotations

import math
from typing import List

import pandas as pd

from harness.report.stats import Estimate, estimate, within_noise
from harness.report.tables import (AGGREGATED_STATES, BASELINE, CANDIDATE, SeedCells, algo_order, cell_values,
                                   config_label, seed_cells)

RETENTION = 0.95  # M2PO at the highest staleness should keep this share of its lowest-staleness eval reward

# (trail-table column, what the sentence calls it, how it was summarised)
PAIRWISE = [
    ("grad_norm_mean", "grad_norm", "mean over steps"),
    ("eval_final", "eval reward", "final eval"),
    ("clip_frac_mean", "clipped-token fraction", "mean over steps"),
]


def display(algo: str) -> str:
    """'m2po-areal' -> 'M2PO-areal'."""
    head, _, tail = str(algo).partition("-")
    return head.upper() + (f"-{tail}" if tail else "")


def num(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3g}"


def fmt(e: Estimate) -> str:
    """'0.805 ± 0.012 (n = 3)'; a single seed has no interval: '0.805 (n = 1)'."""
    if e.n == 0:
        return "no data"
    if not e.has_interval:
        return f"{num(e.mean)} (n = {e.n})"
    return f"{num(e.mean)} ± {num(e.half)} (n = {e.n})"


def _noise_reason(a: Estimate, b: Estimate) -> str:
    if not (a.has_interval and b.has_interval):
        return "n < 2 on one side, so there is no interval to separate them"
    return "the 95 % intervals overlap"


def pairwise_finding(cells: SeedCells, config: tuple, column: str, what: str, how: str,
                     cand: str, base: str) -> str | None:
    """'the grad_norm of GRPO is higher than M2PO' with numbers, or 'within noise'; None when nobody logged it."""
    a = estimate(cell_values(cells, (*config, cand), column))
    b = estimate(cell_values(cells, (*config, base), column))
    label = config_label(*config)
    if a.n == 0 and b.n == 0:
        return None
    if a.n == 0 or b.n == 0:
        missing = display(cand if a.n == 0 else base)
        return f"{label}: no completed {missing} trail reports the {what}, so there is no comparison."
    numbers = f"{display(cand)} {fmt(a)} vs {display(base)} {fmt(b)}; {how}"
    if within_noise(a, b):
        return (f"{label}: the {what} of {display(cand)} and {display(base)} differ within noise "
                f"({numbers}; {_noise_reason(a, b)}).")
    high, low = (cand, base) if a.mean > b.mean else (base, cand)
    return (f"{label}: the {what} of {display(high)} is higher than {display(low)} "
            f"({numbers}; {display(cand)} − {display(base)} = {a.mean - b.mean:+.3g}).")


def staleness_finding(cells: SeedCells, algo: str, alloc: str, rollout: int) -> str | None:
    """Lowest vs highest staleness of one algorithm at one (alloc, rollout): M2PO's 0.95× retention, others' drop."""
    stales = sorted(s for (s, a, r, g), frame in cells.items()
                    if (a, r, g) == (alloc, rollout, algo) and frame["eval_final"].notna().any())
    if len(stales) < 2:
        return None
    lo_s, hi_s = stales[0], stales[-1]
    lo = estimate(cell_values(cells, (lo_s, alloc, rollout, algo), "eval_final"))
    hi = estimate(cell_values(cells, (hi_s, alloc, rollout, algo), "eval_final"))
    name = display(algo)
    ratio = hi.mean / lo.mean if lo.mean else math.nan
    numbers = f"{fmt(hi)} at stale {hi_s} vs {fmt(lo)} at stale {lo_s}, ratio {num(ratio)}"
    where = f"{alloc} rollout {rollout}"
    if algo.split("-")[0] == CANDIDATE:
        mark = RETENTION * lo.mean
        verdict = "stays at or above" if hi.mean >= mark else "falls below"
        text = (f"{where}: {name}'s final eval reward at stale {hi_s} {verdict} {RETENTION}× its stale {lo_s} "
                f"value ({numbers}; mark {num(mark)})")
        if not hi.has_interval:
            text += "; n < 2 at the highest staleness, so this is a point estimate, not a tested claim"
        elif hi.lo < mark <= hi.hi:
            text += "; the 95 % interval straddles the mark, so this is within noise"
        return text + "."
    if within_noise(hi, lo):
        return (f"{where}: {name}'s final eval reward changes within noise from stale {lo_s} to stale {hi_s} "
                f"({numbers}; {_noise_reason(hi, lo)}); no degradation is shown.")
    verb = "degrades" if hi.mean < lo.mean else "does not degrade; it improves"
    return f"{where}: {name} {verb} with staleness ({numbers})."


def excluded_trails(trails: pd.DataFrame) -> List[str]:
    """Every trail left out of the aggregates, with its state, last step and reason."""
    lines = []
    for row in trails[~trails["state"].isin(AGGREGATED_STATES)].itertuples(index=False):
        step = "" if pd.isna(row.steps) else f" at step {row.steps}"
        reason = f": {row.reason}" if row.reason else ""
        lines.append(f"`{row.trail}` — {row.state}{step}{reason}")
    return lines


def mixed_cells(trails: pd.DataFrame) -> List[str]:
    """A caveat when one (configuration, algorithm, seed) holds several trails: they differ in something that is
    not an axis (a hyperparameter), so averaging them as seeds would mix configurations."""
    sizes = trails.groupby(["stale", "alloc", "rollout", "algo", "seed"], dropna=False).size()
    sizes = sizes[sizes > 1]
    if sizes.empty:
        return []
    cells = "; ".join(f"{config_label(s, a, r)} {display(g)} seed {seed}: {n} trails"
                      for (s, a, r, g, seed), n in sizes.items())
    return [f"Caution: {len(sizes)} (configuration, algorithm, seed) cells hold more than one trail ({cells}). "
            "Those trails differ in something other than the axes, and the aggregates below treat them as seeds."]


def findings(trails: pd.DataFrame) -> List[str]:
    """All findings, in report order: pairwise per configuration, then staleness, then exclusions."""
    cells = seed_cells(trails)
    out: List[str] = mixed_cells(trails)
    algos = algo_order(list(trails["algo"].dropna()))
    configs = trails[["stale", "alloc", "rollout"]].drop_duplicates().sort_values(["stale", "alloc", "rollout"])
    if BASELINE in algos:
        for config in configs.itertuples(index=False):
            for cand in [a for a in algos if a != BASELINE]:
                for column, what, how in PAIRWISE:
                    text = pairwise_finding(cells, tuple(config), column, what, how, cand, BASELINE)
                    if text:
                        out.append(text)
    for alloc, rollout in sorted({(a, r) for (_s, a, r, _g) in cells}):
        for algo in algos:
            text = staleness_finding(cells, algo, alloc, rollout)
            if text:
                out.append(text)
    excluded = excluded_trails(trails)
    if excluded:
        out.append(f"{len(excluded)} of {len(trails)} trails are excluded from every aggregate above "
                   f"(only {', '.join(AGGREGATED_STATES)} trails count): " + "; ".join(excluded) + ".")
    if not cells:
        out.append("No trail has finished, so no comparison can be made yet.")
    return out
