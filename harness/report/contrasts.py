"""Comparisons of two cells, with the interval that fits how many seeds they share.

Seeds are paired across algorithms and staleness values (same seed = same problem stream, base model and sampling
seed), so two cells are compared on the seeds they share: a paired difference with a Student-t interval when at
least two seeds pair; Welch's interval when they do not but each side has two seeds; with one seed a side, for an
eval reward, Newcombe's interval over the eval problems (eval-set sampling only: seed variance is unknown); else no
interval at all. Four kinds of comparison are made:
- `lift`: the GRPO baseline at its lowest staleness against the base model it started from (final eval reward −
  the base model's, paired by trail): how much RL learns at all, the headroom every other comparison lives in;
- `algorithms`: each algorithm against its GRPO baseline at the same staleness and acting setting
  (`m2po/areal` against `grpo/decoupled` when present — the AReaL pair —, every other one against `grpo/clip`);
- `staleness`: each algorithm at stale s against itself at its lowest staleness (degradation);
- `paper`: each M2PO reading at stale s against the GRPO baseline at the lowest staleness, as a ratio (the
  paper's comparison), with Fieller's interval.
The final eval reward is the primary metric; the mean of the last three evals is the pre-declared secondary one.
A paired comparison also carries its power (power.py): the smallest difference its n separates with 80 % power at
the observed SD of the differences, and the paired seeds that would separate the observed difference (an estimate);
and, for an eval reward, the eval-set sampling SD of one difference (variance.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd

from harness.report.power import min_detectable_effect, seeds_needed
from harness.report.stats import (
    Estimate,
    estimate,
    fieller_ratio,
    newcombe_difference,
    paired_difference,
    welch_difference,
)
from harness.report.tables import (
    BASELINE,
    EVAL_FRACTIONS,
    GROUP,
    CellKey,
    SeedCells,
    algo_order,
    seed_cells,
    seed_values,
    size_column,
)
from harness.report.variance import difference_sampling_variance

ALGO_METRICS = ("eval_final", "eval_last3", "eval_best", "eval_auc", "grad_norm_mean")
STALENESS_METRICS = ("eval_final", "eval_last3", "eval_auc")
PAPER_METRICS = ("eval_final",)
PAIRED, WELCH, EVAL_SET, NONE = "paired t", "Welch t", "eval-set (Newcombe)", "none"


@dataclass
class Contrast:
    """a − b (and a / b for `paper`) between two cells, on one metric, with the method the seeds allowed."""

    kind: str
    metric: str
    a_key: CellKey
    b_key: CellKey
    a: pd.Series
    b: pd.Series
    method: str
    diff: Estimate
    pairs: int = 0
    unpaired: int = 0
    eval_size: float = math.nan              # eval problems behind a's values (an eval reward), nan if unknown
    ratio: Tuple[float, float, float] = field(default=(math.nan, math.nan, math.nan))
    eval_size_b: float = math.nan            # … and behind b's
    sd: float = math.nan                     # SD of the paired differences
    mde: float = math.nan                    # smallest difference this n separates with 80 % power (paired)
    needed: Optional[int] = None             # paired seeds that would separate the observed difference (estimate)
    sampling_sd: float = math.nan            # eval-set sampling SD of one paired difference (upper bound)

    @property
    def differences(self) -> pd.Series:
        """seed -> a − b over the seeds both cells have (finite values only): what power.separation_probability
        takes to plan a run."""
        common = [s for s in self.a.index if s in self.b.index]
        return (self.a.loc[common].astype(float) - self.b.loc[common].astype(float)).dropna()

    @property
    def n(self) -> str:
        """'n = 5 paired seeds' / 'n = 3 and 2 seeds' / 'n = 1 seed a side'."""
        if self.method == PAIRED:
            extra = f", {self.unpaired} unpaired left out" if self.unpaired else ""
            return f"n = {self.pairs} paired seeds{extra}"
        if len(self.a) == len(self.b):
            return f"n = {len(self.a)} seed{'s' if len(self.a) != 1 else ''} a side"
        return f"n = {len(self.a)} and {len(self.b)} seeds"


def compare(kind: str, metric: str, a_key: CellKey, b_key: CellKey, a: pd.Series, b: pd.Series,
            eval_size: float = math.nan, with_ratio: bool = False, eval_size_b: Optional[float] = None,
            b_metric: Optional[str] = None) -> Contrast:
    """Pick the method from the seeds the two cells share and compute the difference (and ratio). `eval_size_b`
    (default: `eval_size`) and `b_metric` (default: `metric`) describe the b side where it differs (the lift
    compares the final eval with the base model's)."""
    size_b = eval_size if eval_size_b is None else eval_size_b
    common = [s for s in a.index if s in b.index]
    if len(common) >= 2:
        x, y = a.loc[common].to_numpy(float), b.loc[common].to_numpy(float)
        diff = paired_difference(x, y)
        ratio = fieller_ratio(x, y, paired=True) if with_ratio else (math.nan,) * 3
        sd = float((x - y).std(ddof=1))
        fractions = metric in EVAL_FRACTIONS and (b_metric or metric) in EVAL_FRACTIONS
        sampling = difference_sampling_variance(x, y, eval_size, size_b) if fractions else math.nan
        return Contrast(kind, metric, a_key, b_key, a, b, PAIRED, diff, len(common),
                        len(a) + len(b) - 2 * len(common), eval_size, ratio, size_b, sd,
                        min_detectable_effect(sd, len(common)), seeds_needed(diff.mean, sd),
                        math.sqrt(sampling) if math.isfinite(sampling) else math.nan)
    if len(a) >= 2 and len(b) >= 2:
        ratio = fieller_ratio(a.to_numpy(float), b.to_numpy(float), paired=False) if with_ratio else (math.nan,) * 3
        return Contrast(kind, metric, a_key, b_key, a, b, WELCH, welch_difference(a, b), 0, 0, eval_size, ratio,
                        size_b)
    ma, mb = estimate(a).mean, estimate(b).mean
    ratio = (ma / mb if mb else math.nan, math.nan, math.nan)
    if len(a) == 1 and len(b) == 1 and metric in EVAL_FRACTIONS and math.isfinite(eval_size) \
            and math.isfinite(size_b):
        diff = newcombe_difference(ma, int(eval_size), mb, int(size_b))
        return Contrast(kind, metric, a_key, b_key, a, b, EVAL_SET, diff, 0, 0, eval_size, ratio, size_b)
    return Contrast(kind, metric, a_key, b_key, a, b, NONE, Estimate(ma - mb, math.nan, math.nan, 0), 0, 0,
                    eval_size, ratio, size_b)


def baseline_for(algo: str, present: Sequence[str]) -> Optional[str]:
    """The GRPO reading an algorithm is compared with; None for the GRPO readings themselves."""
    if algo.startswith("grpo"):
        return None
    if algo == "m2po/areal" and "grpo/decoupled" in present:
        return "grpo/decoupled"
    if BASELINE in present:
        return BASELINE
    grpo = [a for a in algo_order(list(present)) if a.startswith("grpo")]
    return grpo[0] if grpo else None


def _eval_size(cells: SeedCells, metric: str, *keys: CellKey) -> float:
    """The number of eval problems `metric` rests on, shared by the cells' trails (nan when unknown or when they
    differ)."""
    sizes = set()
    for key in keys:
        sizes |= set(cells[key][size_column(metric)].dropna())
    return sizes.pop() if len(sizes) == 1 else math.nan


def contrasts(trails: pd.DataFrame) -> List[Contrast]:
    """Every comparison the report makes, in report order: lift, algorithms, staleness, paper."""
    cells: SeedCells = seed_cells(trails)
    out: List[Contrast] = []
    settings = sorted({k.where for k in cells})
    for mode, setting in settings:
        keys = [k for k in cells if k.where == (mode, setting)]
        stales = sorted({k.stale for k in keys})
        base_stales = sorted(k.stale for k in keys if k.algo == BASELINE)
        if base_stales:
            key = CellKey(mode, setting, base_stales[0], BASELINE)
            a, b = seed_values(cells, key, "eval_final"), seed_values(cells, key, "eval_base")
            if len(a) and len(b):
                out.append(compare("lift", "eval_final", key, key, a, b, _eval_size(cells, "eval_final", key),
                                   eval_size_b=_eval_size(cells, "eval_base", key), b_metric="eval_base"))
        for stale in stales:
            present = [k.algo for k in keys if k.stale == stale]
            for algo in algo_order(present):
                base = baseline_for(algo, present)
                if base is None:
                    continue
                a_key, b_key = CellKey(mode, setting, stale, algo), CellKey(mode, setting, stale, base)
                for metric in ALGO_METRICS:
                    a, b = seed_values(cells, a_key, metric), seed_values(cells, b_key, metric)
                    if len(a) and len(b):
                        out.append(compare("algorithms", metric, a_key, b_key, a, b,
                                           _eval_size(cells, metric, a_key, b_key)))
        for algo in algo_order([k.algo for k in keys]):
            mine = sorted(k.stale for k in keys if k.algo == algo)
            for stale in mine[1:]:
                a_key, b_key = CellKey(mode, setting, stale, algo), CellKey(mode, setting, mine[0], algo)
                for metric in STALENESS_METRICS:
                    a, b = seed_values(cells, a_key, metric), seed_values(cells, b_key, metric)
                    if len(a) and len(b):
                        out.append(compare("staleness", metric, a_key, b_key, a, b,
                                           _eval_size(cells, metric, a_key, b_key), with_ratio=True))
        for algo in algo_order([k.algo for k in keys if k.algo.startswith("m2po")]):
            base = baseline_for(algo, [k.algo for k in keys])
            base_stales = sorted(k.stale for k in keys if k.algo == base)
            if base is None or not base_stales:
                continue
            b_key = CellKey(mode, setting, base_stales[0], base)
            for stale in sorted(k.stale for k in keys if k.algo == algo and k.stale > base_stales[0]):
                a_key = CellKey(mode, setting, stale, algo)
                for metric in PAPER_METRICS:
                    a, b = seed_values(cells, a_key, metric), seed_values(cells, b_key, metric)
                    if len(a) and len(b):
                        out.append(compare("paper", metric, a_key, b_key, a, b,
                                           _eval_size(cells, metric, a_key, b_key), with_ratio=True))
    return out


def contrast_frame(items: List[Contrast]) -> pd.DataFrame:
    """The comparisons as a numeric table (contrasts.csv)."""
    rows: List[Dict[str, object]] = []
    for c in items:
        rows.append({
            "kind": c.kind, "metric": c.metric,
            **{f"a_{k}": v for k, v in zip(GROUP + ["algo"], c.a_key, strict=True)},
            **{f"b_{k}": v for k, v in zip(GROUP + ["algo"], c.b_key, strict=True)},
            "method": c.method, "pairs": c.pairs, "n_a": len(c.a), "n_b": len(c.b),
            "a_mean": estimate(c.a).mean, "b_mean": estimate(c.b).mean,
            "diff": c.diff.mean, "diff_lo": c.diff.lo, "diff_hi": c.diff.hi,
            "ratio": c.ratio[0], "ratio_lo": c.ratio[1], "ratio_hi": c.ratio[2],
            "excludes_0": c.diff.excludes(0.0),
            "sd_diff": c.sd, "sampling_sd_diff": c.sampling_sd, "mde_80": c.mde,
            "seeds_needed_est": c.needed if c.needed is not None else math.nan,
        })
    return pd.DataFrame(rows)
