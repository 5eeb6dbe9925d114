"""PNG figures: the summary (final and best eval reward against staleness, the paper's main picture), and one curve
figure per metric with a subplot per configuration.

Curves: each algorithm is the mean over its completed seeds; eval reward with a shaded min–max band over seeds, from
step 0, the base model's eval (journals written before engines logged step 0 give it as `base/reward`);
grad_norm on a log axis, the raw mean faint behind a rolling median (its bulk sits far below its spikes). A trail that
diverged or failed is drawn on its own, dotted, outside the mean. Legends list only what is drawn. Titles name only
the axes that act in the trail's staleness mode. Figures are built on matplotlib's Agg canvas directly (no pyplot):
headless, and no global backend switch.

Forest plot: the report's comparisons, one row each, so the differences the findings state are read off one picture
rather than as two cells' intervals side by side: the difference a − b with its 95 % interval against the zero line
(filled where the interval excludes 0), one panel per metric (each on its own scale), and beside the rows that compare
a cell with the on-policy baseline as a ratio (`paper`) that ratio with its Fieller interval against the 0.95× mark.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

from harness.report.contrasts import Contrast
from harness.report.findings import RETENTION
from harness.report.names import algo_title, group_label
from harness.report.stats import LEVEL, estimate, wilson_interval
from harness.report.tables import CELL_METRICS, GROUP, CellKey, GroupKey, algo_order, counted, seed_cells, seed_values
from harness.store.metrics import BASE_REWARD, EVAL_REWARD, TRAIN_GRAD_NORM

PLOTTED: Dict[str, str] = {EVAL_REWARD: "eval reward", TRAIN_GRAD_NORM: "grad_norm"}
LOG_AXIS = (TRAIN_GRAD_NORM,)
SMOOTH_POINTS = 40  # rolling window = steps / SMOOTH_POINTS
NCOLS = 3
SUMMARY = "summary"
SUMMARY_FILE = "summary_eval_vs_staleness.png"
FOREST = "forest"
FOREST_FILE = "forest_contrasts.png"
RATIO_KINDS = ("paper",)  # the comparisons RETENTION is a mark for
KIND_COLOURS = {"lift": "C2", "algorithms": "C0", "staleness": "C1", "paper": "C4"}  # C3 (red) is the mark's


def plot_file(metric: str) -> str:
    return metric.replace("/", "_") + ".png"


def _series(metrics: pd.DataFrame, metric: str, positive: bool) -> Dict[str, pd.Series]:
    """trail id -> its curve of `metric` indexed by step (non-finite steps dropped: a diverging step leaves a gap;
    on a log axis, non-positive values too)."""
    values = metrics[["id", "step", metric]].replace([np.inf, -np.inf], np.nan).dropna(subset=[metric])
    if positive:
        values = values[values[metric] > 0]
    steps, ys = values["step"].to_numpy(), values[metric].to_numpy()
    # a Series per trail from the group's row positions: a thousand set_index calls cost seconds
    return {str(name): pd.Series(ys[rows], index=pd.Index(steps[rows], name="step"), name=metric)
            for name, rows in values.groupby("id", sort=False).indices.items()}


def _from_base(curves: Dict[str, pd.Series], metrics: pd.DataFrame) -> Dict[str, pd.Series]:
    """Eval curves that lack step 0 start from the trail's `base/reward` there (journals written before the base
    model's eval was step 0 logged it, as `base/reward`, with step 1)."""
    if BASE_REWARD not in metrics.columns:
        return curves
    base = _series(metrics, BASE_REWARD, positive=False)
    for tid, curve in curves.items():
        if tid in base and curve.index[0] > 0:
            start = pd.Series([base[tid].iloc[0]], index=pd.Index([0], name="step"), name=curve.name)
            curves[tid] = pd.concat([start, curve])
    return curves


def _limits(curves: Dict[str, pd.Series], log: bool) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """Common x and y limits for every subplot: set once instead of sharing axes (sharing costs O(subplots²))."""
    steps = np.concatenate([c.index.to_numpy(dtype=float) for c in curves.values()])
    values = np.concatenate([c.to_numpy(dtype=float) for c in curves.values()])
    lo, hi = float(values.min()), float(values.max())
    if log:
        ylim = (lo / 1.3, hi * 1.3)
    else:
        pad = 0.05 * (hi - lo) or 0.05 * max(abs(hi), 1.0)
        ylim = (lo - pad, hi + pad)
    first, last = float(steps.min()), float(steps.max())
    return (first, last if last > first else first + 1.0), ylim


def _groups(trails: pd.DataFrame) -> List[GroupKey]:
    return [GroupKey(*g) for g in trails[GROUP].drop_duplicates().sort_values(GROUP, kind="stable")
            .itertuples(index=False)]


def _title(group: GroupKey, show_mode: bool) -> str:
    return (f"{group.mode}: " if show_mode else "") + group_label(group.stale, group.setting)


def plot_metric(metrics: pd.DataFrame, trails: pd.DataFrame, metric: str, path: Path,
                x_label: str = "step") -> Optional[Path]:
    """Write one PNG for `metric`; None when no trail logged it. The x axis is the metrics' `step` column, named
    `x_label` (the systems section passes simulated seconds there)."""
    if metric not in metrics.columns:
        return None
    log = metric in LOG_AXIS
    curves = _series(metrics, metric, positive=log)
    if not curves:
        return None
    starts = ""
    if metric == EVAL_REWARD:
        curves = _from_base(curves, metrics)
        starts = "; step 0: the base model" if any(c.index[0] == 0 for c in curves.values()) else ""
    xlim, ylim = _limits(curves, log)
    groups = _groups(trails)
    show_mode = trails["mode"].nunique() > 1
    algos = algo_order(list(trails["algo"].dropna()))
    colours = {a: f"C{i}" for i, a in enumerate(algos)}
    window = max(1, int(round((xlim[1] - xlim[0]) / SMOOTH_POINTS)))
    ncols = min(NCOLS, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    width, height = max(4.2 * ncols, 7.0), 2.9 * nrows + 1.0
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    drawn: Dict[str, bool] = {"band": False, "excluded": False}
    drawn_algos = set()
    for i, (ax, group) in enumerate(zip(axes.flat, groups, strict=False)):  # the grid may have spare panels
        if log:
            ax.set_yscale("log")
        ax.set_autoscale_on(False)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        here = trails[(trails["mode"] == group.mode) & (trails["setting"] == group.setting)
                      & (trails["stale"] == group.stale)]
        counts = []
        for algo in algos:
            mine = here[here["algo"] == algo]
            if mine.empty:
                continue
            done = [t for t in mine.loc[counted(mine), "id"] if t in curves]
            counts.append(f"{algo_title(algo)} {len(done)}")
            if done:
                frame = pd.concat([curves[t] for t in done], axis=1).sort_index()
                steps = frame.index.to_numpy()
                mean = frame.mean(axis=1)
                drawn_algos.add(algo)
                if log:
                    ax.plot(steps, mean.to_numpy(), color=colours[algo], lw=0.5, alpha=0.25)
                    smooth = mean.rolling(window, min_periods=1, center=True).median()
                    ax.plot(steps, smooth.to_numpy(), color=colours[algo], lw=1.3)
                else:
                    ax.plot(steps, mean.to_numpy(), color=colours[algo], lw=1.2)
                    if len(done) > 1:
                        ax.fill_between(steps, frame.min(axis=1).to_numpy(), frame.max(axis=1).to_numpy(),
                                        color=colours[algo], alpha=0.2, lw=0)
                        drawn["band"] = True
            for row in mine[~counted(mine)].itertuples(index=False):
                curve = curves.get(row.id)
                if curve is not None and not curve.empty:
                    ax.plot(curve.index.to_numpy(), curve.to_numpy(), color=colours[algo], ls=":", lw=1)
                    ax.annotate(f"seed {row.seed} {row.state}", (curve.index[-1], curve.iloc[-1]),
                                fontsize=6, color=colours[algo])
                    drawn["excluded"] = True
                    drawn_algos.add(algo)
        # an explicit title position skips matplotlib's per-draw title layout pass
        ax.set_title(f"{_title(group, show_mode)}\ncompleted seeds: {', '.join(counts)}", fontsize=8, y=1.0, pad=3)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        if log:
            ax.yaxis.set_major_locator(LogLocator(numticks=5))
            ax.yaxis.set_minor_locator(NullLocator())  # a log axis' minor ticks cost more than all its curves
        else:
            ax.yaxis.set_major_locator(MaxNLocator(5))
        # limits are common, so only the outer subplots need tick labels (text is most of the drawing cost)
        ax.tick_params(labelsize=7, labelbottom=i + ncols >= len(groups), labelleft=i % ncols == 0)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    label = PLOTTED.get(metric, metric) + (" (log)" if log else "")
    for ax in axes[:, 0]:
        ax.set_ylabel(label, fontsize=8)
    for ax in list(axes.flat)[max(0, len(groups) - ncols):len(groups)]:
        ax.set_xlabel(x_label, fontsize=8)
    # one legend for the figure, listing only what was drawn
    handles: List[Artist] = [Line2D([], [], color=colours[a], lw=1.2, label=algo_title(a)) for a in algos
                             if a in drawn_algos]
    if log:
        handles.append(Line2D([], [], color="grey", lw=0.5, alpha=0.4, label="raw mean (faint)"))
        handles.append(Line2D([], [], color="grey", lw=1.3, label=f"rolling median, {window} steps"))
    if drawn["band"]:
        handles.append(Patch(color="grey", alpha=0.2, label="min–max over seeds"))
    if drawn["excluded"]:
        handles.append(Line2D([], [], color="grey", ls=":", lw=1, label="diverged / failed / unfinished"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1 - 0.35 / height), fontsize=8,
               ncol=len(handles), frameon=False)
    fig.suptitle(f"{PLOTTED.get(metric, metric)} vs {x_label} (line: mean of completed seeds{starts})",
                 fontsize=10, x=0.01, y=1 - 0.1 / height, ha="left", va="top")
    # fixed margins: tight_layout measures every tick label and costs more than all the drawing
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 1.05 / height,
                        wspace=0.18, hspace=0.55)
    fig.savefig(path, dpi=80)
    return path


def plot_summary(trails: pd.DataFrame, path: Path) -> Optional[Path]:
    """Final and best eval reward against staleness, one line per algorithm: mean with its 95 % t interval (n ≥ 2)
    or the one seed's Wilson eval-set interval (n = 1, hollow marker), every seed as a small dot."""
    cells = seed_cells(trails)
    cells = {k: f for k, f in cells.items() if f["eval_final"].notna().any()}
    if not cells:
        return None
    settings = sorted({k.where for k in cells})
    show_mode = len({k.mode for k in cells}) > 1
    algos = algo_order([k.algo for k in cells])
    colours = {a: f"C{i}" for i, a in enumerate(algo_order(list(trails["algo"].dropna())))}
    columns = [("eval_final", "final eval reward"), ("eval_best", "best eval reward")]
    nrows = len(settings)
    width, height = 9.0, 3.0 * nrows + 1.0
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, 2, squeeze=False)
    drawn = {"t": False, "wilson": False}
    offsets = {a: (i - (len(algos) - 1) / 2) * 0.06 for i, a in enumerate(algos)}
    for r, setting in enumerate(settings):
        stales = sorted({k.stale for k in cells if k.where == setting})
        pos = {s: i for i, s in enumerate(stales)}
        for c, (column, words) in enumerate(columns):
            ax = axes[r, c]
            for algo in algos:
                points: Dict[bool, Tuple[List[float], ...]] = {True: ([], [], [], []), False: ([], [], [], [])}
                # hollow? -> x, mean, lo, hi
                dots_x, dots_y, xs, ys = [], [], [], []
                for stale in stales:
                    values = seed_values(cells, CellKey(*setting, stale, algo), column)
                    if values.empty:
                        continue
                    x = pos[stale] + offsets[algo]
                    est = estimate(values)
                    if est.n >= 2:
                        lo, hi, hollow = est.lo, est.hi, False
                        drawn["t"] = True
                    else:
                        cell = CellKey(*setting, stale, algo)
                        sizes = cells[cell]["eval_size"].dropna().unique()
                        lo, hi = wilson_interval(est.mean, int(sizes[0])) if len(sizes) == 1 else (est.mean,) * 2
                        hollow = True
                        drawn["wilson"] = drawn["wilson"] or len(sizes) == 1
                    for target, value in zip(points[hollow], (x, est.mean, lo, hi), strict=True):
                        target.append(value)
                    dots_x += [x] * len(values)
                    dots_y += list(values.to_numpy())
                    xs.append(x)
                    ys.append(est.mean)
                # one errorbar call per marker style and one scatter per algorithm: artists are the cost
                for hollow, (px, pm, plo, phi) in points.items():
                    if px:
                        pm_, plo_, phi_ = np.array(pm), np.array(plo), np.array(phi)
                        ax.errorbar(px, pm_, yerr=[pm_ - plo_, phi_ - pm_], color=colours[algo], marker="o",
                                    mfc="white" if hollow else colours[algo], ms=5, capsize=3, lw=0, elinewidth=1.2)
                if dots_x:
                    ax.scatter(dots_x, dots_y, color=colours[algo], s=6, alpha=0.5, lw=0)
                if xs:
                    ax.plot(xs, ys, color=colours[algo], lw=1.0, alpha=0.7)
            ax.set_xticks(range(len(stales)), [str(s) for s in stales])
            ax.set_xlim(-0.5, len(stales) - 0.5)
            ax.set_xlabel("stale (max staleness η / fixed lag)", fontsize=8)
            ax.set_ylabel(words, fontsize=8)
            where = (f"{setting.mode}: " if show_mode else "") + (setting.setting or "")
            ax.set_title(f"{words}{' — ' + where if where.strip() else ''}", fontsize=9)
            ax.tick_params(labelsize=7)
    handles = [Line2D([], [], color=colours[a], marker="o", lw=1.2, label=algo_title(a)) for a in algos]
    if drawn["t"]:
        handles.append(Line2D([], [], color="grey", marker="o", lw=1.2, label="mean, 95 % t interval (n ≥ 2)"))
    if drawn["wilson"]:
        handles.append(Line2D([], [], color="grey", marker="o", mfc="white", lw=1.2,
                              label="one seed, eval-set 95 % (Wilson)"))
    handles.append(Line2D([], [], color="grey", marker=".", lw=0, alpha=0.5, label="each seed"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1 - 0.3 / height), fontsize=8,
               ncol=min(len(handles), 4), frameon=False)
    fig.suptitle("eval reward against staleness (completed trails)", fontsize=10, x=0.01, y=1 - 0.08 / height,
                 ha="left", va="top")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.5 / height + 0.05, top=1 - 1.0 / height, wspace=0.25,
                        hspace=0.6)
    fig.savefig(path, dpi=80)
    return path


def _cell_name(key: CellKey) -> str:
    return f"{algo_title(key.algo)} @ stale {key.stale}"


def contrast_label(c: Contrast, show_setting: bool) -> str:
    """A row's name: what is compared, as the table beside names it ('M2PO/paper @ stale 256 − GRPO/clip @ stale 256');
    the metric's panel says on what."""
    if c.kind == "lift":
        what = f"{_cell_name(c.a_key)} − base model"
    elif c.kind == "staleness":
        what = f"{algo_title(c.a_key.algo)}: stale {c.a_key.stale} − stale {c.b_key.stale}"
    else:
        what = f"{_cell_name(c.a_key)} − {_cell_name(c.b_key)}"
    where = " ".join(str(x) for x in c.a_key.where if x)
    return f"{where}: {what}" if show_setting and where else what


def _has_ratio(c: Contrast) -> bool:
    return c.kind in RATIO_KINDS and math.isfinite(c.ratio[0])


def plot_forest(items: List[Contrast], path: Path) -> Optional[Path]:
    """The comparisons as a forest plot: a panel per metric, a row per comparison (report order), the difference
    with its 95 % interval and the zero line; a ratio panel beside the rows compared as ratios, with the Fieller
    interval, the 1× line and the RETENTION mark. None when there is nothing to compare."""
    items = [c for c in items if math.isfinite(c.diff.mean)]
    if not items:
        return None
    metrics = list(dict.fromkeys(c.metric for c in items))
    blocks = [[c for c in items if c.metric == m] for m in metrics]
    show_setting = len({c.a_key.where for c in items}) > 1
    labels = {id(c): f"{contrast_label(c, show_setting)}  ({c.n.removeprefix('n = ')})" for c in items}
    with_ratio = any(_has_ratio(c) for c in items)
    label_in = 0.06 * max(len(t) for t in labels.values()) + 0.3
    width = label_in + 4.6 + (2.6 if with_ratio else 0.0)
    # sizes in inches: a row per comparison, a gap for each panel's title and tick labels
    panels = [len(b) * 0.24 + 0.25 for b in blocks]
    gap, top_in, bottom_in = 0.6, 0.95, 0.3
    height = top_in + sum(panels) + gap * (len(blocks) - 1) + bottom_in
    fig = Figure(figsize=(width, height))
    grid = fig.add_gridspec(len(blocks), 2 if with_ratio else 1, height_ratios=panels,
                            width_ratios=[4.6, 2.6] if with_ratio else [1.0], left=label_in / width,
                            right=1 - 0.2 / width, top=1 - top_in / height, bottom=bottom_in / height,
                            hspace=gap / (sum(panels) / len(panels)), wspace=0.08)
    drawn = {"filled": False, "open": False, "none": False, "mark": False}
    for b, block in enumerate(blocks):
        ax = fig.add_subplot(grid[b, 0])
        ys = np.arange(len(block))[::-1].astype(float)  # report order, top down
        ax.axvline(0.0, color="black", lw=0.8)
        # one errorbar call per colour and marker style (artists are the drawing's cost): (colour, style) -> rows
        styles: Dict[Tuple[str, str], List[Tuple[float, Contrast]]] = {}
        for y, c in zip(ys, block, strict=True):
            style = ("filled" if c.diff.excludes(0.0) else "open") if c.diff.has_interval else "none"
            styles.setdefault((KIND_COLOURS.get(c.kind, "grey"), style), []).append((y, c))
            drawn[style] = True
        for (colour, style), rows in styles.items():
            x = np.array([c.diff.mean for _, c in rows])
            at = np.array([row_y for row_y, _ in rows])
            if style == "none":
                ax.plot(x, at, color=colour, marker="x", ms=6, lw=0)
                continue
            xerr = [x - np.array([c.diff.lo for _, c in rows]), np.array([c.diff.hi for _, c in rows]) - x]
            ax.errorbar(x, at, xerr=xerr, color=colour, marker="o", mfc=colour if style == "filled" else "white",
                        ms=5, capsize=2.5, elinewidth=1.3, lw=0)
        ax.set_yticks(ys, [labels[id(c)] for c in block], fontsize=7)
        ax.set_ylim(-0.7, len(block) - 0.3)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
        ax.set_title(f"{CELL_METRICS.get(block[0].metric, block[0].metric)}: difference a − b, "
                     f"{LEVEL * 100:.0f} % interval", fontsize=8, loc="left", y=1.0, pad=3)
        if not with_ratio:
            continue
        rax = fig.add_subplot(grid[b, 1], sharey=ax)
        rows = [(y, c) for y, c in zip(ys, block, strict=True) if _has_ratio(c)]
        if not rows:
            rax.set_visible(False)
            continue
        rax.axvline(1.0, color="black", lw=0.8)
        for y, c in rows:
            r, lo, hi = c.ratio
            rax.plot([RETENTION, RETENTION], [y - 0.4, y + 0.4], color="C3", ls="--", lw=1.2)
            drawn["mark"] = True
            colour = KIND_COLOURS.get(c.kind, "grey")
            if math.isfinite(lo) and math.isfinite(hi):
                rax.errorbar([r], [y], xerr=[[r - lo], [hi - r]], color=colour, marker="D", ms=4, capsize=2.5,
                             elinewidth=1.3, lw=0)
            else:  # Fieller's interval is unbounded (the denominator's interval contains 0) or there is none
                rax.plot([r], [y], color=colour, marker="D", mfc="white", ms=4, lw=0)
        rax.tick_params(axis="y", left=False, labelleft=False)
        rax.tick_params(axis="x", labelsize=7)
        rax.grid(axis="x", color="0.9", lw=0.6)
        rax.set_axisbelow(True)
        rax.set_title("ratio a / b, Fieller interval", fontsize=8, loc="left", y=1.0, pad=3)
    handles: List[Artist] = [Line2D([], [], color=colour, marker="o", lw=1.2, label=kind)
                             for kind, colour in KIND_COLOURS.items() if any(c.kind == kind for c in items)]
    if drawn["filled"]:
        handles.append(Line2D([], [], color="grey", marker="o", lw=1.2, label="interval excludes 0"))
    if drawn["open"]:
        handles.append(Line2D([], [], color="grey", marker="o", mfc="white", lw=1.2, label="interval contains 0"))
    if drawn["none"]:
        handles.append(Line2D([], [], color="grey", marker="x", lw=0, label="no interval (too few seeds)"))
    if drawn["mark"]:
        handles.append(Line2D([], [], color="C3", ls="--", lw=1.2, label=f"{RETENTION}× mark"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1 - 0.3 / height), fontsize=7,
               ncol=len(handles), frameon=False)
    fig.suptitle("comparisons: a − b per row, completed trails (table beside)", fontsize=10, x=0.01,
                 y=1 - 0.08 / height, ha="left", va="top")
    fig.savefig(path, dpi=80)
    return path


def write_plots(metrics: pd.DataFrame, trails: pd.DataFrame, out: Path,
                items: Optional[List[Contrast]] = None) -> Dict[str, Path]:
    """key -> written PNG: 'summary', every metric in PLOTTED that some trail logged, and 'forest' of `items`."""
    written = {}
    summary = plot_summary(trails, out / SUMMARY_FILE)
    if summary is not None:
        written[SUMMARY] = summary
    forest = plot_forest(items or [], out / FOREST_FILE)
    if forest is not None:
        written[FOREST] = forest
    for metric in PLOTTED:
        path = plot_metric(metrics, trails, metric, out / plot_file(metric))
        if path is not None:
            written[metric] = path
    return written


def captions() -> Dict[str, str]:
    return {SUMMARY: "final and best eval reward against staleness",
            FOREST: "the comparisons: each difference with its 95 % interval, ratios against the 0.95× mark",
            **{m: f"{w} vs step" + (" (log axis)" if m in LOG_AXIS else "") for m, w in PLOTTED.items()}}
