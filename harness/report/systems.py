"""The systems view of a sweep: what the allocation dx+dy and the rollout cap buy in simulated time, and what they
cost in quality.

Shown for a sweep whose trails logged the simulated clock (`sim/time_s`, engines/embedded/clock.py) and span more
than one acting dx+dy × rollout setting (async mode; in fixed mode neither axis acts on learning, so cells pool
over them). Per trail, from its journal:
- throughput: `sim/samples_per_s` at the last step (samples trained ÷ simulated seconds); time to finish: the last
  `sim/time_s`;
- time to target: `sim/time_s` at the first eval step (step 0 excluded) whose `eval/reward` ≥ the report's target
  (the same target as "steps to target"), nan = not reached;
- reward at the time budget: `eval/reward` at the last eval point at or before the budget (step 0, the base model,
  at time 0 included); the budget defaults to the shortest time any counted trail took to finish, so every trail
  has run at least that long;
- trainer idle, rollout busy, rollout batch fullness (r(s)/r_max) and groups in flight: each step's value weighted
  by its simulated duration (`sim/step_s`), i.e. shares of the trail's whole simulated time;
- realised staleness: mean of `staleness/mean`, p95 over steps of `staleness/p95`, max of `staleness/max`.
Cells and intervals are the report's own (tables.seed_cells, stats.estimate: mean ± Student-t over seeds); the
comparisons pair seeds (contrasts.compare: paired t, power, Fieller ratios), each cell against the synchronous
reference: the GRPO baseline (tables.baseline_algo) at its lowest staleness, at its fastest setting where it ran at
several. Time to target is compared on the seeds where both cells reached it, and the sentence says how many did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from harness.report.contrasts import Contrast, compare
from harness.report.findings import _interval, _mde, _needed, cell_text, num, signed
from harness.report.names import algo_title, group_label
from harness.report.stats import estimate
from harness.report.tables import CellKey, SeedCells, algo_order, baseline_algo, seed_cells, seed_values
from harness.store.metrics import (
    EVAL_REWARD,
    SIM_GROUPS_IN_FLIGHT,
    SIM_ROLLOUT_BUSY_FRAC,
    SIM_ROLLOUT_UTIL,
    SIM_SAMPLES_PER_S,
    SIM_STEP_S,
    SIM_TIME_S,
    SIM_TRAINER_IDLE_FRAC,
    STALENESS_P95,
)

TIME, RATE, STEP_S = SIM_TIME_S, SIM_SAMPLES_PER_S, SIM_STEP_S
# trail-table column -> the per-step metric averaged over the trail's simulated time
WEIGHTED = {"trainer_idle_frac": SIM_TRAINER_IDLE_FRAC, "rollout_busy_frac": SIM_ROLLOUT_BUSY_FRAC,
            "rollout_util": SIM_ROLLOUT_UTIL, "groups_in_flight": SIM_GROUPS_IN_FLIGHT}
# cell metrics of the systems table, in order, with their words
SYSTEM_METRICS: Dict[str, str] = {
    "samples_per_s": "throughput (samples / simulated s)",
    "sim_time_s": "simulated time to finish (s)",
    "time_to_target_s": "simulated time to target (s)",
    "reward_at_budget": "eval reward at the time budget",
    "eval_final": "final eval reward",
    "staleness_mean": "realised staleness, mean",
    "staleness_p95": "realised staleness, p95",
    "trainer_idle_frac": "trainer idle (share of time)",
    "rollout_util": "rollout batch fullness r(s)/r_max",
}
TIME_COLUMNS = ["sim_time_s", "samples_per_s", "time_to_target_s", "reward_at_budget", "staleness_p95",
                *WEIGHTED]
# metric -> how a contrast against the reference is worded; ratios for the two speeds
CONTRAST_METRICS = {"eval_final": "final eval reward", "time_to_target_s": "simulated time to target",
                    "samples_per_s": "throughput"}
RATIO_METRICS = ("time_to_target_s", "samples_per_s")


def settings_with_clock(trails: pd.DataFrame, metrics: pd.DataFrame) -> List[str]:
    """The acting dx+dy × rollout settings among the trails that logged the simulated clock."""
    if TIME not in metrics.columns or metrics.empty:
        return []
    timed = set(metrics.loc[metrics[TIME].notna(), "id"])
    return sorted({s for s, tid in zip(trails["setting"], trails["id"], strict=True) if s and tid in timed})


def applies(trails: pd.DataFrame, metrics: pd.DataFrame) -> bool:
    """A systems section is written for more than one acting dx+dy × rollout setting on the simulated clock."""
    return len(settings_with_clock(trails, metrics)) > 1


def eval_times(metrics: pd.DataFrame) -> Dict[str, pd.DataFrame]:
    """trail id -> its eval points (step, sim/time_s, eval/reward), step 0 (time 0, the base model) included."""
    if EVAL_REWARD not in metrics.columns or TIME not in metrics.columns:
        return {}
    frame = metrics[["id", "step", TIME, EVAL_REWARD]].replace([np.inf, -np.inf], np.nan)
    frame = frame.dropna(subset=[EVAL_REWARD])
    frame.loc[frame["step"] == 0, TIME] = 0.0
    frame = frame.dropna(subset=[TIME])
    return {str(tid): part for tid, part in frame.groupby("id", sort=False)}


def time_to_target(points: pd.DataFrame, target: float) -> float:
    """Simulated seconds at the first eval step after step 0 whose reward reaches `target`; nan if none does."""
    trained = points[points["step"] > 0]
    hit = trained[trained[EVAL_REWARD] >= target]
    return float(hit[TIME].iloc[0]) if math.isfinite(target) and len(hit) else math.nan


def reward_at(points: pd.DataFrame, budget: float) -> float:
    """The eval reward at the last eval point at or before `budget` simulated seconds (nan past no point)."""
    before = points[points[TIME] <= budget + 1e-9]
    return float(before[EVAL_REWARD].iloc[-1]) if math.isfinite(budget) and len(before) else math.nan


def _weighted(metrics: pd.DataFrame, metric: str) -> pd.Series:
    """Per trail, the step values of `metric` weighted by each step's simulated duration."""
    if metric not in metrics.columns or STEP_S not in metrics.columns:
        return pd.Series(dtype=float)
    frame = metrics[["id", metric, STEP_S]].replace([np.inf, -np.inf], np.nan).dropna()
    frame = frame.assign(weighted=frame[metric] * frame[STEP_S])
    sums = frame.groupby("id", sort=False)[["weighted", STEP_S]].sum()
    return sums["weighted"] / sums[STEP_S].where(sums[STEP_S] > 0)


def _last(metrics: pd.DataFrame, metric: str) -> pd.Series:
    if metric not in metrics.columns:
        return pd.Series(dtype=float)
    return metrics[["id", metric]].replace([np.inf, -np.inf], np.nan).dropna().groupby("id", sort=False)[metric].last()


def time_table(trails: pd.DataFrame, metrics: pd.DataFrame, budget: Optional[float] = None) -> pd.DataFrame:
    """The trail table with the systems columns (TIME_COLUMNS) and the budget they used (`budget`); `budget`
    defaults to default_budget."""
    table = trails.copy()
    ids = table["id"].astype(str)
    trained = metrics[metrics["step"] > 0]
    table["sim_time_s"] = ids.map(_last(trained, TIME)).astype(float)
    table["samples_per_s"] = ids.map(_last(trained, RATE)).astype(float)
    for column, metric in WEIGHTED.items():
        table[column] = ids.map(_weighted(trained, metric)).astype(float)
    p95 = trained[["id", STALENESS_P95]].dropna().groupby("id")[STALENESS_P95].quantile(0.95) \
        if STALENESS_P95 in trained.columns else pd.Series(dtype=float)
    table["staleness_p95"] = ids.map(p95).astype(float)
    if budget is None:
        budget = default_budget(table)
    points = eval_times(metrics)
    table["time_to_target_s"] = [time_to_target(points[t], float(target)) if t in points else math.nan
                                 for t, target in zip(ids, table["target"], strict=True)]
    table["reward_at_budget"] = [reward_at(points[t], budget) if t in points else math.nan for t in ids]
    table["budget_s"] = float(budget)
    return table


def default_budget(table: pd.DataFrame) -> float:
    """The shortest simulated time any counted trail took to finish: every counted trail ran at least this long."""
    times = seed_cells(table)
    finite = [float(v) for frame in times.values() for v in frame["sim_time_s"] if math.isfinite(v)]
    return min(finite) if finite else math.nan


@dataclass
class SystemsPart:
    """Everything the systems section says, computed once (markdown, CSV and plots read it)."""

    table: pd.DataFrame                  # the trail table with the systems columns
    cells: SeedCells
    budget: float
    target: float
    reference: Optional[CellKey]           # the synchronous reference cell, None without a GRPO baseline
    items: List[Contrast] = field(default_factory=list)
    findings: List[str] = field(default_factory=list)


def reference_cell(cells: SeedCells) -> Optional[CellKey]:
    """The GRPO baseline at its lowest staleness, at its fastest setting (highest mean throughput) when it ran at
    several: the synchronous system that asynchrony has to beat."""
    base = baseline_algo([k.algo for k in cells])
    if base is None:
        return None
    keys = [k for k in cells if k.algo == base]
    low = min(k.stale for k in keys)
    keys = [k for k in keys if k.stale == low]
    return max(keys, key=lambda k: (estimate(seed_values(cells, k, "samples_per_s")).mean, k.setting))


def _where(key: CellKey) -> str:
    return f"{algo_title(key.algo)} at {group_label(key.stale, key.setting)}"


def systems_contrasts(cells: SeedCells, reference: Optional[CellKey]) -> List[Contrast]:
    """Each cell against the reference: final eval reward, time to target (ratio too) and throughput (ratio)."""
    if reference is None:
        return []
    out = []
    for key in sorted(cells, key=lambda k: (k.mode, k.setting, -k.stale, algo_order([k.algo]))):
        if key == reference:
            continue
        for metric in CONTRAST_METRICS:
            a, b = seed_values(cells, key, metric), seed_values(cells, reference, metric)
            if len(a) and len(b):
                out.append(compare("systems", metric, key, reference, a, b, with_ratio=metric in RATIO_METRICS))
    return out


def _mean(cells: SeedCells, key: CellKey, column: str) -> float:
    return estimate(seed_values(cells, key, column)).mean


def _reached(cells: SeedCells, key: CellKey) -> str:
    frame = cells[key]
    return f"{int(frame['time_to_target_s'].notna().sum())} of {len(frame)} seeds"


def contrast_sentence(c: Contrast, cells: SeedCells, claim_up: str, claim_down: str) -> str:
    """'<a> against <b>: <metric> … difference [interval] …'; a difference only when its interval excludes 0."""
    words = CONTRAST_METRICS.get(c.metric, c.metric)
    sides = (f"{_where(c.a_key)} {cell_text(c.a, c.metric)} vs {_where(c.b_key)} "
             f"{cell_text(c.b, c.metric)}")
    if c.metric == "time_to_target_s":
        sides += f"; reached by {_reached(cells, c.a_key)} and {_reached(cells, c.b_key)}"
    r, lo, hi = c.ratio
    ratio = (f", ratio {num(r)} [Fieller {num(lo)}, {num(hi)}]" if math.isfinite(lo) and math.isfinite(hi)
             else f", ratio {num(r)}" if math.isfinite(r) and c.metric in RATIO_METRICS else "")
    if c.diff.excludes(0.0):
        verdict = claim_up if c.diff.mean > 0 else claim_down
        return (f"{_where(c.a_key)} {verdict} {_where(c.b_key)}: {words} {signed(c.diff.mean, c.metric)} "
                f"({_interval(c)}, {c.n}{_mde(c)}{ratio}; {sides}).")
    why = (f"{_interval(c)} includes 0{_mde(c)}{_needed(c)}" if c.diff.has_interval else
           "no interval" + ("; seed variance is unknown" if max(len(c.a), len(c.b)) < 2 else ""))
    return (f"Cannot tell {_where(c.a_key)} from {_where(c.b_key)} in {words} with {c.n}: difference "
            f"{signed(c.diff.mean, c.metric)}, {why}{ratio} ({sides}).")


def _find(items: List[Contrast], key: CellKey, metric: str) -> Optional[Contrast]:
    return next((c for c in items if c.a_key == key and c.metric == metric), None)


def fastest(cells: SeedCells, column: str, lowest: bool, complete: bool = False) -> List[CellKey]:
    """Cells ordered fastest first by the mean of `column` (lowest or highest); `complete`: only cells whose every
    seed has a value (every seed reached the target)."""
    keys = [k for k in cells if len(seed_values(cells, k, column))
            and (not complete or len(seed_values(cells, k, column)) == len(cells[k]))]
    return sorted(keys, key=lambda k: _mean(cells, k, column) * (1 if lowest else -1))


def systems_findings(part: SystemsPart) -> List[str]:
    """The three questions, answered from the comparisons: which setting trains fastest; what each loss gives up
    for that speed; whether M2PO reaches the reference's reward sooner."""
    cells, items, ref = part.cells, part.items, part.reference
    out = [f"Time axis: the simulated clock (docs/SYSTEMS.md). Target: eval reward ≥ {num(part.target)} (as "
           f"\"steps to target\"); time budget: {num(part.budget)} simulated s (the shortest time any counted trail "
           "took to finish)."]
    if ref is None:
        return out + ["No GRPO reading ran, so there is no synchronous reference to compare with."]
    out.append(f"Reference: {_where(ref)}, the GRPO baseline at its lowest staleness and its fastest setting: "
               f"throughput {cell_text(seed_values(cells, ref, 'samples_per_s'), 'samples_per_s')}, time to target "
               f"{cell_text(seed_values(cells, ref, 'time_to_target_s'), 'time_to_target_s')} (reached by "
               f"{_reached(cells, ref)}).")
    by_rate = fastest(cells, "samples_per_s", lowest=False)
    if by_rate:
        top = by_rate[0]
        line = (f"Highest throughput: {_where(top)}, "
                f"{cell_text(seed_values(cells, top, 'samples_per_s'), 'samples_per_s')} samples per simulated s")
        runner = next((k for k in by_rate[1:] if k.setting != top.setting), None)
        if runner is not None:
            a, b = seed_values(cells, top, "samples_per_s"), seed_values(cells, runner, "samples_per_s")
            c = compare("systems", "samples_per_s", top, runner, a, b, with_ratio=True)
            line += (f"; against the fastest other setting, {_where(runner)} ({cell_text(b, 'samples_per_s')}): "
                     f"{signed(c.diff.mean)} ({_interval(c)}, {c.n}{_mde(c)})")
        out.append(line + ".")
    by_time = fastest(cells, "time_to_target_s", lowest=True, complete=True)
    if by_time:
        top = by_time[0]
        line = (f"Shortest time to target (among cells where every seed reached it): {_where(top)}, "
                f"{cell_text(seed_values(cells, top, 'time_to_target_s'), 'time_to_target_s')} simulated s")
        runner = next((k for k in by_time[1:] if k.setting != top.setting), None)
        if runner is not None:
            a, b = seed_values(cells, top, "time_to_target_s"), seed_values(cells, runner, "time_to_target_s")
            c = compare("systems", "time_to_target_s", top, runner, a, b)
            verdict = "shorter" if c.diff.excludes(0.0) and c.diff.mean < 0 else "cannot tell it from"
            line += (f"; against the fastest other setting, {_where(runner)} ({cell_text(b, 'time_to_target_s')}): "
                     f"{verdict} ({signed(c.diff.mean)}, {_interval(c)}, {c.n}{_mde(c)})")
        out.append(line + ".")
    for algo in algo_order([k.algo for k in cells]):
        mine = [k for k in by_rate if k.algo == algo and k != ref]
        if not mine:
            continue
        quality = _find(items, mine[0], "eval_final")
        if quality is not None:
            out.append("Quality for speed, " + algo_title(algo) + " at its highest-throughput cell: "
                       + contrast_sentence(quality, cells, "scores above", "scores below"))
    for algo in algo_order([k.algo for k in cells if k.algo.startswith("m2po")]):
        mine = [k for k in by_time if k.algo == algo] or [k for k in fastest(cells, "time_to_target_s", True)
                                                         if k.algo == algo]
        if not mine:
            out.append(f"{algo_title(algo)} reached the target in no cell.")
            continue
        sooner = _find(items, mine[0], "time_to_target_s")
        if sooner is not None:
            out.append("Sooner than on-policy GRPO? " + algo_title(algo) + " at its fastest cell to target: "
                       + contrast_sentence(sooner, cells, "is slower than", "reaches the target sooner than"))
    return out


def systems_part(trails: pd.DataFrame, metrics: pd.DataFrame, budget: Optional[float] = None) -> \
        Optional[SystemsPart]:
    """The systems section of these trails (the report's primary set), or None where it does not apply."""
    if not applies(trails, metrics):
        return None
    table = time_table(trails, metrics, budget)
    cells = seed_cells(table)
    target = float(table["target"].iloc[0]) if len(table) else math.nan
    part = SystemsPart(table, cells, float(table["budget_s"].iloc[0]), target, reference_cell(cells))
    part.items = systems_contrasts(cells, part.reference)
    part.findings = systems_findings(part)
    return part


def cell_frame(part: SystemsPart) -> pd.DataFrame:
    """Per cell and systems metric: n, mean and 95 % t bounds, the seeds and their values (systems_cells.csv)."""
    rows = []
    for key in sorted(part.cells, key=lambda k: (k.mode, k.setting, k.stale, algo_order([k.algo]))):
        for column in SYSTEM_METRICS:
            values = seed_values(part.cells, key, column)
            est = estimate(values)
            rows.append({**key._asdict(), "metric": column,
                         "n": est.n, "trails": len(part.cells[key]), "mean": est.mean, "lo": est.lo, "hi": est.hi,
                         "seeds": ";".join(str(s) for s in values.index),
                         "values": ";".join(f"{v:.6g}" for v in values)})
    return pd.DataFrame(rows)


def contrast_rows(part: SystemsPart) -> pd.DataFrame:
    """The comparisons against the reference as a numeric table (systems_contrasts.csv)."""
    rows = []
    for c in part.items:
        rows.append({"metric": c.metric, "a_setting": c.a_key.setting, "a_stale": c.a_key.stale, "a_algo": c.a_key.algo,
                     "b_setting": c.b_key.setting, "b_stale": c.b_key.stale, "b_algo": c.b_key.algo, "method": c.method,
                     "pairs": c.pairs, "a_mean": estimate(c.a).mean, "b_mean": estimate(c.b).mean,
                     "diff": c.diff.mean, "diff_lo": c.diff.lo, "diff_hi": c.diff.hi,
                     "ratio": c.ratio[0], "ratio_lo": c.ratio[1], "ratio_hi": c.ratio[2],
                     "excludes_0": c.diff.excludes(0.0), "sd_diff": c.sd, "mde_80": c.mde})
    return pd.DataFrame(rows)


def _cell_markdown(part: SystemsPart) -> str:
    rows = []
    for key in sorted(part.cells, key=lambda k: (k.mode, k.setting, -k.stale, algo_order([k.algo]))):
        line = {"configuration": group_label(key.stale, key.setting), "algorithm": algo_title(key.algo)}
        for column, words in SYSTEM_METRICS.items():
            values = seed_values(part.cells, key, column)
            text = _short(values, column)
            if column == "time_to_target_s":
                text += f" ({_reached(part.cells, key).replace(' seeds', '')})"
            line[words] = text
        rows.append(line)
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n"


def _short(values: pd.Series, metric: str) -> str:
    """'82.1 ± 0.9' (mean ± t half-width), '82.1' for one seed, '—' for none."""
    est = estimate(values)
    if est.n == 0:
        return "—"
    if est.n == 1 or not math.isfinite(est.half):
        return num(est.mean, metric)
    return f"{num(est.mean, metric)} ± {num(est.half, metric)}"


def _contrast_markdown(part: SystemsPart) -> str:
    if not part.items:
        return "_No reference to compare with._\n"
    rows = []
    for c in part.items:
        r, lo, hi = c.ratio
        rows.append({"cell": _where(c.a_key), "metric": CONTRAST_METRICS[c.metric],
                     "difference": signed(c.diff.mean, c.metric),
                     "95 % interval": f"[{signed(c.diff.lo)}, {signed(c.diff.hi)}]" if c.diff.has_interval else "—",
                     "excludes 0": "yes" if c.diff.excludes(0.0) else "no", "n": c.n,
                     "separates (80 % power)": f"±{num(c.mde)}" if math.isfinite(c.mde) else "—",
                     "ratio [Fieller 95 %]": (f"{num(r)} [{num(lo)}, {num(hi)}]" if math.isfinite(lo)
                                              and math.isfinite(hi) else num(r) if math.isfinite(r) else "")})
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n"


def systems_markdown(part: SystemsPart, plots: Dict[str, str], captions: Dict[str, str]) -> List[str]:
    """The report's section: findings, the frontier, the time curves, the per-cell table and the comparisons."""
    figures = [f"![{captions[k]}]({plots[k]})\n" for k in ("frontier", "eval_vs_time") if k in plots]
    ref = _where(part.reference) if part.reference else "none"
    return [
        "## Systems: simulated time, throughput and the frontier",
        "",
        *[f"- {text}" for text in part.findings],
        "",
        *figures,
        "### Per configuration and algorithm (simulated clock)",
        "",
        "Mean ± 95 % Student-t half-width over seeds (one seed: its value). Time to target: over the seeds that "
        "reached it (how many in brackets). Shares of time are weighted by each step's simulated duration.",
        "",
        _cell_markdown(part),
        f"### Against the synchronous reference ({ref})",
        "",
        "Paired over seeds (time to target: over the seeds where both reached it); ratios a / b with Fieller's "
        "interval. Tables as CSV: [systems_trails.csv](systems_trails.csv), [systems_cells.csv](systems_cells.csv), "
        "[systems_contrasts.csv](systems_contrasts.csv).",
        "",
        _contrast_markdown(part),
    ]


__all__ = ["SystemsPart", "applies", "cell_frame", "contrast_rows", "systems_markdown", "systems_part",
           "time_table"]
