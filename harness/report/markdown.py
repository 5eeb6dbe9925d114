"""REPORT.md: findings, the summary figure, per-cell tables, comparisons, curves and the per-trail table, formatted
from the frames (no number is computed here)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import pandas as pd

from harness.report.contrasts import Contrast
from harness.report.findings import POWER_TEXT, RETENTION, cell_text, num, signed
from harness.report.names import algo_title, group_label
from harness.report.roles import SeedSets
from harness.report.tables import (
    AGGREGATED_STATES,
    BASELINE,
    CELL_METRICS,
    DECOMPOSED,
    LAST_K,
    SEED_ROLE,
    TARGET_SHARE,
    CellKey,
    algo_order,
    baseline_algo,
    cell_sizes,
    seed_cells,
    seed_values,
)
from harness.report.variance import VarianceSplit, variance_split
from harness.store.states import TrailState

DEFINITIONS = f"""\
- Cell: the trails that differ only by seed (same staleness mode, acting axes and algorithm/variant). Names show only
  the axes that act: in `fixed` mode the lag (`stale 256`), in `async` mode and on AReaL every axis
  (`stale 256 d2+d1 rollout 96`).
- A mean is shown as mean ± half-width of its 95 % Student-t interval, then n and every seed's value
  (`0.118 ± 0.263 (n = 3: 0.000, 0.205, 0.148)`), so a collapsed seed is never hidden by a mean. With one seed the
  eval reward gets the Wilson 95 % interval over the eval problems it rests on (`final/eval_size` for the final eval,
  `engine.eval_size` for the intermediate ones): eval-set sampling only; seed-to-seed variance is unknown.
- Comparisons pair seeds (same seed = same problem stream, base model and sampling seed): paired t interval of the
  differences when ≥ 2 seeds pair; Welch's interval when they do not; one seed a side: Newcombe's interval of a
  difference of two proportions over the eval problems (eval-set sampling only); ratios: Fieller's interval. A
  difference is stated only when its interval excludes 0; otherwise the report says it cannot tell, with n.
- final eval reward (the primary metric): `final/reward`, the greedy share of the large final eval set solved at the
  trail's last step (`final/eval_size` distinct eval problems); for a trail that logged none (older journals),
  `eval/reward` at its last eval step, on `engine.eval_size` problems. Sampled: the same at the training temperature
  (`final/reward_sampled`). Mean of the last {LAST_K} evals (the pre-declared secondary metric): the mean of
  `eval/reward` at the trail's last {LAST_K} eval points. Best: the maximum of `eval/reward` (biased upward: a
  maximum). AUC: trapezoid area under the eval points ÷ the step span they cover (a time-averaged eval reward).
  Steps to target: the first eval step with `eval/reward` ≥ the target; "not reached" otherwise.
- Noise of the final eval reward (one-way random-effects decomposition): SD = the SD between a cell's seeds; eval
  set = one trail's binomial sampling SD, √(mean of p̂(1 − p̂)/(n − 1)) over n eval problems; seed = √max(0, SD² −
  eval set²), the seed-to-seed SD. More eval problems can remove at most the eval-set term, more seeds shrink both,
  so a larger eval set buys more precision than doubling the seeds only where the eval-set term is the larger. All
  trails are scored on the same eval problems, so the seed SD is a lower bound.
- Power (paired comparisons, two-sided α = 0.05): "separates ±x" is the smallest mean difference this n of paired
  seeds detects with {POWER_TEXT} power at the observed SD of the differences (noncentral t); "seeds needed" is the
  smallest n whose power to separate the observed difference at that SD reaches {POWER_TEXT}. Both plug in observed
  values: estimates, not guarantees.
- Seeds: a sweep file may declare exploratory and confirmatory seeds (`seeds:`); findings and the tables above the
  "Exploratory seeds" section rest on the confirmatory seeds only; the exploratory ones are reported in that section.
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
    algos = algo_order([k.algo for k in cells])
    groups = sorted({k.group for k in cells})
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
            line = {"mode": group.mode} if show_mode else {}
            line["configuration"] = group_label(group.stale, group.setting)
            filled = False
            for algo in shown:
                frame = cells.get(CellKey(*group, algo))
                if frame is None:
                    line[algo_title(algo)] = ""
                    continue
                if metric == "steps_to_target":
                    if frame["eval_final"].notna().any():
                        line[algo_title(algo)] = _steps_cell(frame[metric].astype(float))
                        filled = True
                    continue
                values = seed_values(cells, CellKey(*group, algo), metric)
                sizes = cell_sizes(frame, metric).dropna().unique()
                line[algo_title(algo)] = cell_text(values, metric, sizes[0] if len(sizes) == 1 else math.nan) \
                    if len(values) else "—"
                if metric in DECOMPOSED and len(values) > 1:
                    line[algo_title(algo)] += noise_text(
                        variance_split(values, cell_sizes(frame, metric).reindex(values.index)))
                filled = filled or bool(len(values))
            if filled:
                rows.append(line)
        if not rows:
            continue
        title = words
        if metric == "steps_to_target":
            title += (f" (target: eval reward ≥ {num(target)} = {TARGET_SHARE}× the mean final eval reward of "
                      f"{algo_title(baseline_algo(algos) or BASELINE)} at its lowest staleness)") \
                if math.isfinite(target) else ""
        parts.append(f"### {title}\n\n{pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)}\n")
    return "\n".join(parts) if parts else "_No completed trail logged any reported metric._\n"


def noise_text(split: VarianceSplit) -> str:
    """'; SD 0.021 = seed 0.018 + eval set 0.011 (in variance)'."""
    return (f"; SD {num(split.observed_sd)}: seed {num(split.seed_sd)}, eval set {num(split.sampling_sd)} of "
            f"{split.eval_size:.0f}")


def variance_markdown(trails: pd.DataFrame) -> str:
    """Per cell, where the final eval reward's spread comes from and what buys precision (variance.py)."""
    cells = seed_cells(trails)
    show_mode = trails["mode"].nunique() > 1
    rows = []
    for key in sorted(cells, key=lambda k: (k.mode, k.setting, k.stale, algo_order([k.algo]))):
        values = seed_values(cells, key, "eval_final")
        split = variance_split(values, cell_sizes(cells[key], "eval_final").reindex(values.index))
        if split.trails < 2:
            continue
        seeds2 = split.mean_variance(2 * split.trails, split.eval_size)
        now = split.mean_variance(split.trails, split.eval_size)
        rows.append({**({"mode": key.mode} if show_mode else {}), "configuration": group_label(key.stale, key.setting),
                     "algorithm": algo_title(key.algo), "seeds": str(split.trails),
                     "eval problems": f"{split.eval_size:.0f}", "SD between seeds": num(split.observed_sd),
                     "eval-set SD": num(split.sampling_sd), "seed SD": num(split.seed_sd),
                     "eval-set share": f"{100 * split.sampling_share:.0f} %" if math.isfinite(split.sampling_share)
                     else "—",
                     "SE of the mean: now / 2× seeds / ∞ eval problems":
                         f"{num(math.sqrt(now))} / {num(math.sqrt(seeds2))} / "
                         f"{num(math.sqrt(split.seed / split.trails))}",
                     "more precision from": split.better_buy})
    if not rows:
        return "_No cell has two seeds: the seed-to-seed variance is unknown._\n"
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n"


def contrast_markdown(items: List[Contrast]) -> str:
    """Every comparison as a row: what against what, difference, interval, method, n, ratio."""
    if not items:
        return "_No pair of cells to compare._\n"
    rows = []
    for c in items:
        if c.kind == "staleness":
            what = f"{algo_title(c.a_key.algo)}: stale {c.a_key.stale} − stale {c.b_key.stale}"
        elif c.kind == "lift":
            what = f"{algo_title(c.a_key.algo)} @ stale {c.a_key.stale} − its base model"
        else:
            what = (f"{algo_title(c.a_key.algo)} @ stale {c.a_key.stale} − {algo_title(c.b_key.algo)} "
                    f"@ stale {c.b_key.stale}")
        where = " ".join(str(x) for x in (c.a_key.mode, c.a_key.setting) if x)
        interval = (f"[{signed(c.diff.lo, c.metric)}, {signed(c.diff.hi, c.metric)}]"
                    if c.diff.has_interval else "—")
        r, lo, hi = c.ratio
        ratio = "" if not math.isfinite(r) or c.kind == "algorithms" else (
            f"{num(r)} [{num(lo)}, {num(hi)}]" if math.isfinite(lo) else
            f"{num(r)} (unbounded)" if math.isinf(lo) else num(r))
        rows.append({"setting": where, "comparison": what, "metric": CELL_METRICS.get(c.metric, c.metric),
                     "difference": signed(c.diff.mean, c.metric), "95 % interval": interval,
                     "excludes 0": "yes" if c.diff.excludes(0.0) else "no", "method": c.method, "n": c.n,
                     f"separates ({POWER_TEXT} power)": f"±{num(c.mde, c.metric)}" if math.isfinite(c.mde) else "—",
                     "seeds needed (est.)": _needed_cell(c),
                     "ratio [95 %]": ratio})
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n"


def _needed_cell(c: Contrast) -> str:
    """Paired seeds that would separate the observed difference with 80 % power; '—' where the interval already
    excludes 0 or the comparison is not paired."""
    if c.diff.excludes(0.0) or not math.isfinite(c.sd):
        return "—"
    return str(c.needed) if c.needed is not None else "none finite"


def trail_markdown(trails: pd.DataFrame) -> str:
    roles = bool((trails[SEED_ROLE].fillna("") != "").any())
    rows = []
    for row in trails.itertuples(index=False):
        plain = not row.reason or (row.state == TrailState.DONE and row.complete)
        status = row.state if plain else f"{row.state}: {row.reason}"
        rows.append({
            "trail": row.display, **({"seeds": getattr(row, SEED_ROLE) or "undeclared"} if roles else {}),
            "status": status, "steps": _cell(row.steps),
            "queued (s)": _cell(row.queue_s, ".1f"), "wall (s)": _cell(row.wall_s, ".1f"),
            "start-up (s)": _cell(row.startup_s, ".1f"),
            "training (s)": _cell(row.train_s, ".1f"),
            "eval final": _cell(row.eval_final), "of": _cell(row.final_eval_size, ".0f"),
            f"last {LAST_K} evals": _cell(row.eval_last3), "eval best": _cell(row.eval_best),
            "AUC": _cell(row.eval_auc),
            "steps to target": "not reached" if pd.isna(row.steps_to_target) and pd.notna(row.eval_final)
            else _cell(row.steps_to_target, ".0f"),
            "grad_norm mean": _cell(row.grad_norm_mean), "grad_norm max": _cell(row.grad_norm_max),
            "grad_norm p95": _cell(row.grad_norm_p95), "masked": _cell(row.masked_frac_mean),
            "clipped": _cell(row.clip_frac_mean), "staleness mean (controlled)": _cell(row.staleness_mean),
            "staleness max": _cell(row.staleness_max),
        })
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n" if rows else "_No trails._\n"


@dataclass
class Exploratory:
    """The exploratory seeds' part of a report whose sweep declared seed roles: reported apart, labelled."""

    trails: pd.DataFrame
    items: List[Contrast]
    findings: List[str]


def exploratory_markdown(part: Exploratory) -> List[str]:
    """The section that keeps exploratory results apart from the findings."""
    return [
        "## Exploratory seeds (not confirmatory)",
        "",
        "These trails ran on seeds the sweep file declares exploratory (or on seeds it does not declare): the regime "
        "and the contrasts may have been chosen on them, so an effect here is biased toward that choice and is no "
        "finding. Shown so that nothing is hidden, and in no number above.",
        "",
        *[f"- {text}" for text in part.findings],
        "",
        "### Per configuration and algorithm (exploratory)",
        "",
        cell_markdown(part.trails),
        "### Comparisons (exploratory)",
        "",
        contrast_markdown(part.items),
    ]


def render(name: str, source: str, trails: pd.DataFrame, items: List[Contrast], findings: List[str],
           plots: Dict[str, str], captions: Dict[str, str], sets: Optional[SeedSets] = None,
           exploratory: Optional[Exploratory] = None, description: str = "",
           systems: Optional[List[str]] = None) -> str:
    """The whole REPORT.md. `trails` is every trail (the trail table); `sets.primary` the trails the findings, cells
    and comparisons rest on (default: all); `exploratory` the part reported apart; `systems` the systems section's
    lines (systems.systems_markdown), where the sweep has one."""
    primary = trails if sets is None else sets.primary
    counts = trails["state"].value_counts()
    states = ", ".join(f"{n} {s}" for s, n in counts.items())
    summary = [f"![{captions[k]}]({plots[k]})\n" for k in plots if k == "summary"]
    forest = [f"![{captions[k]}]({plots[k]})\n" for k in plots if k == "forest"]
    curves = [f"![{captions[k]}]({path})\n" for k, path in plots.items() if k not in ("summary", "forest")]
    which = " on the confirmatory seeds" if sets is not None and sets.declared else ""
    lines = [
        f"# Trail report: {name}",
        "",
        *([f"**The sweep.** {' '.join(description.split())}", ""] if description else []),
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
        f"Mean ± 95 % Student-t half-width (n = seeds: each seed's value){which}; one seed: its value and the "
        "eval-set interval. The final eval reward also shows its SD between seeds split into the seed-to-seed SD and "
        "one trail's eval-set sampling SD (of n eval problems).",
        "",
        cell_markdown(primary),
        "### Noise of the final eval reward: seeds or eval problems",
        "",
        variance_markdown(primary),
        "## Comparisons",
        "",
        *forest,
        contrast_markdown(items),
        *(systems or []),
        *(exploratory_markdown(exploratory) if exploratory is not None else []),
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
