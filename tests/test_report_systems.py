"""The report's systems section (harness/report/systems.py, systems_plots.py): simulated time per trail, time to
target, reward at a time budget, the synchronous reference, the comparisons and the figures, on sweeps written
from known curves."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from synthetic_sweeps import engine_config, finish_sweep, write_trail
from tiny_trail import tiny_trail

from harness.report import build_report, write_report
from harness.report.load import load_journals
from harness.report.systems import reference_cell, reward_at, systems_part, time_table, time_to_target
from harness.report.systems_plots import on_time_axis
from harness.report.tables import seed_cells, trail_table

STEPS, EVAL_EVERY = 20, 5
# setting -> simulated seconds a step; the reference runs stale 0 at both splits
STEP_S = {("d2+d2", 8): 2.0, ("d3+d1", 32): 0.5}
SEEDS = (1, 2, 3)


def curve(step: int, speed: float) -> float:
    """Eval reward after `step` steps: rises linearly to 0.6 at step 10·speed, then flat."""
    return min(0.6, 0.06 * step / speed)


def trail_records(step_s: float, seed: int, speed: float, idle=lambda step: 0.5):
    """A trail's journal: the clock at every step, an eval every EVAL_EVERY steps, the final eval at the end."""
    records = [{"step": 0, "time": 1000.0, "eval/reward": 0.0, "base/reward": 0.0}]
    for step in range(1, STEPS + 1):
        jitter = 1.0 + 0.01 * seed
        record = {"step": step, "time": 1000.0 + step, "sim/time_s": step * step_s * jitter,
                  "sim/step_s": step_s * jitter, "sim/samples_per_s": 64.0 / (step_s * jitter),
                  "sim/trainer_idle_frac": idle(step), "sim/rollout_busy_frac": 1.0, "sim/rollout_util": 0.5,
                  "sim/groups_in_flight": 8.0, "staleness/mean": 1.0, "staleness/max": 2.0, "staleness/p95": 2.0,
                  "perf/sec_per_step": 0.01}
        if step % EVAL_EVERY == 0:
            record["eval/reward"] = curve(step, speed) + 0.001 * seed
        if step == STEPS:
            record.update({"final/reward": curve(step, speed) + 0.001 * seed, "final/eval_size": 1024.0})
        records.append(record)
    return records


def systems_sweep(root: Path, settings=STEP_S, mode: str = "async") -> Path:
    sweep = root / "sys"
    dirs = []
    for (alloc, rollout), step_s in settings.items():
        for stale, algo, speed in ((0, "grpo/decoupled", 1.0), (256, "grpo/decoupled", 1.0),
                                   (256, "m2po/areal", 1.5)):
            for seed in SEEDS:
                axes = {"stale": stale, "alloc": alloc, "rollout": rollout, "algo": algo.replace("/", "-"),
                        "seed": seed}
                dirs.append(write_trail(sweep, axes, trail_records(step_s, seed, speed),
                                        config=engine_config(mode, 256, algo)))
    return finish_sweep(sweep, dirs)


def test_time_to_target_and_reward_at_budget_read_the_eval_points() -> None:
    points = pd.DataFrame({"step": [0, 5, 10, 15], "sim/time_s": [0.0, 10.0, 20.0, 30.0],
                           "eval/reward": [0.7, 0.2, 0.5, 0.6]})
    assert time_to_target(points, 0.5) == 20.0           # step 0 (the base model) never counts as reached
    assert math.isnan(time_to_target(points, 0.9))
    assert reward_at(points, 25.0) == 0.5                 # the last eval at or before the budget
    assert reward_at(points, 5.0) == 0.7                  # before any trained eval: the base model's
    assert reward_at(points, 30.0) == 0.6


def test_time_table_per_trail(tmp_path) -> None:
    sweep = systems_sweep(tmp_path)
    table = time_table(trail_table(load_journals(sweep)), load_journals(sweep).metrics)
    row = table[(table["setting"] == "d2+d2 rollout 8") & (table["stale"] == 256) & (table["algo"] == "grpo/decoupled")
                & (table["seed"] == 1)].iloc[0]
    jitter = 1.01
    assert row["sim_time_s"] == pytest.approx(STEPS * 2.0 * jitter)
    assert row["samples_per_s"] == pytest.approx(64.0 / (2.0 * jitter))
    # target 0.9 × the on-policy GRPO reward (0.6 + 0.002 mean): first reached at step 10 (0.6 there)
    assert row["target"] == pytest.approx(0.9 * 0.602)
    assert row["time_to_target_s"] == pytest.approx(10 * 2.0 * jitter)
    # budget: the fastest trail's finish (d3+d1, seed 1: 20 × 0.5 × 1.01 s); this trail's eval of step 5 is at
    # 5 × 2 × 1.01 s, the same time, and counts
    assert row["budget_s"] == pytest.approx(STEPS * 0.5 * 1.01)
    assert row["reward_at_budget"] == pytest.approx(curve(5, 1.0) + 0.001)
    assert row["staleness_p95"] == 2.0 and row["rollout_util"] == 0.5


def test_shares_of_time_weight_each_step_by_its_simulated_duration(tmp_path) -> None:
    sweep = tmp_path / "w"
    records = trail_records(1.0, 1, 1.0, idle=lambda step: 1.0 if step == 1 else 0.0)
    records[1]["sim/step_s"] = 19.0                       # the first step waits 19 s, the other 19 take 1 s each
    run = write_trail(sweep, {"stale": 1, "alloc": "d2+d2", "rollout": 8, "algo": "grpo-decoupled", "seed": 1},
                      records, config=engine_config("async", 256, "grpo/decoupled"))
    data = load_journals(finish_sweep(sweep, [run]))
    table = time_table(trail_table(data), data.metrics)
    # the first step waited all of its 19 s, the other 19 steps (1.01 s each) none: not 1/20, the mean over steps
    assert table["trainer_idle_frac"].iloc[0] == pytest.approx(19.0 / (19.0 + 19 * 1.01))


def test_the_reference_is_on_policy_grpo_at_its_fastest_setting(tmp_path) -> None:
    data = load_journals(systems_sweep(tmp_path))
    cells = seed_cells(time_table(trail_table(data), data.metrics))
    assert reference_cell(cells) == ("async", "d3+d1 rollout 32", 0, "grpo/decoupled")


def test_the_report_answers_the_systems_questions_with_paired_intervals(tmp_path) -> None:
    sweep = systems_sweep(tmp_path)
    report = write_report(sweep)
    out = report.parent
    for name in ("frontier.png", "eval_reward_vs_time.png", "systems_cells.csv", "systems_contrasts.csv",
                 "systems_trails.csv"):
        assert (out / name).stat().st_size > 0, name
    text = report.read_text(encoding="utf-8")
    assert "## Systems: simulated time, throughput and the frontier" in text
    assert "![frontier" in text and "![eval reward vs simulated time](eval_reward_vs_time.png)" in text
    fastest = next(line for line in text.splitlines() if line.startswith("- Highest throughput: "))
    assert "d3+d1 rollout 32, 125.5" in fastest  # 64 / (0.5 × 1.01…1.03) samples per simulated s
    assert "against the fastest other setting, GRPO/decoupled at stale 0 d2+d2 rollout 8 (31.375" in fastest
    # M2PO here learns 1.5× slower per step than GRPO: at the fast split it still reaches the target sooner than
    # on-policy GRPO at the slow split would, but not sooner than on-policy GRPO at the same split (the reference)
    assert "Sooner than on-policy GRPO? M2PO/areal at its fastest cell to target: M2PO/areal at stale 256 d3+d1 " \
           "rollout 32 is slower than GRPO/decoupled at stale 0 d3+d1 rollout 32" in text
    contrasts = pd.read_csv(out / "systems_contrasts.csv")
    slow = contrasts[(contrasts["a_setting"] == "d2+d2 rollout 8") & (contrasts["a_stale"] == 0)
                     & (contrasts["metric"] == "samples_per_s")].iloc[0]
    assert slow["method"] == "paired t" and slow["pairs"] == 3
    assert slow["ratio"] == pytest.approx(0.25, rel=0.01) and slow["excludes_0"]
    cells = pd.read_csv(out / "systems_cells.csv")
    tt = cells[(cells["metric"] == "time_to_target_s") & (cells["setting"] == "d3+d1 rollout 32")
               & (cells["algo"] == "m2po/areal")].iloc[0]
    # M2PO reaches 0.542 at step 10·1.5·0.9 = 13.5, so at the eval of step 15
    assert tt["mean"] == pytest.approx(15 * 0.5 * 1.02)


def test_eval_curves_on_the_time_axis_share_their_cells_mean_times(tmp_path) -> None:
    data = load_journals(systems_sweep(tmp_path))
    table = trail_table(data)
    mapped = on_time_axis(data.metrics, table)
    one_cell = table[(table["setting"] == "d2+d2 rollout 8") & (table["stale"] == 0)]["id"]
    steps = mapped[mapped["id"].isin(one_cell) & mapped["eval/reward"].notna()]
    assert sorted(set(steps["step"].round(9))) == pytest.approx([0.0] + [s * 2.0 * 1.02 for s in (5, 10, 15, 20)])


def test_no_systems_section_with_one_setting_or_in_fixed_mode(tmp_path) -> None:
    one = systems_sweep(tmp_path / "one", settings={("d2+d2", 8): 2.0})
    fixed = systems_sweep(tmp_path / "fixed", mode="fixed")
    for sweep in (one, fixed):
        data = load_journals(sweep)
        assert systems_part(trail_table(data), data.metrics) is None
        report = build_report(data, sweep / "report")
        assert "## Systems" not in report.read_text(encoding="utf-8")
        assert not (sweep / "report" / "frontier.png").exists()


@pytest.mark.e2e
def test_a_real_async_sweep_over_two_caps_gets_the_systems_section(tmp_path) -> None:
    """`harness sweep` with the embedded engine on the simulated clock: rollout 2 and 8, on-policy GRPO as the
    reference, two paired seeds; the end-of-sweep report carries the frontier and the time curves."""
    from harness.cli import main

    root = tmp_path / "runs"
    args = ["sweep", "--name", "clock", "--root", str(root), *tiny_trail(
        "engine.staleness_mode=async", "stale=0,8", "rollout=2,8", "alloc=d1+d1", "seed=1,2", "algo=grpo",
        "engine.steps=12", "engine.eval_every=3", "backend.max_parallel=1")]
    assert main(args) == 0
    out = root / "clock" / "report"
    text = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "## Systems: simulated time, throughput and the frontier" in text
    assert (out / "frontier.png").stat().st_size > 0 and (out / "eval_reward_vs_time.png").stat().st_size > 0
    trails = pd.read_csv(out / "systems_trails.csv")
    assert len(trails) == 8 and (trails["sim_time_s"] > 0).all() and (trails["samples_per_s"] > 0).all()
    # batching: at stale 8 the cap of 8 groups fills the worker's batch, so it trains faster than a cap of 2
    rate = trails[trails["stale"] == 8].groupby("rollout")["samples_per_s"].mean()
    assert rate[8] > rate[2]
