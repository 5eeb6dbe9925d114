"""How many paired seeds the demo needs: its two headline contrasts, read from a finished confirmatory sweep.

The demo (sweeps/demo.yaml) runs three cells: GRPO (`grpo/clip`) at lag 1 and 256, M2PO (`m2po/paper`) at lag
256. Its two claims are GRPO's drop (GRPO at 256 − GRPO at 1) and M2PO's gain (M2PO at 256 − GRPO at 256), each
stated only when its paired 95 % t interval excludes 0. From the per-seed paired differences of those cells in a
finished sweep (the confirmatory finding), this estimates for each candidate number of seeds n:
- per contrast, the chance that a fresh run of n seeds separates it (harness.report.power.separation_probability:
  plug-in noncentral-t power, a resampling of whole runs, and the assurance);
- for both claims at once, the share of resampled runs of n seeds, drawn with replacement from the observed seeds
  (the three cells of a seed kept together, so the shared GRPO-at-256 cell's correlation is kept), in which both
  intervals exclude 0 on the observed side.
All are estimates from the sweep's seeds, written to a markdown file.

usage: python scripts/plan_demo.py SWEEP_DIR [--out reports/demo_power.md] [--max-seeds 10]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy import stats

from harness.report.load import load_journals
from harness.report.power import separation_probability
from harness.report.roles import split_by_role
from harness.report.tables import trail_table

CELLS = {"grpo@1": ("grpo/clip", 1), "grpo@256": ("grpo/clip", 256), "m2po@256": ("m2po/paper", 256)}
CLAIMS = {"GRPO's drop: GRPO at 256 − GRPO at 1": ("grpo@256", "grpo@1"),
          "M2PO's gain: M2PO at 256 − GRPO at 256": ("m2po@256", "grpo@256")}


def per_seed(sweep_dir: Path) -> dict:
    """The final eval reward of each demo cell per seed, over the sweep's confirmatory trails (all trails when the
    sweep declares no roles)."""
    table = split_by_role(trail_table(load_journals(sweep_dir))).primary
    out = {}
    for name, (algo, stale) in CELLS.items():
        rows = table[(table["algo"] == algo) & (table["stale"] == stale) & (table["mode"] == "fixed")]
        out[name] = rows.set_index("seed")["eval_final"].dropna()
    seeds = sorted(set.intersection(*(set(s.index) for s in out.values())))
    return {name: series.loc[seeds].to_numpy(float) for name, series in out.items()} | {"seeds": seeds}


def joint_separation(values: dict, n: int, draws: int = 20_000, seed: int = 0) -> float:
    """Share of resampled n-seed runs in which both claims' paired intervals exclude 0 on their observed side."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values["seeds"]), size=(draws, n))
    crit = float(stats.t.ppf(0.975, n - 1))
    both = np.ones(draws, dtype=bool)
    for a, b in CLAIMS.values():
        d = values[a] - values[b]
        runs = d[idx]
        sign = 1.0 if d.mean() >= 0 else -1.0
        t = sign * runs.mean(axis=1) / (runs.std(axis=1, ddof=1) / math.sqrt(n))
        both &= np.nan_to_num(t, nan=0.0) > crit
    return float(both.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("reports/demo_power.md"))
    parser.add_argument("--max-seeds", type=int, default=10)
    args = parser.parse_args()
    values = per_seed(args.sweep_dir)
    m = len(values["seeds"])
    lines = ["# Demo power: how many paired seeds its two claims need\n",
             f"From `{args.sweep_dir}`: the final greedy eval reward of the demo's three cells on {m} confirmatory "
             f"seeds ({', '.join(map(str, values['seeds']))}). `python scripts/plan_demo.py {args.sweep_dir}` "
             "writes this file. Every figure is an estimate from these seeds.\n"]
    for claim, (a, b) in CLAIMS.items():
        d = values[a] - values[b]
        lines += [f"## {claim}\n", f"Observed: mean {d.mean():+.3f}, SD of the paired differences {d.std(ddof=1):.3f} "
                  f"(n = {m}).\n", "| seeds n | plug-in power | resampled | assurance |", "|---|---|---|---|"]
        for n in range(3, args.max_seeds + 1):
            s = separation_probability(d, n)
            lines.append(f"| {n} | {s.noncentral_t:.2f} | {s.resampled:.2f} | {s.assurance:.2f} |")
        lines.append("")
    lines += ["## Both claims in one run\n", "Share of resampled runs (seeds drawn with replacement, a seed's three "
              "cells together) in which both intervals exclude 0 on their observed side:\n",
              "| seeds n | both separate |", "|---|---|"]
    lines += [f"| {n} | {joint_separation(values, n):.2f} |" for n in range(3, args.max_seeds + 1)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"plan_demo: {args.out}")


if __name__ == "__main__":
    main()
