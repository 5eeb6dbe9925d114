"""Findings: plain sentences written from the comparisons, each with its interval, method and n.

The rules: a difference is stated as a difference only when its interval excludes 0 (a paired t interval when seeds
pair); otherwise the sentence says "cannot tell … with n = …", never "no difference" or "no degradation". With one
seed a side, an eval-reward interval covers the sampling of the eval problems only and the sentence says that seed
variance is unknown. Every mean is shown with its per-seed values. Realised staleness, the controlled axis, is never
compared. Trails that diverged, failed or did not finish are named with their reason and left out of every number.
Every paired comparison carries its power (power.py): the smallest difference its n separates with 80 % power, and,
for a "cannot tell", about how many paired seeds would separate the observed difference at the observed SD (an
estimate). One sentence says where the final eval reward's noise comes from: the eval set or the seeds
(variance.py).
"""

from __future__ import annotations

import math
from typing import Iterable, List

import pandas as pd

from harness.report.contrasts import EVAL_SET, PAIRED, Contrast, contrasts
from harness.report.names import algo_title, group_label
from harness.report.power import MAX_SEEDS, POWER
from harness.report.stats import estimate, wilson_interval
from harness.report.tables import (
    AGGREGATED_STATES,
    EVAL_FRACTIONS,
    CellKey,
    SeedCells,
    algo_order,
    cell_sizes,
    counted,
    seed_cells,
    seed_values,
)
from harness.report.variance import SEEDS, variance_split

RETENTION = 0.95  # the paper's mark: M2PO at stale s should keep this share of on-policy GRPO's eval reward
PERCENT = ("masked_frac_mean", "clip_frac_mean")
POWER_TEXT = f"{100 * POWER:.0f} %"

# (kind, metric) -> words; only these comparisons become sentences (the rest are in the tables)
SENTENCES = {
    ("lift", "eval_final"): "final eval reward",
    ("algorithms", "eval_final"): "final eval reward",
    ("algorithms", "eval_last3"): "mean of the last 3 evals (secondary metric)",
    ("algorithms", "grad_norm_mean"): "mean grad_norm",
    ("staleness", "eval_final"): "final eval reward",
    ("staleness", "eval_last3"): "mean of the last 3 evals (secondary metric)",
    ("paper", "eval_final"): "final eval reward",
}


def num(x: float, metric: str = "") -> str:
    """A value as the report prints it: token fractions in %, steps as integers, the rest with 3 decimals."""
    if x is None or not math.isfinite(x):
        return "nan"
    if metric in PERCENT:
        return f"{100 * x:.3g} %"
    if metric == "steps_to_target":
        return f"{x:.0f}"
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.4g}"


def signed(x: float, metric: str = "") -> str:
    text = num(x, metric)
    return text if text.startswith("-") or text == "nan" else f"+{text}"


def seeds_text(values: Iterable[float], metric: str = "") -> str:
    """'0.000, 0.205, 0.148'; a seed that never reached the target reads 'not reached'."""
    return ", ".join("not reached" if metric == "steps_to_target" and not math.isfinite(v) else num(v, metric)
                     for v in values)


def cell_text(values: pd.Series, metric: str, eval_size: float = math.nan) -> str:
    """'0.118 ± 0.263 (n = 3: 0.000, 0.205, 0.148)'; one seed: '0.316 (n = 1; eval-set 95 % 0.276–0.358 of 512)'."""
    est = estimate(values)
    if est.n == 0:
        return "no data"
    if est.n == 1:
        text = f"{num(est.mean, metric)} (n = 1"
        if metric in EVAL_FRACTIONS and math.isfinite(eval_size):
            lo, hi = wilson_interval(est.mean, int(eval_size))
            text += f"; eval-set 95 % {num(lo)}–{num(hi)} of {eval_size:.0f} problems"
        return text + ")"
    half = est.half if est.half > 1e-12 * max(1.0, abs(est.mean)) else 0.0  # float dust of identical seeds
    return f"{num(est.mean, metric)} ± {num(half, metric)} (n = {est.n}: {seeds_text(values, metric)})"


def _interval(c: Contrast) -> str:
    if not c.diff.has_interval:
        return "no interval"
    kind = {PAIRED: "paired 95 % interval", EVAL_SET: "eval-set 95 % interval"}.get(c.method, "Welch 95 % interval")
    sizes = sorted({f"{x:.0f}" for x in (c.eval_size, c.eval_size_b)})
    over = f" over {' and '.join(sizes)} eval problems" if c.method == EVAL_SET else ""
    return f"{kind} [{signed(c.diff.lo, c.metric)}, {signed(c.diff.hi, c.metric)}]{over}"


def _sides(c: Contrast, a_name: str, b_name: str) -> str:
    b_metric = "eval_base" if c.kind == "lift" else c.metric
    return (f"{a_name} {cell_text(c.a, c.metric, c.eval_size)} vs {b_name} "
            f"{cell_text(c.b, b_metric, c.eval_size_b)}")


def _mde(c: Contrast) -> str:
    """', 80 % power to separate ±0.041' for a paired comparison."""
    if c.method != PAIRED or not math.isfinite(c.mde):
        return ""
    return f", {POWER_TEXT} power to separate ±{num(c.mde, c.metric)}"


def _needed(c: Contrast) -> str:
    """For a 'cannot tell': how many paired seeds would separate the observed difference (an estimate)."""
    if c.method != PAIRED or not math.isfinite(c.sd):
        return ""
    if c.needed is None:
        if c.diff.mean == 0:
            return "; a difference of exactly 0 is separated by no number of seeds"
        return f"; more than {MAX_SEEDS:,} paired seeds would be needed to separate it"
    return (f"; about {c.needed} paired seeds would separate {signed(c.diff.mean, c.metric)} with {POWER_TEXT} "
            f"power at the observed SD of the differences, {num(c.sd, c.metric)} (an estimate)")


def _one_seed_caveat(c: Contrast) -> str:
    return "; seed-to-seed variance is unknown with one seed a side, so this holds for this seed, not yet for the " \
           "algorithms" if c.method == EVAL_SET else ""


def _place(key: CellKey, show_mode: bool) -> str:
    return (f"{key.mode}, " if show_mode else "") + group_label(key.stale, key.setting)


def _identical(c: Contrast) -> bool:
    """Paired seeds with exactly equal values: the same trails in effect (e.g. two losses that coincide on-policy)."""
    if c.method != PAIRED:
        return False
    common = [s for s in c.a.index if s in c.b.index]
    return bool(common) and bool((c.a.loc[common].to_numpy(float) == c.b.loc[common].to_numpy(float)).all())


def difference_sentence(c: Contrast, words: str, show_mode: bool) -> str:
    """One comparison in words; a difference is claimed only when its interval excludes 0."""
    if c.kind == "lift":
        a_name, b_name = algo_title(c.a_key.algo), "the base model"
        head = _place(c.a_key, show_mode)
    elif c.kind == "staleness":
        a_name, b_name = f"stale {c.a_key.stale}", f"stale {c.b_key.stale}"
        head = f"{(c.a_key.mode + ', ') if show_mode else ''}{algo_title(c.a_key.algo)}"
        head += f" ({c.a_key.setting})" if c.a_key.setting else ""
    else:
        a_name, b_name = algo_title(c.a_key.algo), algo_title(c.b_key.algo)
        head = _place(c.a_key, show_mode)
    if _identical(c):
        return (f"{head}: {a_name}'s {words} equals {b_name}'s in each of the {c.pairs} paired seeds "
                f"({cell_text(c.a, c.metric, c.eval_size)}): the two gave the same updates here, so there is nothing "
                f"to compare.")
    numbers = f"{_interval(c)}, {c.n}{_mde(c)}; {_sides(c, a_name, b_name)}"
    diff = signed(c.diff.mean, c.metric)
    size = num(abs(c.diff.mean), c.metric)
    if c.diff.excludes(0.0):
        up = c.diff.mean > 0
        if c.kind == "lift":
            return (f"{head}: RL {'lifts' if up else 'lowers'} {a_name}'s {words} {'above' if up else 'below'} "
                    f"{b_name}'s by {size} ({numbers}){_one_seed_caveat(c)}.")
        if c.kind == "staleness":
            verdict = "improves" if up else "degrades"
            return (f"{head}: {words} at {a_name} is {'above' if up else 'below'} its {b_name} value by {size} "
                    f"({numbers}): it {verdict} with staleness{_one_seed_caveat(c)}.")
        return (f"{head}: {a_name}'s {words} is {'above' if up else 'below'} {b_name}'s by {size} "
                f"({numbers}){_one_seed_caveat(c)}.")
    if c.diff.has_interval:
        why = f"{_interval(c)} includes 0{_mde(c)}{_needed(c)}"
    else:
        why = "no interval" + ("; seed variance is unknown" if max(len(c.a), len(c.b)) < 2 else "")
    if c.kind == "staleness":
        return (f"{head}: cannot tell whether {words} changes from {b_name} to {a_name} with {c.n}: "
                f"difference {diff}, {why} ({_sides(c, a_name, b_name)}).")
    return (f"{head}: cannot tell {a_name}'s {words} from {b_name}'s with {c.n}: difference {diff}, "
            f"{why} ({_sides(c, a_name, b_name)}).")


def paper_sentence(c: Contrast, show_mode: bool) -> str:
    """M2PO at stale s against on-policy GRPO as a ratio, tested against the RETENTION mark."""
    a_name = f"{algo_title(c.a_key.algo)} at stale {c.a_key.stale}"
    b_name = f"{algo_title(c.b_key.algo)} at stale {c.b_key.stale}"
    where = (f"{c.a_key.mode}, " if show_mode else "") + (f"{c.a_key.setting}: " if c.a_key.setting else "")
    r, lo, hi = c.ratio
    sides = _sides(c, a_name, b_name)
    if math.isfinite(lo) or math.isinf(lo):
        bounds = f"Fieller 95 % interval [{num(lo)}, {num(hi)}]" if math.isfinite(lo) else "unbounded interval"
        detail = f"ratio {num(r)}, {bounds}, {c.n}; {sides}"
        if math.isfinite(lo) and lo >= RETENTION:
            return f"{where}{a_name} reaches ≥ {RETENTION}× the final eval reward of {b_name} ({detail})."
        if math.isfinite(hi) and hi < RETENTION:
            return f"{where}{a_name} falls short of {RETENTION}× the final eval reward of {b_name} ({detail})."
        return (f"{where}cannot tell whether {a_name} reaches {RETENTION}× the final eval reward of {b_name} "
                f"with {c.n}: the interval contains {RETENTION} ({detail}).")
    return (f"{where}cannot tell whether {a_name} reaches {RETENTION}× the final eval reward of {b_name} with "
            f"{c.n}: ratio {num(r)} and no interval for a ratio of single seeds; seed variance is unknown "
            f"({sides}).")


def token_fraction_sentences(cells: SeedCells, show_mode: bool) -> List[str]:
    """Each M2PO reading's masked-token fraction and each other algorithm's clipped-token fraction, per staleness."""
    out = []
    for column, what, family in (("masked_frac_mean", "masked", "m2po"), ("clip_frac_mean", "clipped", None)):
        for key in sorted({(k.mode, k.setting, k.algo) for k in cells},
                          key=lambda m_s_a: (m_s_a[0], m_s_a[1], algo_order([m_s_a[2]]))):
            mode, setting, algo = key
            if (family and not algo.startswith(family)) or (not family and algo.startswith("m2po")):
                continue
            parts = []
            for stale in sorted(k.stale for k in cells if (k.mode, k.setting, k.algo) == key):
                values = seed_values(cells, CellKey(mode, setting, stale, algo), column)
                if len(values):
                    parts.append(f"{cell_text(values, column)} at stale {stale}")
            if parts:
                where = (f"{mode}, " if show_mode else "") + (f"{setting}: " if setting else "")
                out.append(f"{where}{algo_title(algo)}'s {what}-token fraction (mean over steps): "
                           + "; ".join(parts) + ".")
    return out


def noise_sentence(cells: SeedCells) -> List[str]:
    """Where the final eval reward's spread comes from, over the cells with ≥ 2 seeds: the eval-set sampling SD
    against the seed-to-seed SD, and which of more seeds or more eval problems buys more precision."""
    splits = []
    for key, frame in cells.items():
        values = seed_values(cells, key, "eval_final")
        split = variance_split(values, cell_sizes(frame, "eval_final").reindex(values.index))
        if split.trails >= 2 and split.observed > 0:
            splits.append(split)
    if not splits:
        return []
    sizes = sorted({f"{s.eval_size:.0f}" for s in splits})
    seeds_win = sum(s.better_buy == SEEDS for s in splits)
    share = [100 * s.sampling_share for s in splits]
    verdict = ("more seeds buy more precision than more eval problems" if seeds_win == len(splits) else
               "more eval problems buy more precision than more seeds" if seeds_win == 0 else
               f"more seeds buy more precision in {seeds_win} of them, more eval problems in the other "
               f"{len(splits) - seeds_win}")
    return [f"Eval set or seeds (final eval, {len(splits)} cells with ≥ 2 seeds): one trail's eval-set sampling "
            f"SD is {_span([s.sampling_sd for s in splits])} (binomial, {' / '.join(sizes)} eval problems) against "
            f"a seed-to-seed SD of {_span([s.seed_sd for s in splits])}, so the eval set makes "
            f"{min(share):.0f}–{max(share):.0f} % of a trail's variance and {verdict} (per cell in the variance table; "
            "the seed SD is a lower bound, as every trail is scored on the same problems)."]


def _span(values: List[float]) -> str:
    lo, hi = min(values), max(values)
    return num(lo) if num(lo) == num(hi) else f"{num(lo)}–{num(hi)}"


def excluded_trails(trails: pd.DataFrame) -> List[str]:
    """Every trail left out of the aggregates, with its state, last step and reason."""
    lines = []
    for row in trails[~counted(trails)].itertuples(index=False):
        step = "" if pd.isna(row.steps) else f" at step {row.steps}"
        reason = f": {row.reason}" if row.reason else ""
        lines.append(f"`{row.display}` — {row.state}{step}{reason}")
    return lines


def mixed_cells(trails: pd.DataFrame) -> List[str]:
    """A caveat when one (cell, seed) holds several trails: they differ in something that is not an acting axis,
    so treating them as seeds would mix configurations (or repeat one)."""
    sizes = trails.groupby(["mode", "setting", "stale", "algo", "seed"], dropna=False).size()
    sizes = sizes[sizes > 1]
    if sizes.empty:
        return []
    cells = "; ".join(f"{group_label(s, g)} {algo_title(a)} seed {seed}: {n} trails"
                      for (_m, g, s, a, seed), n in sizes.items())
    return [f"Caution: {len(sizes)} (configuration, algorithm, seed) cells hold more than one trail ({cells}). "
            "Those trails differ in something other than the acting axes, and the aggregates below treat them as "
            "seeds."]


def one_seed_note(cells: SeedCells) -> List[str]:
    """Say once that one-seed cells carry no seed variance, and what interval they get instead."""
    single = [k for k, f in cells.items() if f["seed"].nunique() == 1]
    if not single:
        return []
    return [f"{len(single)} of {len(cells)} cells have one seed: for them the seed-to-seed variance is unknown; "
            "an eval reward then carries only the eval-set sampling interval (Wilson, over the eval problems it "
            "rests on: final/eval_size for the final eval, engine.eval_size for the others), which says how "
            "precisely that one trail was measured, not how another "
            "seed would come out."]


def findings(trails: pd.DataFrame, items: List[Contrast] | None = None) -> List[str]:
    """All findings, in report order: caveats, algorithm comparisons, staleness, the paper's ratio, token
    fractions, exclusions."""
    cells = seed_cells(trails)
    items = contrasts(trails) if items is None else items
    show_mode = trails["mode"].nunique() > 1
    out: List[str] = mixed_cells(trails) + one_seed_note(cells)
    for c in items:
        words = SENTENCES.get((c.kind, c.metric))
        if words is None:
            continue
        out.append(paper_sentence(c, show_mode) if c.kind == "paper" else difference_sentence(c, words, show_mode))
    out += noise_sentence(cells)
    out += token_fraction_sentences(cells, show_mode)
    excluded = excluded_trails(trails)
    if excluded:
        out.append(f"{len(excluded)} of {len(trails)} trails are excluded from every aggregate above "
                   f"(only {', '.join(AGGREGATED_STATES)} trails count): " + "; ".join(excluded) + ".")
    if not cells:
        out.append("No trail has finished, so no comparison can be made yet.")
    return out


__all__ = ["RETENTION", "cell_text", "findings", "num", "signed"]
