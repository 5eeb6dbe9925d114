"""The per-trail table and the per-cell table, as numeric pandas frames (trails.csv, cells.csv).

A *cell* is (staleness mode, acting setting, stale, algo/variant): the trails that differ only by seed. In `fixed`
mode the setting is '' (dx+dy and the rollout cap do not act), so trails that differ only there share a cell.
Definitions (repeated in REPORT.md):
- final eval reward = `final/reward`, the greedy accuracy on the large final eval set (`final/eval_size` problems),
  where the trail logged one; else (older journals) `eval/reward` at the last step that has one, on
  `engine.eval_size` problems. Sampled: `final/reward_sampled` (else the last `eval/reward_sampled`). The primary
  metric;
- last-3 mean = the mean of `eval/reward` at the trail's last three eval points (nan with fewer): the pre-declared
  secondary metric, less noisy than one eval and not a maximum; best = the maximum of `eval/reward` (biased upward);
- AUC = area under the eval curve (trapezoid over the eval points) ÷ the step span: the time-averaged eval reward;
- steps to target = the first eval step with `eval/reward` ≥ the target (stated in the report), nan = not reached;
- grad_norm mean / max / p95 over the trail's steps (p95: linear interpolation); non-finite steps left out;
- masked / clipped token fraction = mean over steps of `m2po/masked_frac` / `train/clip_frac`;
- realised staleness = mean of `staleness/mean`, max of `staleness/max` (a controlled axis: shown, never compared);
- step 0, where an engine logs the base model's eval (`eval/reward` and `base/reward`), is the curves' starting point:
  it is the base model's eval reward and counts in no other summary or time;
- steps = last step logged; queue = started − submitted (waiting for a slot or the scheduler); wall = ended − started
  from the status, else the journal's time span; start-up = first journal record − its step's duration − started
  (base-model load, or its build where no sweep built it first); training = the rest.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Optional

import numpy as np
import pandas as pd

from harness.report.load import SweepData
from harness.report.names import display_name
from harness.report.stats import estimate, normalised_auc, steps_to_target
from harness.report.variance import variance_split
from harness.store.metrics import (
    BASE_REWARD,
    EVAL_REWARD,
    EVAL_REWARD_SAMPLED,
    FINAL_EVAL_SIZE,
    FINAL_REWARD,
    FINAL_REWARD_SAMPLED,
    M2PO_MASKED_FRAC,
    PERF_SEC_PER_STEP,
    STALENESS_MAX,
    STALENESS_MEAN,
    TRAIN_CLIP_FRAC,
    TRAIN_GRAD_NORM,
)
from harness.store.states import TrailState

GROUP = ["mode", "setting", "stale"]       # a configuration: what is compared across algorithms
CELL = [*GROUP, "algo"]                    # + algorithm: what seeds are aggregated over


class Where(NamedTuple):
    """A staleness mode and the setting shown in it: the axes other than stale and the algorithm."""

    mode: str
    setting: str


class GroupKey(NamedTuple):
    """A configuration (GROUP): what is compared across algorithms."""

    mode: str
    setting: str
    stale: int

    @property
    def where(self) -> Where:
        return Where(self.mode, self.setting)


class CellKey(NamedTuple):
    """A cell (CELL): the trails that differ only by seed; the algorithm spelled `name/variant`."""

    mode: str
    setting: str
    stale: int
    algo: str

    @property
    def where(self) -> Where:
        return self.group.where

    @property
    def group(self) -> GroupKey:
        return GroupKey(self.mode, self.setting, self.stale)

BASELINE = "grpo/clip"                     # the on-policy reference of every comparison
# diverged, failed and unfinished trails, and done trails whose journal lost records (`complete` false), are shown
# with their reason but never averaged
AGGREGATED_STATES = (TrailState.DONE.value,)
TARGET_SHARE = 0.9                         # default target: this share of the baseline's lowest-staleness reward
LAST_K = 3                                 # the secondary metric averages the last LAST_K intermediate evals

# trail-table column -> (metric, reduction)
SUMMARIES: Dict[str, tuple[str, str]] = {
    "eval_final": (EVAL_REWARD, "last"),
    "eval_best": (EVAL_REWARD, "max"),
    "eval_base": (BASE_REWARD, "first"),
    "eval_final_sampled": (EVAL_REWARD_SAMPLED, "last"),
    "grad_norm_mean": (TRAIN_GRAD_NORM, "mean"),
    "grad_norm_max": (TRAIN_GRAD_NORM, "max"),
    "grad_norm_p95": (TRAIN_GRAD_NORM, "p95"),
    "masked_frac_mean": (M2PO_MASKED_FRAC, "mean"),
    "clip_frac_mean": (TRAIN_CLIP_FRAC, "mean"),
    "staleness_mean": (STALENESS_MEAN, "mean"),
    "staleness_max": (STALENESS_MAX, "max"),
}

# the final eval: trail-table column -> its metric, which replaces the column's intermediate-eval fallback where
# logged; the eval-set size that metric rests on
FINAL_EVAL: Dict[str, str] = {"eval_final": FINAL_REWARD, "eval_final_sampled": FINAL_REWARD_SAMPLED}

# cell-table metrics (outcomes only: realised staleness is controlled, so it is never aggregated as a result)
CELL_METRICS: Dict[str, str] = {
    "eval_final": "final eval reward",
    "eval_last3": f"mean of the last {LAST_K} evals (secondary)",
    "eval_final_sampled": "final eval reward, sampled",
    "eval_best": "best eval reward",
    "eval_base": "base model's eval reward",
    "eval_auc": "area under the eval curve (÷ steps)",
    "steps_to_target": "steps to target",
    "grad_norm_mean": "mean grad_norm",
    "grad_norm_p95": "grad_norm p95",
    "clip_frac_mean": "clipped-token fraction",
    "masked_frac_mean": "masked-token fraction",
}
# fractions of one eval's problems: a binomial interval applies (the column giving how many problems: SIZE_COLUMN)
EVAL_FRACTIONS = ("eval_final", "eval_final_sampled", "eval_best", "eval_base")
SIZE_COLUMN = {"eval_final": "final_eval_size", "eval_final_sampled": "final_eval_size"}  # else "eval_size"
# metrics whose cell spread is split into eval-set sampling and seed-to-seed variance (variance.py)
DECOMPOSED = ("eval_final", "eval_final_sampled")
SEED_ROLE = "seed_role"                    # trail-table column: exploratory | confirmatory | "" (none declared)

TRAIL_TABLE_COLUMNS = ["trail", "display", "id", "mode", "setting", "stale", "alloc", "rollout", "algo", "seed",
                       SEED_ROLE, "eval_size", "final_eval_size", "config", "state", "complete", "reason", "steps",
                       "queue_s", "wall_s", "startup_s", "train_s", *SUMMARIES, "eval_last3", "eval_auc",
                       "steps_to_target", "target"]


def size_column(metric: str) -> str:
    """The trail-table column holding how many eval problems `metric` is a fraction of."""
    return SIZE_COLUMN.get(metric, "eval_size")


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
    if EVAL_REWARD not in metrics.columns:
        return {}
    values = metrics[["id", "step", EVAL_REWARD]].replace([np.inf, -np.inf], np.nan).dropna()
    return {str(tid): (frame["step"].to_numpy(float), frame[EVAL_REWARD].to_numpy(float))
            for tid, frame in values.groupby("id", sort=False)}


def _wall_split(data: SweepData, index: pd.Index, metrics: pd.DataFrame) -> pd.DataFrame:
    """wall, start-up and training seconds per trail from the status times and the times of the journal's training
    records (`metrics`: step 0, the base model's eval, is start-up)."""
    trails = data.trails.set_index("id")
    out = pd.DataFrame(index=index, columns=["queue_s", "wall_s", "startup_s", "train_s"], dtype=float)
    queued = (trails["started"] - trails["submitted"]).reindex(index)
    out["queue_s"] = queued.where(queued >= 0)  # negative: submitted again after this attempt started (a resume)
    if "time" not in metrics.columns or metrics.empty:
        out["wall_s"] = (trails["ended"] - trails["started"]).reindex(index)
        return out
    by = metrics.groupby("id", sort=False)
    first, last = by["time"].min(), by["time"].max()
    first_step = by[PERF_SEC_PER_STEP].first() if PERF_SEC_PER_STEP in metrics.columns else first * 0.0
    train_start = first - first_step.fillna(0.0)
    started = trails["started"].reindex(index)
    startup = (train_start.reindex(index) - started)
    out["startup_s"] = startup.where(startup >= 0)  # negative: resumed, the journal predates this attempt
    out["train_s"] = (last - train_start).reindex(index)
    wall = (trails["ended"] - trails["started"]).reindex(index)
    out["wall_s"] = wall.fillna((last - first).reindex(index))
    return out


def baseline_algo(algos: List[str]) -> Optional[str]:
    """The GRPO reading a sweep's on-policy reference is: BASELINE where it ran, else the first GRPO reading
    (algo_order); None without any."""
    if BASELINE in algos:
        return BASELINE
    grpo = [a for a in algo_order(algos) if a.startswith("grpo")]
    return grpo[0] if grpo else None


def default_target(table: pd.DataFrame) -> float:
    """TARGET_SHARE × the mean final eval reward of the baseline (baseline_algo) at its lowest staleness (else of
    the best cell), on the confirmatory trails where the sweep declared any (roles.py)."""
    done = aggregated(table)
    if SEED_ROLE in done.columns and (done[SEED_ROLE] == "confirmatory").any():
        done = done[done[SEED_ROLE] == "confirmatory"]
    if done["eval_final"].notna().sum() == 0:
        return math.nan
    base = done[(done["algo"] == baseline_algo(list(done["algo"].dropna()))) & done["eval_final"].notna()]
    if not base.empty:
        low = base[base["stale"] == base["stale"].min()]
        return TARGET_SHARE * float(low["eval_final"].mean())
    return TARGET_SHARE * float(done.groupby(CELL, dropna=False)["eval_final"].mean().max())


def last_mean(values: np.ndarray, k: int = LAST_K) -> float:
    """The mean of the last k eval rewards; nan with fewer than k (the metric is the mean of k evals or nothing)."""
    return float(np.mean(values[-k:])) if len(values) >= k else math.nan


def trail_table(data: SweepData, target: Optional[float] = None) -> pd.DataFrame:
    """One row per trail, sorted by configuration, algorithm and seed; `target` (eval reward) defaults to
    default_target."""
    seed_roles = data.seed_roles
    table = data.trails.copy().set_index("id", drop=False)
    # the settings a trail's config differs in from the others' (load.config_labels) belong to its configuration:
    # trails of different configs are never one cell's seeds
    table["setting"] = [" ".join(p for p in (g, c) if p) for g, c in
                        zip(table["setting"], table["config"], strict=True)]
    table["display"] = [display_name(s, g, a, d) for s, g, a, d in
                        zip(table["stale"], table["setting"], table["algo"], table["seed"], strict=True)]
    metrics = data.metrics
    # step 0 is the base model's eval, where the curves start: not a result of the trail's training (its eval/reward
    # is the base model's, read as eval_base from base/reward), so the trail's summaries and times leave it out
    trained = metrics[metrics["step"] > 0] if (metrics["step"] == 0).any() else metrics
    table["steps"] = metrics.groupby("id", sort=False)["step"].max().reindex(table.index).astype("Int64")
    table[["queue_s", "wall_s", "startup_s", "train_s"]] = _wall_split(data, table.index, trained)
    for column, (metric, how) in SUMMARIES.items():
        table[column] = _reduce(metrics if column == "eval_base" else trained, metric, how).reindex(
            table.index).astype(float)
    has_final = pd.Series(False, index=table.index)
    for column, metric in FINAL_EVAL.items():
        final = _reduce(trained, metric, "last").reindex(table.index).astype(float)
        table[column] = final.fillna(table[column])
        has_final |= final.notna()
    final_size = _reduce(trained, FINAL_EVAL_SIZE, "last").reindex(table.index).astype(float)
    table["final_eval_size"] = final_size.where(has_final).fillna(table["eval_size"].where(~has_final))
    curves = eval_curves(trained)
    table["eval_last3"] = [last_mean(curves[t][1]) if t in curves else math.nan for t in table.index]
    table["eval_auc"] = [normalised_auc(*curves[t]) if t in curves else math.nan for t in table.index]
    table[SEED_ROLE] = [seed_roles.get(int(s), "") if pd.notna(s) else "" for s in table["seed"]]
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


SeedCells = Dict[CellKey, pd.DataFrame]


def seed_cells(trails: pd.DataFrame) -> SeedCells:
    """(mode, setting, stale, algo) -> that cell's aggregated trails, indexed by seed."""
    return {CellKey(*key): frame.set_index("seed", drop=False)
            for key, frame in aggregated(trails).groupby(CELL, sort=False, dropna=False)}


def seed_values(cells: SeedCells, key: CellKey, column: str) -> pd.Series:
    """seed -> value of `column` in one cell (finite values only)."""
    frame = cells.get(key)
    if frame is None:
        return pd.Series(dtype=float)
    values = frame[column].astype(float)
    return values[np.isfinite(values)]


def cell_sizes(frame: pd.DataFrame, metric: str) -> pd.Series:
    """seed -> how many eval problems `metric` is a fraction of, per trail of one cell."""
    return frame[size_column(metric)].astype(float)


def cell_table(trails: pd.DataFrame) -> pd.DataFrame:
    """Per cell and metric: n, mean, 95 % Student-t bounds, the SD between seeds, the per-seed values and the
    eval-set size (for one seed's binomial interval); for the final eval reward also its variance decomposition
    (variance.py): the eval-set sampling SD, the seed-to-seed SD and which of more seeds or more eval problems buys
    more precision. Only trails in AGGREGATED_STATES count."""
    cells = seed_cells(trails)
    rows = []
    for key in sorted(cells, key=lambda k: (k.mode, k.setting, k.stale, algo_rank(k.algo))):
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
            sizes = cell_sizes(frame, column).dropna().unique()
            split = variance_split(values, cell_sizes(frame, column).reindex(values.index)) \
                if column in DECOMPOSED else None
            rows.append({
                "mode": key.mode, "setting": key.setting, "stale": key.stale, "algo": key.algo, "metric": column,
                "n": est.n, "mean": est.mean, "lo": est.lo, "hi": est.hi,
                "sd": float(np.std(values, ddof=1)) if est.n > 1 else math.nan,
                "sampling_sd": split.sampling_sd if split else math.nan,
                "seed_sd": split.seed_sd if split else math.nan,
                "more_precision_from": split.better_buy if split else "",
                "trails": len(frame), "seeds": ";".join(str(s) for s in values.index),
                "values": ";".join(f"{v:.6g}" for v in values),
                "eval_size": float(sizes[0]) if len(sizes) == 1 else math.nan,
            })
    return pd.DataFrame(rows, columns=CELL_TABLE_COLUMNS)


CELL_TABLE_COLUMNS = ["mode", "setting", "stale", "algo", "metric", "n", "mean", "lo", "hi", "sd", "sampling_sd",
                      "seed_sd", "more_precision_from", "trails", "seeds", "values", "eval_size"]
