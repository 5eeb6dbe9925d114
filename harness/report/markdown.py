"""REPORT.md: findings, the summary figure, per-cell tables, comparisons, curves and the per-trail table, formatted
from the frames (no number is computed here)."""

from __future__ import annotations

import math
import time
from typing import Dict, List

import pandas as pd

from harness.report.contrasts import Contrast
from harness.report.findings import RETENTION, cell_text, num, signed
from harness.report.names import algo_title, group_label
from harness.report.tables import (
    AGGREGATED_STATES,
    BASELINE,
    CELL_METRICS,
    TARGET_SHARE,
    algo_order,
    seed_cells,
    seed_values,
)
from harness.states import TrailState

DEFINITIONS = f"""\
- Cell: the trails that differ only by seed (same staleness mode, acting axes and algorithm/variant). Names show only
  the axes that act: in `fixed` mode the lag (`stale 256`), in `async` mode and on AReaL every axis
  (`stale 256 d2+d1 rollout 96`).
- A mean is shown as mean ± half-width of its 95 % Student-t interval, then n and every seed's value
  (`0.118 ± 0.263 (n = 3: 0.000, 0.205, 0.148)`), so a collapsed seed is never hidden by a mean. With one seed the
  eval reward gets the Wilson 95 % interval over the trail's `engine.eval_size` eval problems: eval-set sampling only;
  seed-to-seed variance is unknown.
- Comparisons pair seeds (same seed = same problem stream, base model and sampling seed): paired t interval of the
  differences when ≥ 2 seeds pair; Welch's interval when they do not; one seed a side: Newcombe's interval of a
  difference of two proportions over the eval problems (eval-set sampling only); ratios: Fieller's interval. A
  difference is stated only when its interval excludes 0; otherwise the report says it cannot tell, with n.
- final eval reward: `eval/reward` (greedy, fraction of the eval problems solved) at the trail's last eval step; best:
  its maximum. AUC: trapezoid area under the eval points ÷ the step span they cover (a time-averaged eval reward).
  Steps to target: the first eval step with `eval/reward` ≥ the target; "not reached" otherwise.
- grad_norm: pre-clip `train/grad_norm`, mean / max / p95 over steps; non-finite steps left out. masked / clipped:
  mean over steps of `m2po/masked_frac` and `train/clip_frac`. Realised staleness (`staleness/mean` mean,
  `staleness/max` max) is the controlled axis: shown per trail, never compared between algorithms.
- Paper comparison: each M2PO reading at stale s ÷ the GRPO baseline at the lowest staleness, against {RETENTION}×.
- queued: from the sweep handing the trail to the backend to its start (waiting for a slot or the scheduler; a sweep
  builds the base model before it hands any trail over, so that time is in none of these columns); wall: ended −
  started from the trail's status; start-up: from start to the first step (base-model load, or its build and lock
  wait where no sweep built it first); training: first step to last. A resumed trail's queue and start-up are
  unknown (—) and its training spans every attempt.
"""


def _cell(x: object, digits: str = ".3g") -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, float):
        return format(x, digits)
    return str(x)


def _steps_cell(values: pd.Series) -> str:
    reached = values[values.notna()]
    text = f"{len(reached)}/{len(values)} reached"
    if len(values) == 1:
        return "not reached" if reached.empty else f"{values.iloc[0]:.0f}"
    return text + " (" + ", ".join("not reached" if pd.isna(v) else f"{v:.0f}" for v in values) + ")"


def cell_markdown(trails: pd.DataFrame) -> str:
    """One table per metric: a row per configuration, a column per algorithm, each cell mean ± interval + seeds."""
    cells = seed_cells(trails)
    if not cells:
        return "_No completed trails._\n"
    show_mode = trails["mode"].nunique() > 1
    algos = algo_order([k[3] for k in cells])
    groups = sorted({k[:3] for k in cells})
    target = float(trails["target"].iloc[0]) if len(trails) else math.nan
    parts: List[str] = []
    for metric, words in CELL_METRICS.items():
        if metric == "masked_frac_mean":
            shown = [a for a in algos if a.startswith("m2po")]
        elif metric == "clip_frac_mean":
            shown = [a for a in algos if not a.startswith("m2po")]
        else:
            shown = algos
        rows: List[Dict[str, str]] = []
        for group in groups:
            line = {"mode": group[0]} if show_mode else {}
            line["configuration"] = group_label(group[2], group[1])
            filled = False
            for algo in shown:
                frame = cells.get((*group, algo))
                if frame is None:
                    line[algo_title(algo)] = ""
                    continue
                if metric == "steps_to_target":
                    if frame["eval_final"].notna().any():
                        line[algo_title(algo)] = _steps_cell(frame[metric].astype(float))
                        filled = True
                    continue
                values = seed_values(cells, (*group, algo), metric)
                sizes = frame["eval_size"].dropna().unique()
                line[algo_title(algo)] = cell_text(values, metric, sizes[0] if len(sizes) == 1 else math.nan) \
                    if len(values) else "—"
                filled = filled or bool(len(values))
            if filled:
                rows.append(line)
        if not rows:
            continue
        title = words
        if metric == "steps_to_target":
            title += (f" (target: eval reward ≥ {num(target)} = {TARGET_SHARE}× the mean final eval reward of "
                      f"{algo_title(BASELINE)} at its lowest staleness)") if math.isfinite(target) else ""
        parts.append(f"### {title}\n\n{pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)}\n")
    return "\n".join(parts) if parts else "_No completed trail logged any reported metric._\n"


def contrast_markdown(items: List[Contrast]) -> str:
    """Every comparison as a row: what against what, difference, interval, method, n, ratio."""
    if not items:
        return "_No pair of cells to compare._\n"
    rows = []
    for c in items:
        if c.kind == "staleness":
            what = f"{algo_title(c.a_key[3])}: stale {c.a_key[2]} − stale {c.b_key[2]}"
        elif c.kind == "lift":
            what = f"{algo_title(c.a_key[3])} @ stale {c.a_key[2]} − its base model"
        else:
            what = (f"{algo_title(c.a_key[3])} @ stale {c.a_key[2]} − {algo_title(c.b_key[3])} "
                    f"@ stale {c.b_key[2]}")
        where = " ".join(str(x) for x in (c.a_key[0], c.a_key[1]) if x)
        interval = (f"[{signed(c.diff.lo, c.metric)}, {signed(c.diff.hi, c.metric)}]"
                    if c.diff.has_interval else "—")
        r, lo, hi = c.ratio
        ratio = "" if not math.isfinite(r) or c.kind == "algorithms" else (
            f"{num(r)} [{num(lo)}, {num(hi)}]" if math.isfinite(lo) else
            f"{num(r)} (unbounded)" if math.isinf(lo) else num(r))
        rows.append({"setting": where, "comparison": what, "metric": CELL_METRICS.get(c.metric, c.metric),
                     "difference": signed(c.diff.mean, c.metric), "95 % interval": interval,
                     "excludes 0": "yes" if c.diff.excludes(0.0) else "no", "method": c.method, "n": c.n,
                     "ratio [95 %]": ratio})
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n"


def trail_markdown(trails: pd.DataFrame) -> str:
    rows = []
    for row in trails.itertuples(index=False):
        plain = not row.reason or (row.state == TrailState.DONE and row.complete)
        status = row.state if plain else f"{row.state}: {row.reason}"
        rows.append({
            "trail": row.display, "status": status, "steps": _cell(row.steps),
            "queued (s)": _cell(row.queue_s, ".1f"), "wall (s)": _cell(row.wall_s, ".1f"),
            "start-up (s)": _cell(row.startup_s, ".1f"),
            "training (s)": _cell(row.train_s, ".1f"),
            "eval final": _cell(row.eval_final), "eval best": _cell(row.eval_best), "AUC": _cell(row.eval_auc),
            "steps to target": "not reached" if pd.isna(row.steps_to_target) and pd.notna(row.eval_final)
            else _cell(row.steps_to_target, ".0f"),
            "grad_norm mean": _cell(row.grad_norm_mean), "grad_norm max": _cell(row.grad_norm_max),
            "grad_norm p95": _cell(row.grad_norm_p95), "masked": _cell(row.masked_frac_mean),
            "clipped": _cell(row.clip_frac_mean), "staleness mean (controlled)": _cell(row.staleness_mean),
            "staleness max": _cell(row.staleness_max),
        })
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n" if rows else "_No trails._\n"


def render(name: str, source: str, trails: pd.DataFrame, items: List[Contrast], findings: List[str],
           plots: Dict[str, str], captions: Dict[str, str]) -> str:
    """The whole REPORT.md."""
    counts = trails["state"].value_counts()
    states = ", ".join(f"{n} {s}" for s, n in counts.items())
    summary = [f"![{captions[k]}]({plots[k]})\n" for k in plots if k == "summary"]
    curves = [f"![{captions[k]}]({path})\n" for k, path in plots.items() if k != "summary"]
    lines = [
        f"# Trail report: {name}",
        "",
        f"{len(trails)} trails{f' ({states})' if states else ''}. Source: {source}. "
        f"Written {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        f"Aggregates use {', '.join(AGGREGATED_STATES)} trails only; the others appear in the trail table with "
        "their reason.",
        "",
        "## Findings",
        "",
        *[f"- {text}" for text in findings],
        "",
        "## Eval reward against staleness",
        "",
        *(summary or ["_No completed trail logged an eval reward yet._\n"]),
        "## Per configuration and algorithm",
        "",
        "Mean ± 95 % Student-t half-width (n = seeds: each seed's value); one seed: its value and the eval-set "
        "interval.",
        "",
        cell_markdown(trails),
        "## Comparisons",
        "",
        contrast_markdown(items),
        "## Curves",
        "",
        *curves,
        "" if curves else "_No trail logged eval reward or grad_norm yet._\n",
        "## Trails",
        "",
        trail_markdown(trails),
        "## Definitions",
        "",
        DEFINITIONS,
        "Tables as CSV: [trails.csv](trails.csv), [cells.csv](cells.csv), [contrasts.csv](contrasts.csv).",
        "",
    ]
    return "\n".join(lines)
