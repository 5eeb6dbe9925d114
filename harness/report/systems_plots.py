"""Figures of the systems section: eval reward against simulated time, and the frontier.

Eval reward vs simulated time: the step curves' figure (plots.plot_metric: a panel per configuration, each
algorithm the mean of its completed seeds with a min–max band), with each step placed at its cell's mean simulated
time, so that a cell's seeds share their x values and average exactly as the step curves do; a trail outside the
aggregates is drawn, dotted, at its own times.

Frontier: for each algorithm, one point per dx+dy × rollout cell (and staleness bound, told apart by the marker):
throughput (samples per simulated second) across, and in two panels the final eval reward and the simulated time to
the target reward up; every point is a cell mean with its 95 % Student-t interval over seeds on both axes (none with
one seed). A hollow point in the time panel: not every seed reached the target (the mean is over those that did).
The line joins each algorithm's Pareto-optimal cells: none of its other cells is both faster and better.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.report.findings import num
from harness.report.names import algo_title
from harness.report.plots import plot_metric
from harness.report.stats import estimate
from harness.report.systems import TIME, SystemsPart
from harness.report.tables import CELL, aggregated, algo_order, seed_values
from harness.store.metrics import BASE_REWARD, EVAL_REWARD

FRONTIER, FRONTIER_FILE = "frontier", "frontier.png"
EVAL_VS_TIME, EVAL_VS_TIME_FILE = "eval_vs_time", "eval_reward_vs_time.png"
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
LABEL_OFFSETS = [(4, 3), (4, -9), (-44, 3), (-44, -9)]  # points: each algorithm's cell labels on their own side
TIME_LABEL = "simulated time (s)"


def on_time_axis(metrics: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The eval curves with `step` replaced by simulated seconds: a counted trail's step by its cell's mean
    `sim/time_s` at that step, any other trail's by its own; step 0 (the base model) at time 0."""
    columns = [c for c in (EVAL_REWARD, BASE_REWARD) if c in metrics.columns]
    frame = metrics[["id", "step", TIME, *columns]].copy()
    frame.loc[frame["step"] == 0, TIME] = 0.0
    counted = aggregated(table)
    cell_of = dict(zip(counted["id"], ("|".join(str(v) for v in key) for key in
                                       counted[CELL].itertuples(index=False)), strict=True))
    frame["cell"] = [cell_of.get(tid, f"trail {tid}") for tid in frame["id"]]
    frame["step"] = frame.groupby(["cell", "step"])[TIME].transform("mean")
    return frame.dropna(subset=["step"]).drop(columns=[TIME, "cell"])


def _short(setting: str) -> str:
    """'d2+d2 rollout 128' -> 'd2+d2 r128'."""
    return setting.replace("rollout ", "r")


def _pareto(points: List[tuple], lower_is_better: bool) -> List[tuple]:
    """The (x, y) points no other point beats on both: higher x and better y."""
    better = (lambda a, b: a <= b) if lower_is_better else (lambda a, b: a >= b)
    front = [p for p in points if not any(q != p and q[0] >= p[0] and better(q[1], p[1]) for q in points)]
    return sorted(front)


def plot_frontier(part: SystemsPart, path: Path) -> Optional[Path]:
    """The frontier figure (module docstring); None without a cell that logged throughput."""
    cells = part.cells
    keys = [k for k in cells if len(seed_values(cells, k, "samples_per_s"))]
    if not keys:
        return None
    algos = algo_order([k.algo for k in keys])
    colours = {a: f"C{i}" for i, a in enumerate(algos)}
    stales = sorted({k.stale for k in keys}, reverse=True)
    markers = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(stales)}
    panels = [("eval_final", "final eval reward", False),
              ("time_to_target_s", f"simulated time to eval reward ≥ {num(part.target)} (s)", True)]
    width, height = 13.0, 5.6
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, 2, squeeze=False)[0]
    hollow_drawn = False
    for ax, (column, label, lower) in zip(axes, panels, strict=True):
        for algo in algos:
            points = []
            for key in (k for k in keys if k.algo == algo):
                x, y = estimate(seed_values(cells, key, "samples_per_s")), estimate(seed_values(cells, key, column))
                if y.n == 0:
                    continue
                hollow = column == "time_to_target_s" and y.n < len(cells[key])
                hollow_drawn = hollow_drawn or hollow
                ax.errorbar([x.mean], [y.mean], xerr=[[x.half if math.isfinite(x.half) else 0.0]] * 2,
                            yerr=[[y.half if math.isfinite(y.half) else 0.0]] * 2, color=colours[algo],
                            marker=markers[key.stale], mfc="white" if hollow else colours[algo], ms=6, capsize=2,
                            elinewidth=0.9, lw=0, alpha=0.9)
                ax.annotate(_short(key.setting), (x.mean, y.mean), textcoords="offset points",
                            xytext=LABEL_OFFSETS[algos.index(algo) % len(LABEL_OFFSETS)], fontsize=6,
                            color=colours[algo])
                points.append((x.mean, y.mean))
            front = _pareto(points, lower)
            if len(front) > 1:
                xs, ys = np.array(front).T
                ax.plot(xs, ys, color=colours[algo], lw=0.8, alpha=0.6)
        ax.set_xlabel("throughput (samples per simulated second)", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(color="0.92", lw=0.6)
        ax.set_axisbelow(True)
    handles: List[Artist] = [Line2D([], [], color=colours[a], marker="o", lw=0.8, label=algo_title(a))
                             for a in algos]
    handles += [Line2D([], [], color="grey", marker=markers[s], lw=0, label=f"stale {s}") for s in stales]
    handles.append(Line2D([], [], color="grey", marker="|", ms=8, lw=0, label="bars: 95 % t over seeds, both axes"))
    if hollow_drawn:
        handles.append(Line2D([], [], color="grey", marker="o", mfc="white", lw=0,
                              label="not every seed reached the target"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1 - 0.3 / height), fontsize=7,
               ncol=min(len(handles), 8), frameon=False)
    fig.suptitle("frontier: quality and time to target against throughput, one point per dx+dy × rollout cell "
                 "(line: each algorithm's Pareto-optimal cells)", fontsize=10, x=0.01, y=1 - 0.08 / height,
                 ha="left", va="top")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=1 - 1.0 / height, wspace=0.18)
    fig.savefig(path, dpi=80)
    return path


def write_systems_plots(part: SystemsPart, metrics: pd.DataFrame, out: Path) -> Dict[str, Path]:
    """key -> written PNG: the frontier and eval reward against simulated time."""
    written: Dict[str, Path] = {}
    frontier = plot_frontier(part, out / FRONTIER_FILE)
    if frontier is not None:
        written[FRONTIER] = frontier
    curves = plot_metric(on_time_axis(metrics, part.table), part.table, EVAL_REWARD, out / EVAL_VS_TIME_FILE,
                         x_label=TIME_LABEL)
    if curves is not None:
        written[EVAL_VS_TIME] = curves
    return written


def systems_captions() -> Dict[str, str]:
    return {FRONTIER: "frontier: final eval reward and simulated time to target against throughput",
            EVAL_VS_TIME: "eval reward vs simulated time"}
