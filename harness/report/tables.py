"""The report's two tables, as numeric pandas frames (the CSVs); markdown.py only formats them.

Definitions (they are repeated in REPORT.md):
- final eval reward = `eval/reward` at the last step that has one; best = its maximum over the trail;
- grad_norm mean / max / p95 over the trail's steps (p95: linear interpolation, as numpy/pandas);
  non-finite values (a diverging step) are left out of these summaries — the trail's status says it diverged;
- masked / clipped token fraction = mean over steps of `m2po/masked_frac` / `train/clip_frac`;
- realised staleness = mean of `staleness/mean` and max of `staleness/max` over steps;
- steps = last step logged; wall time = ended − started from the status, else the journal's time span.
"""

from __future__ import annotations

import math
from typing import Dict, List

import numpy as np
import pandas as pd

from harness.report.load import SweepData
from harness.report.stats import Estimate, difference, estimate, sample_sd, within_noise

CONFIG = ["stale", "alloc", "rollout"]
BASELINE, CANDIDATE = "grpo", "m2po"  # the difference column is CANDIDATE − BASELINE
AGGREGATED_STATES = ("done",)         # diverged, failed and unfinished trails are shown but never averaged

# trail-table column -> (metric, reduction)
SUMMARIES: Dict[str, tuple[str, str]] = {
    "eval_final": ("eval/reward", "last"),
    "eval_best": ("eval/reward", "max"),
    "grad_norm_mean": ("train/grad_norm", "mean"),
    "grad_norm_max": ("train/grad_norm", "max"),
    "grad_norm_p95": ("train/grad_norm", "p95"),
    "masked_frac_mean": ("m2po/masked_frac", "mean"),
    "clip_frac_mean": ("train/clip_frac", "mean"),
    "staleness_mean": ("staleness/mean", "mean"),
    "staleness_max": ("staleness/max", "max"),
}

# comparison-table metrics, with the words the report uses for them
COMPARED: Dict[str, str] = {
    "eval_final": "final eval reward",
    "eval_best": "best eval reward",
    "grad_norm_mean": "mean grad_norm",
    "grad_norm_p95": "grad_norm p95",
    "clip_frac_mean": "clipped-token fraction",
    "masked_frac_mean": "masked-token fraction",
    "staleness_mean": "realised staleness",
}

TRAIL_TABLE_COLUMNS = ["trail", "id", "stale", "alloc", "rollout", "algo", "seed", "state", "reason", "steps", "wall_s",
                       *SUMMARIES]


def _reduce(metrics: pd.DataFrame, metric: str, how: str) -> pd.Series:
    """One summary value per trail; trails that never logged the metric get nan."""
    if metric not in metrics.columns:
        return pd.Series(dtype=float)
    values = metrics[["id", "step", metric]].copy()
    values[metric] = pd.to_numeric(values[metric], errors="coerce").replace([np.inf, -np.inf], np.nan)
    values = values.dropna(subset=[metric])
    grouped = values.groupby("id", sort=False)[metric]
    if how == "last":  # metrics are sorted by (id, step)
        return grouped.last()
    if how == "p95":
        return grouped.quantile(0.95)
    return grouped.agg(how)


def trail_table(data: SweepData) -> pd.DataFrame:
    """One row per trail, sorted by configuration, algorithm and seed."""
    table = data.trails[["trail", "id", "stale", "alloc", "rollout", "algo", "seed", "state", "reason"]].copy()
    table = table.set_index("id", drop=False)
    metrics = data.metrics
    by_trail = metrics.groupby("id", sort=False)
    table["steps"] = by_trail["step"].max().reindex(table.index).astype("Int64")
    span = (by_trail["time"].max() - by_trail["time"].min()) if "time" in metrics.columns else pd.Series(dtype=float)
    wall = data.trails.set_index("id")["ended"] - data.trails.set_index("id")["started"]
    table["wall_s"] = wall.reindex(table.index).fillna(span.reindex(table.index)).astype(float)
    for column, (metric, how) in SUMMARIES.items():
        table[column] = _reduce(metrics, metric, how).reindex(table.index).astype(float)
    table = table.sort_values(["stale", "alloc", "rollout", "algo", "seed"], kind="stable")
    return table.reset_index(drop=True)[TRAIL_TABLE_COLUMNS]


def algo_order(algos: List[str]) -> List[str]:
    """GRPO and M2PO first (the pair the difference is about), then every other variant, none dropped."""
    rest = sorted(a for a in set(algos) if a not in (BASELINE, CANDIDATE))
    return [a for a in (BASELINE, CANDIDATE) if a in set(algos)] + rest


def aggregated(trails: pd.DataFrame) -> pd.DataFrame:
    return trails[trails["state"].isin(AGGREGATED_STATES)]


SeedCells = Dict[tuple, pd.DataFrame]


def seed_cells(trails: pd.DataFrame) -> SeedCells:
    """(stale, alloc, rollout, algo) -> that cell's aggregated trails: grouped once, looked up many times."""
    return {tuple(key): frame for key, frame in aggregated(trails).groupby(CONFIG + ["algo"], sort=False)}


def cell_values(cells: SeedCells, key: tuple, column: str) -> pd.Series:
    frame = cells.get(key)
    return frame[column] if frame is not None else pd.Series(dtype=float)


def comparison_table(trails: pd.DataFrame) -> pd.DataFrame:
    """Per (stale, alloc, rollout) and metric: each algorithm's seed mean, 95 % half-width and n; M2PO − GRPO.

    Only trails in AGGREGATED_STATES count. diff_ci95 is a Welch interval (nan when either side has n < 2);
    within_noise is the report's rule (stats.within_noise) applied to the two algorithms' intervals.
    """
    algos = algo_order(list(trails["algo"].dropna()))
    cells = seed_cells(trails)
    rows = []
    configs = trails[CONFIG].drop_duplicates().sort_values(CONFIG, kind="stable")
    for config in configs.itertuples(index=False):
        for column in COMPARED:
            row: Dict[str, object] = {"stale": config.stale, "alloc": config.alloc, "rollout": config.rollout,
                                      "metric": column}
            est: Dict[str, Estimate] = {}
            for algo in algos:
                est[algo] = estimate(cell_values(cells, (*config, algo), column))
                row.update({f"{algo}_mean": est[algo].mean, f"{algo}_ci95": est[algo].half, f"{algo}_n": est[algo].n})
            base, cand = est.get(BASELINE), est.get(CANDIDATE)
            if base is not None and cand is not None and base.n and cand.n:
                sd = {a: sample_sd(cell_values(cells, (*config, a), column)) for a in (BASELINE, CANDIDATE)}
                diff = difference(cand, base, sd[CANDIDATE], sd[BASELINE])
                row.update({"diff_mean": diff.mean, "diff_ci95": diff.half, "within_noise": within_noise(cand, base)})
            else:
                row.update({"diff_mean": math.nan, "diff_ci95": math.nan, "within_noise": pd.NA})
            rows.append(row)
    return pd.DataFrame(rows)


def config_label(stale: object, alloc: object, rollout: object) -> str:
    return f"stale {stale} {alloc} rollout {rollout}"
