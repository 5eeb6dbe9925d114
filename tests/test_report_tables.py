"""Report tables from hand-written journals, checked against numbers computed by hand (in the comments)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from synthetic_sweeps import engine_config, finish_sweep, write_trail

from harness.report import write_report
from harness.report.contrasts import PAIRED, WELCH, contrasts
from harness.report.load import load_journals
from harness.report.tables import cell_table, trail_table


def axes(stale: int, algo: str, seed: int, alloc: str = "d2+d1", rollout: int = 96) -> dict:
    return {"stale": stale, "alloc": alloc, "rollout": rollout, "algo": algo, "seed": seed}


def flat_trail(final: float, grad: float, steps: int = 4) -> list[dict]:
    """Constant grad_norm; eval/reward on steps 2 and 4, the last equal to `final` (the first 0.1 below)."""
    records = []
    for k in range(1, steps + 1):
        rec = {"step": k, "time": 1000.0 + k, "train/grad_norm": grad, "train/clip_frac": 0.01,
               "staleness/mean": 1.0, "staleness/max": 2.0}
        if k % 2 == 0:
            rec["eval/reward"] = final if k == steps else final - 0.1
        records.append(rec)
    return records


def build(sweep_dir: Path, cells: dict, extra: list | None = None, mode: str = "fixed", eval_size: int = 512,
          first_seed: dict | None = None) -> Path:
    """cells: (stale, algo) -> list of (final eval reward, grad_norm), one per seed (seeds 1, 2, …, or from
    first_seed[(stale, algo)])."""
    dirs = []
    for (stale, algo), seeds in cells.items():
        start = (first_seed or {}).get((stale, algo), 1)
        for seed, (final, grad) in enumerate(seeds, start=start):
            dirs.append(write_trail(sweep_dir, axes(stale, algo, seed), flat_trail(final, grad), ended=1010.0,
                                    config=engine_config(mode, eval_size)))
    dirs += extra or []
    return finish_sweep(sweep_dir, dirs)


def test_trail_table_matches_hand_computed_values(tmp_path: Path) -> None:
    records = [
        {"step": 1, "time": 1000.5, "train/grad_norm": 0.2, "train/clip_frac": 0.01, "m2po/masked_frac": 0.0,
         "staleness/mean": 0.0, "staleness/max": 0.0},
        {"step": 2, "time": 1001.5, "train/grad_norm": 0.4, "train/clip_frac": 0.02, "m2po/masked_frac": 0.1,
         "staleness/mean": 1.0, "staleness/max": 1.0, "eval/reward": 0.5},
        {"step": 3, "time": 1002.5, "train/grad_norm": 0.6, "train/clip_frac": 0.03, "m2po/masked_frac": 0.2,
         "staleness/mean": 1.0, "staleness/max": 1.0},
        {"step": 4, "time": 1003.5, "train/grad_norm": 1.0, "train/clip_frac": 0.04, "m2po/masked_frac": 0.3,
         "staleness/mean": 1.0, "staleness/max": 2.0, "eval/reward": 0.4},
    ]
    run = write_trail(tmp_path / "s", axes(1, "m2po", 1), records, started=1000.0, ended=1010.5)
    row = trail_table(load_journals(finish_sweep(tmp_path / "s", [run]))).iloc[0]
    assert row["eval_final"] == pytest.approx(0.4)        # eval/reward at the last eval step (4)
    assert row["eval_best"] == pytest.approx(0.5)         # max(0.5, 0.4)
    assert row["grad_norm_mean"] == pytest.approx(0.55)   # (0.2 + 0.4 + 0.6 + 1.0) / 4
    assert row["grad_norm_max"] == pytest.approx(1.0)
    assert row["grad_norm_p95"] == pytest.approx(0.94)    # position 0.95·3 = 2.85: 0.6 + 0.85·(1.0 − 0.6)
    assert row["clip_frac_mean"] == pytest.approx(0.025)  # (0.01 + 0.02 + 0.03 + 0.04) / 4
    assert row["masked_frac_mean"] == pytest.approx(0.15)  # (0 + 0.1 + 0.2 + 0.3) / 4
    assert row["staleness_mean"] == pytest.approx(0.75)   # (0 + 1 + 1 + 1) / 4
    assert row["staleness_max"] == pytest.approx(2.0)
    assert row["steps"] == 4
    assert row["wall_s"] == pytest.approx(10.5)           # ended 1010.5 − started 1000.0
    assert row["state"] == "done"


def test_cells_aggregate_seeds_with_student_t_and_keep_every_seed(tmp_path: Path) -> None:
    sweep = build(tmp_path / "s", {
        (256, "grpo"): [(0.60, 0.40), (0.70, 0.42), (0.80, 0.44)],
        (256, "m2po"): [(0.80, 0.30), (0.82, 0.31), (0.84, 0.32)],
    })
    cells = cell_table(trail_table(load_journals(sweep))).set_index(["algo", "metric"])
    grad = cells.loc[("grpo/clip", "grad_norm_mean")]
    # GRPO 0.40, 0.42, 0.44: mean 0.42, s 0.02, t(0.975, 2) = 4.3027 -> half-width 4.3027·0.02/√3 = 0.049683
    assert grad["mean"] == pytest.approx(0.42) and grad["n"] == 3
    assert grad["hi"] - grad["mean"] == pytest.approx(0.049683, abs=1e-5)
    assert grad["values"] == "0.4;0.42;0.44" and grad["seeds"] == "1;2;3"
    assert cells.loc[("m2po/paper", "eval_final"), "eval_size"] == 512


def test_algorithms_are_compared_on_paired_seeds(tmp_path: Path) -> None:
    """Same seeds on both sides: the paired t interval of the per-seed differences, not the two cells' spreads."""
    sweep = build(tmp_path / "s", {
        (256, "grpo"): [(0.60, 0.40), (0.70, 0.42), (0.80, 0.44)],
        (256, "m2po"): [(0.65, 0.30), (0.76, 0.31), (0.84, 0.32)],
    })
    items = {(c.kind, c.metric): c for c in contrasts(trail_table(load_journals(sweep)))}
    ev = items[("algorithms", "eval_final")]
    # differences 0.05, 0.06, 0.04: mean 0.05, s 0.01 -> 0.05 ± 4.3027·0.01/√3 = ± 0.024842
    assert ev.method == PAIRED and ev.pairs == 3
    assert ev.diff.mean == pytest.approx(0.05) and ev.diff.half == pytest.approx(0.024842, abs=1e-5)
    assert ev.diff.excludes(0.0)  # although the cells' own intervals overlap widely


def test_unpaired_seeds_fall_back_to_welch(tmp_path: Path) -> None:
    sweep = build(tmp_path / "s", {
        (256, "grpo"): [(0.60, 0.40), (0.70, 0.42), (0.80, 0.44)],
        (256, "m2po"): [(0.80, 0.30), (0.82, 0.31), (0.84, 0.32)],
    }, first_seed={(256, "m2po"): 4})
    grad = {(c.kind, c.metric): c for c in contrasts(trail_table(load_journals(sweep)))}[("algorithms",
                                                                                          "grad_norm_mean")]
    # M2PO − GRPO = −0.11; Welch se = √(0.02²/3 + 0.01²/3) = 0.012910, dof 2.941, t = 3.2187 -> 0.041554
    assert grad.method == WELCH and grad.diff.mean == pytest.approx(-0.11)
    assert grad.diff.half == pytest.approx(0.041554, abs=1e-5)


def test_fixed_mode_names_show_only_the_lag_and_async_names_every_axis(tmp_path: Path) -> None:
    fixed = trail_table(load_journals(build(tmp_path / "f", {(256, "m2po-areal"): [(0.5, 0.3)]})))
    assert fixed.loc[0, "display"] == "stale 256 m2po/areal seed 1" and fixed.loc[0, "setting"] == ""
    asyn = trail_table(load_journals(build(tmp_path / "a", {(256, "grpo"): [(0.5, 0.3)]}, mode="async")))
    assert asyn.loc[0, "display"] == "stale 256 d2+d1 rollout 96 grpo/clip seed 1"
    areal = trail_table(load_journals(build(tmp_path / "r", {(64, "m2po"): [(0.5, 0.3)]}, mode="areal")))
    assert areal.loc[0, "display"] == "stale 64 d2+d1 rollout 96 m2po/paper seed 1"
    assert math.isnan(areal.loc[0, "eval_size"])  # AReaL's eval set size is not in the harness config


def test_wall_time_split_into_start_up_and_training(tmp_path: Path) -> None:
    records = [{"step": k, "time": 1030.0 + 2.0 * k, "perf/sec_per_step": 2.0, "train/grad_norm": 0.5}
               for k in range(1, 6)]
    run = write_trail(tmp_path / "s", axes(1, "grpo", 1), records, started=1000.0, ended=1041.0)
    row = trail_table(load_journals(finish_sweep(tmp_path / "s", [run]))).iloc[0]
    assert row["wall_s"] == pytest.approx(41.0)     # ended − started
    assert row["startup_s"] == pytest.approx(30.0)  # first record 1032 − its step's 2 s − started 1000
    assert row["train_s"] == pytest.approx(10.0)    # last record 1040 − training start 1030


def test_failed_and_diverged_trails_are_shown_with_reason_and_not_averaged(tmp_path: Path) -> None:
    bad = flat_trail(0.1, 0.5)
    bad[2]["train/grad_norm"] = float("nan")
    bad[3]["train/grad_norm"] = float("inf")
    diverged = write_trail(tmp_path / "s", axes(256, "grpo", 3), bad, state="diverged",
                           reason="grad_norm is not finite at step 3", config=engine_config("fixed"))
    failed = write_trail(tmp_path / "s", axes(256, "m2po", 3), flat_trail(0.9, 0.3)[:1], state="failed",
                         reason="RuntimeError: out of memory")
    sweep = build(tmp_path / "s", {(256, "grpo"): [(0.6, 0.4), (0.7, 0.4)], (256, "m2po"): [(0.8, 0.3), (0.8, 0.3)]},
                  extra=[diverged, failed])
    trails = trail_table(load_journals(sweep)).set_index("trail")
    row = trails.loc["stale 256 grpo seed 3"]
    assert row["display"] == "stale 256 grpo/clip seed 3"
    assert row["state"] == "diverged" and row["reason"] == "grad_norm is not finite at step 3"
    assert row["grad_norm_mean"] == pytest.approx(0.5)  # only the two finite steps (0.5, 0.5) are summarised
    assert trails.loc["stale 256 d2+d1 rollout 96 m2po seed 3", "state"] == "failed"
    cells = cell_table(trails.reset_index()).set_index(["algo", "metric"])
    assert cells.loc[("grpo/clip", "eval_final"), "n"] == 2 and cells.loc[("m2po/paper", "eval_final"), "n"] == 2
    assert cells.loc[("grpo/clip", "eval_final"), "mean"] == pytest.approx(0.65)  # the diverged 0.1 is not in it
    report = write_report(sweep).read_text()
    assert "diverged: grad_norm is not finite at step 3" in report
    assert "failed: RuntimeError: out of memory" in report
    assert "2 of 6 trails are excluded from every aggregate" in report


def test_report_files_and_other_variants_are_kept(tmp_path: Path) -> None:
    sweep = build(tmp_path / "s", {
        (1, "grpo"): [(0.80, 0.40), (0.82, 0.41)], (1, "m2po"): [(0.81, 0.30), (0.83, 0.31)],
        (1, "m2po-areal"): [(0.79, 0.33)], (1, "is"): [(0.5, 0.9)],
    })
    path = write_report(sweep, out=tmp_path / "out")
    out = path.parent
    assert path == tmp_path / "out" / "REPORT.md"
    for name in ("trails.csv", "cells.csv", "contrasts.csv", "eval_reward.png", "train_grad_norm.png",
                 "summary_eval_vs_staleness.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "eval_reward.png").read_bytes()[:4] == b"\x89PNG"
    cells = pd.read_csv(out / "cells.csv")
    assert set(cells["algo"]) == {"grpo/clip", "m2po/paper", "m2po/areal", "is/plain"}
    trails = pd.read_csv(out / "trails.csv")
    assert len(trails) == 6 and set(trails["algo"]) == {"grpo/clip", "m2po/paper", "m2po/areal", "is/plain"}
    text = path.read_text()
    assert "| M2PO/areal" in text and "| IS/plain" in text
    assert "![eval reward vs step](eval_reward.png)" in text
    assert "![grad_norm vs step (log axis)](train_grad_norm.png)" in text
    assert "![final and best eval reward against staleness](summary_eval_vs_staleness.png)" in text


def test_trails_sharing_a_name_stay_apart_and_are_flagged(tmp_path: Path) -> None:
    """Two trails with the same axes (say, two M2PO thresholds) are kept apart by id and called out."""
    from harness.report.findings import findings

    a = write_trail(tmp_path / "s", axes(1, "m2po", 1), flat_trail(0.8, 0.3), dirname="tau-0.04")
    b = write_trail(tmp_path / "s", axes(1, "m2po", 1), flat_trail(0.6, 0.5), dirname="tau-0.02")
    table = trail_table(load_journals(finish_sweep(tmp_path / "s", [a, b])))
    assert table["trail"].nunique() == 1 and table["id"].nunique() == 2
    assert sorted(table["grad_norm_mean"]) == pytest.approx([0.3, 0.5])  # not merged into one curve
    caution = findings(table)[0]
    assert caution.startswith("Caution: 1 (configuration, algorithm, seed) cells hold more than one trail")
    assert "stale 1 d2+d1 rollout 96 M2PO/paper seed 1: 2 trails" in caution  # no config: every axis shown


def _figures(monkeypatch) -> list:
    """Capture every Figure the report saves (its artists can then be inspected)."""
    from matplotlib.figure import Figure

    saved: list = []
    real = Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def test_plots_log_grad_norm_legends_only_what_is_drawn_and_titles_with_acting_axes(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    saved = _figures(monkeypatch)
    # one seed per cell and nothing excluded: no min–max band and no dotted line may appear in any legend
    sweep = build(tmp_path / "s", {(1, "grpo"): [(0.5, 0.4)], (256, "grpo"): [(0.3, 0.9)],
                                   (256, "m2po"): [(0.5, 0.3)], (1, "m2po"): [(0.5, 0.3)]})
    write_report(sweep)
    summary, _forest, ev, grad = saved
    legend = lambda fig: [t.get_text() for t in fig.legends[0].get_texts()]  # noqa: E731
    assert legend(ev) == ["GRPO/clip", "M2PO/paper"]
    assert legend(grad)[:2] == ["GRPO/clip", "M2PO/paper"] and "min–max over seeds" not in legend(grad)
    assert grad.axes[0].get_yscale() == "log" and ev.axes[0].get_yscale() == "linear"
    assert "one seed, eval-set 95 % (Wilson)" in legend(summary)
    assert "mean, 95 % t interval (n ≥ 2)" not in legend(summary)
    titles = [ax.get_title() for ax in ev.axes if ax.get_visible()]
    assert titles[0].startswith("stale 1\n") and not any("rollout" in t for t in titles)  # fixed mode: the lag only
    assert [t.get_text() for t in summary.axes[0].get_xticklabels()] == ["1", "256"]


def test_learning_speed_per_trail_and_per_cell(tmp_path: Path) -> None:
    """Target = 0.9 × GRPO/clip's mean final eval reward at its lowest staleness; flat_trail evals at steps 2 and 4
    (final − 0.1, then final)."""
    sweep = build(tmp_path / "s", {(1, "grpo"): [(0.80, 0.4), (0.80, 0.4)], (256, "m2po"): [(0.80, 0.3), (0.70, 0.3)]})
    path = write_report(sweep)
    table = trail_table(load_journals(sweep)).set_index("display")
    assert table["target"].iloc[0] == pytest.approx(0.72)                      # 0.9 × 0.80
    assert table.loc["stale 1 grpo/clip seed 1", "steps_to_target"] == 4       # step 2: 0.70 < 0.72; step 4: 0.80
    assert math.isnan(table.loc["stale 256 m2po/paper seed 2", "steps_to_target"])  # 0.60, 0.70: not reached
    assert table.loc["stale 1 grpo/clip seed 1", "eval_auc"] == pytest.approx(0.75)  # (0.70 + 0.80) / 2
    text = path.read_text()
    assert "target: eval reward ≥ 0.720 = 0.9× the mean final eval reward of GRPO/clip at its lowest staleness" in text
    assert "1/2 reached (4, not reached)" in text


def test_a_finished_trail_whose_journal_lost_lines_is_flagged_and_not_averaged(tmp_path: Path) -> None:
    torn = write_trail(tmp_path / "s", axes(256, "grpo", 3), flat_trail(0.1, 0.4), ended=1010.0,
                       config=engine_config("fixed"))
    sweep = build(tmp_path / "s", {(256, "grpo"): [(0.6, 0.4), (0.7, 0.4)]}, extra=[torn])
    lines = (torn / "journal.jsonl").read_bytes().splitlines(keepends=True)
    (torn / "journal.jsonl").write_bytes(b"".join(lines[:2] + lines[3:]))   # step 3 of 4 lost
    trails = trail_table(load_journals(sweep)).set_index("trail")
    row = trails.loc["stale 256 grpo seed 3"]
    assert row["state"] == "done" and not row["complete"]  # a TrailState; completeness is a column of its own
    assert row["reason"] == "its journal lacks step 3 of 4; a rerun repairs it"
    cells = cell_table(trails.reset_index()).set_index(["algo", "metric"])
    assert cells.loc[("grpo/clip", "eval_final"), "n"] == 2
    assert cells.loc[("grpo/clip", "eval_final"), "mean"] == pytest.approx(0.65)  # the torn trail's 0.1 is not in it
    report = write_report(sweep).read_text()
    assert "done: its journal lacks step 3 of 4; a rerun repairs it" in report  # the trail table
    assert "— done at step 4: its journal lacks step 3 of 4; a rerun repairs it" in report  # the exclusions
    assert "1 of 3 trails are excluded from every aggregate" in report


def test_queue_time_is_from_submission_to_start_and_unknown_when_resumed(tmp_path: Path) -> None:
    import json

    records = flat_trail(0.5, 0.3)
    waited = write_trail(tmp_path / "s", axes(1, "grpo", 1), records, started=1000.0, ended=1010.0)
    resumed = write_trail(tmp_path / "s", axes(1, "grpo", 2), records, started=1000.0, ended=1010.0)
    for run_dir, submitted in ((waited, 992.5), (resumed, 1003.0)):  # resumed: submitted again after it started
        status = json.loads((run_dir / "status.json").read_text())
        (run_dir / "status.json").write_text(json.dumps(status | {"submitted": submitted}))
    table = trail_table(load_journals(finish_sweep(tmp_path / "s", [waited, resumed]))).set_index("seed")
    assert table.loc[1, "queue_s"] == pytest.approx(7.5)
    assert pd.isna(table.loc[2, "queue_s"])
