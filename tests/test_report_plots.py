"""The report's pictures read off their artists: eval curves start at step 0 from the base model, and the forest plot
draws each comparison's difference and interval where contrasts.py puts them, against the zero line, with the
0.95× mark beside the ratios it applies to. A step-0 record is the base model's eval and counts in no trail summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic_sweeps import engine_config, finish_sweep, write_trail
from test_report_tables import _figures, axes, build, flat_trail

from harness.report import write_report
from harness.report.contrasts import contrasts
from harness.report.findings import RETENTION
from harness.report.load import load_journals
from harness.report.plots import FOREST_FILE, contrast_label
from harness.report.tables import trail_table

# GRPO on-policy and at lag 256, M2PO at lag 256, three paired seeds: every kind of comparison
CELLS = {(1, "grpo"): [(0.80, 0.4), (0.81, 0.4), (0.82, 0.4)],
         (256, "grpo"): [(0.60, 0.5), (0.62, 0.5), (0.64, 0.5)],
         (256, "m2po"): [(0.80, 0.3), (0.805, 0.3), (0.81, 0.3)]}


def with_step0(records: list[dict], base: float) -> list[dict]:
    """The records the embedded engine writes: step 0 holds the base model's eval under both names."""
    return [{"step": 0, "time": 999.0, "eval/reward": base, "eval/reward_sampled": base, "base/reward": base,
             "base/reward_sampled": base}, *records]


def test_step_0_is_the_base_models_eval_and_counts_in_no_trail_summary(tmp_path: Path) -> None:
    # a base model better than every eval of its trail: were step 0 counted, best, AUC and steps to target would move
    records = [{"step": k, "time": 1030.0 + 2.0 * k, "perf/sec_per_step": 2.0, "train/grad_norm": 0.5,
                **({"eval/reward": 0.1 * k} if k % 2 == 0 else {})} for k in range(1, 5)]
    run = write_trail(tmp_path / "s", axes(1, "grpo", 1), with_step0(records, 0.9), started=1000.0, ended=1041.0,
                      config=engine_config())
    row = trail_table(load_journals(finish_sweep(tmp_path / "s", [run])), target=0.3).iloc[0]
    assert row["eval_base"] == pytest.approx(0.9)
    assert row["eval_final"] == pytest.approx(0.4) and row["eval_best"] == pytest.approx(0.4)
    assert row["eval_auc"] == pytest.approx(0.3)          # (0.2 + 0.4) / 2 over steps 2..4, not from step 0
    assert row["steps_to_target"] == pytest.approx(4.0)   # 0.4 at step 4 is the first ≥ 0.3; step 0 is no result
    assert row["startup_s"] == pytest.approx(30.0)         # step 1's record 1032 − its 2 s − started 1000
    assert row["steps"] == 4


@pytest.mark.parametrize("old_journal", [False, True])
def test_eval_curves_start_at_step_0_from_the_base_model(tmp_path: Path, monkeypatch, old_journal: bool) -> None:
    saved = _figures(monkeypatch)
    dirs = []
    for seed, base in enumerate((0.05, 0.15), start=1):
        records = flat_trail(0.5, 0.4)
        if old_journal:  # journals written before step 0: the base model's eval rode on step 1 as base/reward
            records[0]["base/reward"] = base
        else:
            records = with_step0(records, base)
        dirs.append(write_trail(tmp_path / "s", axes(1, "grpo", seed), records, ended=1010.0,
                                config=engine_config()))
    write_report(finish_sweep(tmp_path / "s", dirs))
    ev = saved[-2]  # summary, forest (the lift over the base model), eval reward, grad_norm
    assert ev._suptitle.get_text().endswith("; step 0: the base model)")
    mean = ev.axes[0].get_lines()[0]
    assert list(mean.get_xdata()) == [0, 2, 4]
    assert mean.get_ydata()[0] == pytest.approx(0.10)      # the mean of the two base models' evals
    assert ev.axes[0].get_xlim()[0] == 0


def test_the_forest_plot_draws_every_comparison_against_zero_and_the_ratio_mark(tmp_path: Path,
                                                                                monkeypatch) -> None:
    saved = _figures(monkeypatch)
    sweep = build(tmp_path / "s", CELLS)
    report = write_report(sweep).read_text()
    items = contrasts(trail_table(load_journals(sweep)))
    forest = saved[1]
    panels = [ax for ax in forest.axes if ax.get_visible()]
    diff_panels = [ax for ax in panels if "difference a − b" in ax.get_title(loc="left")]
    ratio_panels = [ax for ax in panels if ax.get_title(loc="left").startswith("ratio a / b")]
    metrics = list(dict.fromkeys(c.metric for c in items))
    assert len(diff_panels) == len(metrics) and len(ratio_panels) == 1
    rows = 0
    for ax, metric in zip(diff_panels, metrics, strict=True):
        mine = [c for c in items if c.metric == metric]
        labels = {float(y): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}
        assert len(labels) == len(mine)  # one row per comparison, in report order, top down
        assert any(list(line.get_xdata()) == [0, 0] for line in ax.get_lines())  # the zero line
        for i, c in enumerate(mine):
            y = float(len(mine) - 1 - i)
            assert labels[y] == f"{contrast_label(c, False)}  ({c.n.removeprefix('n = ')})"
            points = [x for line in ax.get_lines() if line.get_marker() == "o"
                      for x, at in zip(line.get_xdata(), line.get_ydata(), strict=True) if at == y]
            assert points == [pytest.approx(c.diff.mean)]
            bars = [seg for coll in ax.collections for seg in coll.get_segments()
                    if np.allclose(seg[:, 1], y) and np.ptp(seg[:, 0]) > 0]
            assert len(bars) == 1 and sorted(bars[0][:, 0]) == pytest.approx([c.diff.lo, c.diff.hi])
            rows += 1
    assert rows == len(items)
    (ratio,) = ratio_panels
    paper = [c for c in items if c.kind == "paper"]
    marks = [line for line in ratio.get_lines() if list(line.get_xdata()) == [RETENTION, RETENTION]]
    assert len(paper) == len(marks) == 1  # the 0.95× mark beside the paper's ratio, and nowhere else
    ratio_bars = [seg for coll in ratio.collections for seg in coll.get_segments() if np.ptp(seg[:, 0]) > 0]
    assert [sorted(seg[:, 0]) for seg in ratio_bars] == [pytest.approx(sorted(paper[0].ratio[1:]))]
    # REPORT.md: the figure opens the comparisons, beside their table
    comparisons = report.split("## Comparisons")[1].split("## Curves")[0]
    assert comparisons.lstrip().startswith("![the comparisons") and f"]({FOREST_FILE})" in comparisons
    assert comparisons.index(FOREST_FILE) < comparisons.index("| setting")
    assert (sweep / "report" / FOREST_FILE).stat().st_size > 10_000


def test_no_comparison_no_forest_plot(tmp_path: Path) -> None:
    sweep = build(tmp_path / "s", {(1, "grpo"): [(0.8, 0.4)]})
    report = write_report(sweep).read_text()
    assert FOREST_FILE not in report and not (sweep / "report" / FOREST_FILE).exists()
