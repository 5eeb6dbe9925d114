"""The per-trail table and the per-cell table, as numeric pandas frames (trails.csv, cells.csv).

A *cell* is (staleness mode, acting setting, stale, algo/variant): the trails that differ only by seed. In `fixed`
mode the setting is '' (dx+dy and the rollout cap do not act), so trails that differ only there share a cell.
Definitions (repeated in REPORT.md):
- final eval reward = `eval/reward` at the last step that has one; best = its maximum over the trail;
- AUC = area under the eval curve (trapezoid over the eval points) ÷ the step span: the time-averaged eval reward;
- steps to target = the first eval step with `eval/reward` ≥ the target (stated in the report), nan = not reached;
- grad_norm mean / max / p95 over the trail's steps (p95: linear interpolation); non-finite steps left out;
- masked / clipped token fraction = mean over steps of `m2po/masked_frac` / `train/clip_frac`;
- realised staleness = mean of `staleness/mean`, max of `staleness/max` (a controlled axis: shown, never compared);
- steps = last step logged; queue = started − submitted (waiting for a slot or the scheduler); wall = ended − started
  from the status, else the journal's time span; start-up = first journal record − its step's duration − started
  (base-model load, or its build where no sweep built it first); training = the rest.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from harness.report.load import SweepData
from harness.report.names import algo_variant, display_name, setting_label
from harness.report.stats import estimate, normalised_auc, steps_to_target
from harness.states import TrailState

GROUP = ["mode", "setting", "stale"]       # a configuration: what is compared across algorithms
CELL = [*GROUP, "algo"]                    # + algorithm: what seeds are aggregated over
BASELINE = "grpo/clip"                     # the on-policy reference of every comparison
# diverged, failed and unfinished trails, and done trails whose journal lost records (`complete` false), are shown
# with their reason but never averaged
AGGREGATED_STATES = (TrailState.DONE.value,)
TARGET_SHARE = 0.9                         # default target: this share of the baseline's lowest-staleness reward

# trail-table column -> (metric, reduction)
SUMMARIES: Dict[str, tuple[str, str]] = {
    "eval_final": ("eval/reward", "last"),
    "eval_best": ("eval/reward", "max"),
    "eval_base": ("base/reward", "first"),
    "grad_norm_mean": ("train/grad_norm", "mean"),
    "grad_norm_max": ("train/grad_norm", "max"),
    "grad_norm_p95": ("train/grad_norm", "p95"),
    "masked_frac_mean": ("m2po/masked_frac", "mean"),
    "clip_frac_mean": ("train/clip_frac", "mean"),
    "staleness_mean": ("staleness/mean", "mean"),
    "staleness_max": ("staleness/max", "max"),
}

# cell-table metrics (outcomes only: realised staleness is controlled, so it is never aggregated as a result)
CELL_METRICS: Dict[str, str] = {
    "eval_final": "final eval reward",
    "eval_best": "best eval reward",
    "eval_base": "base model's eval reward",
    "eval_auc": "area under the eval curve (÷ steps)",
    "steps_to_target": "steps to target",
    "grad_norm_mean": "mean grad_norm",
    "grad_norm_p95": "grad_norm p95",
    "clip_frac_mean": "clipped-token fraction",
    "masked_frac_mean": "masked-token fraction",
}
# fractions of eval_size problems: a binomial interval applies
EVAL_FRACTIONS = ("eval_final", "eval_best", "eval_base")

TRAIL_TABLE_COLUMNS = ["trail", "display", "id", "mode", "setting", "stale", "alloc", "rollout", "algo", "seed",
                       "eval_size", "config", "state", "complete", "reason", "steps", "queue_s", "wall_s", "startup_s",
                       "train_s", *SUMMARIES, "eval_auc", "steps_to_target", "target"]


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


def eval_curves(metrics: pd.DataFrame) -> Dict[str, tuple[np.ndarray, np.ndarray]]:
    """trail id -> (eval steps, eval rewards), finite points only."""
    if "eval/reward" not in metrics.columns:
        return {}
    values = metrics[["id", "step", "eval/reward"]].replace([np.inf, -np.inf], np.nan).dropna()
    return {str(tid): (frame["step"].to_numpy(float), frame["eval/reward"].to_numpy(float))
            for tid, frame in values.groupby("id", sort=False)}


def _wall_split(data: SweepData, index: pd.Index) -> pd.DataFrame:
    """wall, start-up and training seconds per trail from the status times and the journal's record times."""
    trails = data.trails.set_index("id")
    metrics = data.metrics
    out = pd.DataFrame(index=index, columns=["queue_s", "wall_s", "startup_s", "train_s"], dtype=float)
    queued = (trails["started"] - trails["submitted"]).reindex(index)
    out["queue_s"] = queued.where(queued >= 0)  # negative: submitted again after this attempt started (a resume)
    if "time" not in metrics.columns or metrics.empty:
        out["wall_s"] = (trails["ended"] - trails["started"]).reindex(index)
        return out
    by = metrics.groupby("id", sort=False)
    first, last = by["time"].min(), by["time"].max()
    first_step = by["perf/sec_per_step"].first() if "perf/sec_per_step" in metrics.columns else first * 0.0
    train_start = first - first_step.fillna(0.0)
    started = trails["started"].reindex(index)
    startup = (train_start.reindex(index) - started)
    out["startup_s"] = startup.where(startup >= 0)  # negative: resumed, the journal predates this attempt
    out["train_s"] = (last - train_start).reindex(index)
    wall = (trails["ended"] - trails["started"]).reindex(index)
    out["wall_s"] = wall.fillna((last - first).reindex(index))
    return out


def default_target(table: pd.DataFrame) -> float:
    """TARGET_SHARE × the mean final eval reward of the baseline at its lowest staleness (else of the best cell)."""
    done = aggregated(table)
    if done["eval_final"].notna().sum() == 0:
        return math.nan
    base = done[(done["algo"] == BASELINE) & done["eval_final"].notna()]
    if not base.empty:
        low = base[base["stale"] == base["stale"].min()]
        return TARGET_SHARE * float(low["eval_final"].mean())
    return TARGET_SHARE * float(done.groupby(CELL, dropna=False)["eval_final"].mean().max())


def trail_table(data: SweepData, target: Optional[float] = None) -> pd.DataFrame:
    """One row per trail, sorted by configuration, algorithm and seed; `target` (eval reward) defaults to
    default_target."""
    table = data.trails.copy().set_index("id", drop=False)
    table["algo"] = [algo_variant(a, None, None) if v is None or pd.isna(v) else v
                     for a, v in zip(table["algo"], table["variant"], strict=True)]
    # the settings a trail's config differs in from the others' (load.config_labels) belong to its configuration:
    # trails of different configs are never one cell's seeds
    table["setting"] = [" ".join(p for p in (setting_label(m, a, r), c) if p) for m, a, r, c in
                        zip(table["mode"], table["alloc"], table["rollout"], table["config"], strict=True)]
    table["display"] = [display_name(s, g, a, d) for s, g, a, d in
                        zip(table["stale"], table["setting"], table["algo"], table["seed"], strict=True)]
    metrics = data.metrics
    table["steps"] = metrics.groupby("id", sort=False)["step"].max().reindex(table.index).astype("Int64")
    table[["queue_s", "wall_s", "startup_s", "train_s"]] = _wall_split(data, table.index)
    for column, (metric, how) in SUMMARIES.items():
        table[column] = _reduce(metrics, metric, how).reindex(table.index).astype(float)
    curves = eval_curves(metrics)
    table["eval_auc"] = [normalised_auc(*curves[t]) if t in curves else math.nan for t in table.index]
    if target is None:
        target = default_target(table)
    table["target"] = float(target)
    table["steps_to_target"] = [steps_to_target(*curves[t], target) if t in curves and math.isfinite(target)
                                else math.nan for t in table.index]
    table = table.sort_values(["mode", "setting", "stale", "algo", "seed"], kind="stable")
    return table.reset_index(drop=True)[TRAIL_TABLE_COLUMNS]


def counted(trails: pd.DataFrame) -> pd.Series:
    """Which trails the aggregates use: done, with every step in the journal."""
    return trails["state"].isin(AGGREGATED_STATES) & trails["complete"].astype(bool)


def aggregated(trails: pd.DataFrame) -> pd.DataFrame:
    return trails[counted(trails)]


def algo_rank(algo: str) -> tuple:
    """Sort key: the baseline, other GRPO readings, M2PO's readings, then the rest."""
    return ({"grpo": 0, "m2po": 1}.get(str(algo).split("/")[0], 2), algo != BASELINE, str(algo))


def algo_order(algos: List[str]) -> List[str]:
    """GRPO readings first, then M2PO's, then the rest; none dropped."""
    return sorted(set(algos), key=algo_rank)


SeedCells = Dict[tuple, pd.DataFrame]


def seed_cells(trails: pd.DataFrame) -> SeedCells:
    """(mode, setting, stale, algo) -> that cell's aggregated trails, indexed by seed."""
    return {tuple(key): frame.set_index("seed", drop=False)
            for key, frame in aggregated(trails).groupby(CELL, sort=False, dropna=False)}


def seed_values(cells: SeedCells, key: tuple, column: str) -> pd.Series:
    """seed -> value of `column` in one cell (finite values only)."""
    frame = cells.get(key)
    if frame is None:
        return pd.Series(dtype=float)
    values = frame[column].astype(float)
    return values[np.isfinite(values)]


def cell_table(trails: pd.DataFrame) -> pd.DataFrame:
    """Per cell and metric: n, mean, 95 % Student-t bounds, the per-seed values and the eval-set size (for one
    seed's binomial interval). Only trails in AGGREGATED_STATES count."""
    cells = seed_cells(trails)
    rows = []
    for key in sorted(cells, key=lambda k: (k[0], k[1], k[2], algo_rank(k[3]))):
        frame = cells[key]
        for column in CELL_METRICS:
            if column == "steps_to_target":  # 'not reached' is an outcome: keep the seeds that did not reach it
                if frame["eval_final"].isna().all():
                    continue
                values = frame[column].astype(float)
            elif frame[column].isna().all():
                continue
            else:
                values = seed_values(cells, key, column)
            est = estimate(values)
            sizes = frame["eval_size"].dropna().unique()
            rows.append({
                "mode": key[0], "setting": key[1], "stale": key[2], "algo": key[3], "metric": column,
                "n": est.n, "mean": est.mean, "lo": est.lo, "hi": est.hi,
                "trails": len(frame), "seeds": ";".join(str(s) for s in values.index),
                "values": ";".join(f"{v:.6g}" for v in values),
                "eval_size": float(sizes[0]) if len(sizes) == 1 else math.nan,
            })
    return pd.DataFrame(rows, columns=["mode", "setting", "stale", "algo", "metric", "n", "mean", "lo", "hi",
                                       "trails", "seeds", "values", "eval_size"])
