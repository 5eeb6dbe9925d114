"""PNG plots: one figure per metric, one subplot per (stale, alloc, rollout), algorithms overlaid.

Each algorithm is drawn as the mean over its completed seeds with a shaded min–max band; a trail that diverged
or failed is drawn on its own as a dotted line, so its curve is visible without entering the mean.
Figures are built on matplotlib's Agg canvas directly (no pyplot): headless, and no global backend switch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from harness.report.findings import display
from harness.report.tables import AGGREGATED_STATES, CONFIG, algo_order, config_label

PLOTTED: Dict[str, str] = {"eval/reward": "eval reward", "train/grad_norm": "grad_norm"}
NCOLS = 3


def plot_file(metric: str) -> str:
    return metric.replace("/", "_") + ".png"


def _series(metrics: pd.DataFrame, metric: str) -> Dict[str, pd.Series]:
    """trail id -> its curve of `metric` indexed by step (non-finite steps dropped: a diverging step leaves a gap)."""
    values = metrics[["id", "step", metric]].replace([np.inf, -np.inf], np.nan).dropna(subset=[metric])
    return {str(name): frame.set_index("step")[metric] for name, frame in values.groupby("id", sort=False)}


def _limits(curves: Dict[str, pd.Series]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Common x and y limits for every subplot: set once instead of sharing axes (sharing costs O(subplots²))."""
    steps = np.concatenate([c.index.to_numpy(dtype=float) for c in curves.values()])
    values = np.concatenate([c.to_numpy(dtype=float) for c in curves.values()])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) or 0.05 * max(abs(hi), 1.0)
    first, last = float(steps.min()), float(steps.max())
    return (first, last if last > first else first + 1.0), (lo - pad, hi + pad)


def plot_metric(metrics: pd.DataFrame, trails: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """Write one PNG for `metric`; None when no trail logged it."""
    if metric not in metrics.columns:
        return None
    curves = _series(metrics, metric)
    if not curves:
        return None
    xlim, ylim = _limits(curves)
    configs = list(trails[CONFIG].drop_duplicates().sort_values(CONFIG, kind="stable").itertuples(index=False))
    algos = algo_order(list(trails["algo"].dropna()))
    colours = {a: f"C{i}" for i, a in enumerate(algos)}
    ncols = min(NCOLS, len(configs))
    nrows = math.ceil(len(configs) / ncols)
    width, height = max(4.2 * ncols, 7.0), 2.9 * nrows + 1.0
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, (ax, config) in enumerate(zip(axes.flat, configs)):
        ax.set_autoscale_on(False)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        here = trails[(trails["stale"] == config.stale) & (trails["alloc"] == config.alloc)
                      & (trails["rollout"] == config.rollout)]
        counts = []
        for algo in algos:
            mine = here[here["algo"] == algo]
            if mine.empty:
                continue
            done = [t for t in mine.loc[mine["state"].isin(AGGREGATED_STATES), "id"] if t in curves]
            counts.append(f"{display(algo)} {len(done)}")
            if done:
                frame = pd.concat([curves[t] for t in done], axis=1).sort_index()
                steps = frame.index.to_numpy()
                ax.plot(steps, frame.mean(axis=1).to_numpy(), color=colours[algo], lw=1.2)
                ax.fill_between(steps, frame.min(axis=1).to_numpy(), frame.max(axis=1).to_numpy(),
                                color=colours[algo], alpha=0.2, lw=0)
            for row in mine[~mine["state"].isin(AGGREGATED_STATES)].itertuples(index=False):
                curve = curves.get(row.id)
                if curve is not None and not curve.empty:
                    ax.plot(curve.index.to_numpy(), curve.to_numpy(), color=colours[algo], ls=":", lw=1)
                    ax.annotate(f"seed {row.seed} {row.state}", (curve.index[-1], curve.iloc[-1]),
                                fontsize=6, color=colours[algo])
        # an explicit title position skips matplotlib's per-draw title layout pass
        ax.set_title(f"{config_label(*config)}\ncompleted seeds: {', '.join(counts)}", fontsize=8, y=1.0, pad=3)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        # limits are common, so only the outer subplots need tick labels (text is most of the drawing cost)
        ax.tick_params(labelsize=7, labelbottom=i + ncols >= len(configs), labelleft=i % ncols == 0)
    for ax in list(axes.flat)[len(configs):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(PLOTTED.get(metric, metric), fontsize=8)
    for ax in list(axes.flat)[max(0, len(configs) - ncols):len(configs)]:
        ax.set_xlabel("step", fontsize=8)
    # one legend for the figure: a legend per subplot costs as much as drawing the curves
    handles = [Line2D([], [], color=colours[a], lw=1.2, label=display(a)) for a in algos]
    handles.append(Patch(color="grey", alpha=0.2, label="min–max over seeds"))
    handles.append(Line2D([], [], color="grey", ls=":", lw=1, label="diverged / failed / unfinished"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1 - 0.35 / height), fontsize=8,
               ncol=len(handles), frameon=False)
    fig.suptitle(f"{PLOTTED.get(metric, metric)} vs step (line: mean of completed seeds)",
                 fontsize=10, x=0.01, y=1 - 0.1 / height, ha="left", va="top")
    # fixed margins: tight_layout measures every tick label and costs more than all the drawing
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 1.05 / height,
                        wspace=0.18, hspace=0.55)
    fig.savefig(path, dpi=80)
    return path


def write_plots(metrics: pd.DataFrame, trails: pd.DataFrame, out: Path) -> Dict[str, Path]:
    """metric -> written PNG, for every metric in PLOTTED that some trail logged."""
    written = {}
    for metric in PLOTTED:
        path = plot_metric(metrics, trails, metric, out / plot_file(metric))
        if path is not None:
            written[metric] = path
    return written
