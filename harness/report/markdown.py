"""REPORT.md: the findings, the comparison tables, the plots and the per-trail table, formatted from the frames."""

from __future__ import annotations

import math
import time
from typing import Dict, List

import pandas as pd

from harness.report.findings import display, fmt, num
from harness.report.stats import Estimate
from harness.report.tables import AGGREGATED_STATES, BASELINE, CANDIDATE, COMPARED, algo_order
from harness.report.plots import PLOTTED

DEFINITIONS = """\
- final eval reward: `eval/reward` (greedy accuracy on the held-out set) at the trail's last eval step;
  best: its maximum over the trail.
- grad_norm: pre-clip `train/grad_norm`, mean / max / p95 over steps (p95 by linear interpolation); non-finite
  values are left out of these summaries (the status column says when a trail diverged).
- masked / clipped: mean over steps of `m2po/masked_frac` (M2PO's masked-token fraction) and `train/clip_frac`
  (PPO clipped-token fraction). Staleness: mean of `staleness/mean`, max of `staleness/max`.
- steps: last step logged; wall: ended − started from the trail's status (else the journal's time span).
- seeds: mean ± half-width of the 95 % Student-t interval, n seeds. M2PO − GRPO: difference of means ± Welch 95 %
  half-width. A difference is called "within noise" when the two 95 % intervals overlap or either side has n < 2.
"""


def _cell(x: object, digits: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or x is pd.NA:
        return "—"
    if isinstance(x, float):
        return format(x, digits)
    return str(x)


def _estimate(row: pd.Series, algo: str) -> Estimate:
    return Estimate(float(row[f"{algo}_mean"]), float(row[f"{algo}_ci95"]), int(row[f"{algo}_n"]))


def _diff_cell(row: pd.Series) -> str:
    mean, half = row.get("diff_mean", math.nan), row.get("diff_ci95", math.nan)
    if not math.isfinite(mean):
        return "—"
    text = f"{mean:+.3g} ± {num(half)}" if math.isfinite(half) else f"{mean:+.3g} (n < 2)"
    return text + (" (within noise)" if row.get("within_noise") is True else "")


def comparison_markdown(comparison: pd.DataFrame) -> str:
    """One table per compared metric: configuration rows, one column per algorithm, then M2PO − GRPO."""
    if comparison.empty:
        return "_No trails._\n"
    algos = algo_order([c[: -len("_mean")] for c in comparison.columns if c.endswith("_mean") and c != "diff_mean"])
    has_pair = BASELINE in algos and CANDIDATE in algos
    parts: List[str] = []
    for metric, words in COMPARED.items():
        rows = comparison[comparison["metric"] == metric]
        if all(int(rows[f"{a}_n"].sum()) == 0 for a in algos):
            continue
        table: List[Dict[str, str]] = []
        for _, row in rows.iterrows():
            line = {"stale": str(row["stale"]), "dx+dy": str(row["alloc"]), "rollout": str(row["rollout"])}
            ordered = [a for a in algos if a in (BASELINE, CANDIDATE)]
            for algo in ordered:
                line[display(algo)] = fmt(_estimate(row, algo))
            if has_pair:
                line[f"{display(CANDIDATE)} − {display(BASELINE)}"] = _diff_cell(row)
            for algo in algos:
                if algo not in ordered:
                    line[display(algo)] = fmt(_estimate(row, algo))
            table.append(line)
        parts.append(f"### {words}\n\n{pd.DataFrame(table).to_markdown(index=False)}\n")
    return "\n".join(parts) if parts else "_No completed trail logged any compared metric._\n"


def trail_markdown(trails: pd.DataFrame) -> str:
    rows = []
    for row in trails.itertuples(index=False):
        status = row.state if not row.reason or row.state == "done" else f"{row.state}: {row.reason}"
        rows.append({
            "trail": row.trail, "status": status, "steps": _cell(row.steps), "wall (s)": _cell(row.wall_s, ".1f"),
            "eval final": _cell(row.eval_final), "eval best": _cell(row.eval_best),
            "grad_norm mean": _cell(row.grad_norm_mean), "grad_norm max": _cell(row.grad_norm_max),
            "grad_norm p95": _cell(row.grad_norm_p95), "masked": _cell(row.masked_frac_mean),
            "clipped": _cell(row.clip_frac_mean), "staleness mean": _cell(row.staleness_mean),
            "staleness max": _cell(row.staleness_max),
        })
    return pd.DataFrame(rows).to_markdown(index=False) + "\n" if rows else "_No trails._\n"


def render(name: str, source: str, trails: pd.DataFrame, comparison: pd.DataFrame, findings: List[str],
           plots: Dict[str, str]) -> str:
    counts = trails["state"].value_counts()
    states = ", ".join(f"{n} {s}" for s, n in counts.items())
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
        "## Comparison by configuration",
        "",
        "Seeds aggregated as mean ± 95 % interval (Student t), n = seeds.",
        "",
        comparison_markdown(comparison),
        "## Curves",
        "",
        *[f"![{PLOTTED.get(metric, metric)} vs step]({path})\n" for metric, path in plots.items()],
        "" if plots else "_No trail logged eval reward or grad_norm yet._\n",
        "## Trails",
        "",
        trail_markdown(trails),
        "## Definitions",
        "",
        DEFINITIONS,
        "Tables as CSV: [trails.csv](trails.csv), [comparison.csv](comparison.csv).",
        "",
    ]
    return "\n".join(lines)
