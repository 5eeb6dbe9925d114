"""The report's final metric, its secondary metric, the variance decomposition of every cell, the power of every
comparison and the separation of exploratory from confirmatory seeds, on synthetic journals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_sweeps import engine_config, finish_sweep, study_sweep, write_trail

from harness.report import write_report
from harness.report.contrasts import PAIRED, contrasts
from harness.report.findings import findings
from harness.report.load import load_journals
from harness.report.power import min_detectable_effect, seeds_needed
from harness.report.tables import cell_table, trail_table
from harness.report.variance import variance_split
from harness.store.sweepdir import write_sweep_meta


def _records(evals: list, final: dict | None = None) -> list:
    """One eval per step (steps 1 … len(evals)); `final` metrics on the last step."""
    records = []
    for k, value in enumerate(evals, start=1):
        rec = {"step": k, "time": 1000.0 + k, "eval/reward": value, "eval/reward_sampled": value / 2}
        if k == len(evals) and final:
            rec.update(final)
        records.append(rec)
    return records


def _axes(seed: int, algo: str = "grpo", stale: int = 1) -> dict:
    return {"stale": stale, "alloc": "d2+d1", "rollout": 96, "algo": algo, "seed": seed}


def test_final_metric_comes_from_the_large_final_eval_when_logged(tmp_path: Path) -> None:
    new = write_trail(tmp_path, _axes(1), _records([0.2, 0.3, 0.4, 0.5],
                                                   {"final/reward": 0.4521, "final/reward_sampled": 0.3,
                                                    "final/eval_size": 4096}),
                      config=engine_config(eval_size=512))
    old = write_trail(tmp_path, _axes(2), _records([0.1, 0.6]), config=engine_config(eval_size=512))
    table = trail_table(load_journals(finish_sweep(tmp_path, [new, old]))).set_index("seed")
    assert table.loc[1, "eval_final"] == 0.4521 and table.loc[1, "final_eval_size"] == 4096
    assert table.loc[1, "eval_final_sampled"] == 0.3
    assert table.loc[2, "eval_final"] == 0.6 and table.loc[2, "final_eval_size"] == 512      # older journal
    assert table.loc[2, "eval_final_sampled"] == 0.3
    assert table.loc[1, "eval_last3"] == pytest.approx((0.3 + 0.4 + 0.5) / 3)                 # intermediate evals
    assert math.isnan(table.loc[2, "eval_last3"])                                             # fewer than 3
    assert table.loc[1, "eval_size"] == 512                                                   # intermediate evals'


def test_every_cell_splits_its_spread_into_seed_and_eval_set(tmp_path: Path) -> None:
    sweep = study_sweep(tmp_path / "s", seeds=5, final_eval_size=4096, seed_sd=0.05)
    trails = trail_table(load_journals(sweep))
    cells = cell_table(trails)
    row = cells[(cells["metric"] == "eval_final") & (cells["algo"] == "grpo/clip") & (cells["stale"] == 1)].iloc[0]
    values = np.array([float(v) for v in row["values"].split(";")])          # printed to 6 significant digits
    split = variance_split(values, 4096)
    assert row["eval_size"] == 4096 and row["sd"] == pytest.approx(values.std(ddof=1), rel=1e-4)
    assert row["sampling_sd"] == pytest.approx(split.sampling_sd, rel=1e-4)
    assert row["seed_sd"] == pytest.approx(split.seed_sd, rel=1e-4)
    assert row["sampling_sd"] == pytest.approx(math.sqrt(0.56 * 0.44 / 4095), rel=0.1)
    assert row["more_precision_from"] == "more seeds"             # seed SD 0.05 ≫ eval-set SD 0.008
    text = write_report(sweep).read_text(encoding="utf-8")
    assert f"SD {row['sd']:.3f}: seed {row['seed_sd']:.3f}, eval set {row['sampling_sd']:.3f} of 4096" in text
    assert "### Noise of the final eval reward: seeds or eval problems" in text
    assert "more seeds buy more precision than more eval problems" in text


def test_a_tiny_eval_set_makes_more_eval_problems_the_better_buy(tmp_path: Path) -> None:
    sweep = study_sweep(tmp_path / "s", seeds=5, final_eval_size=64, seed_sd=0.0, noise_sd=0.0)
    found = findings(trail_table(load_journals(sweep)))
    assert any("more eval problems buy more precision than more seeds" in f for f in found)


def test_every_paired_comparison_carries_its_power(tmp_path: Path) -> None:
    sweep = study_sweep(tmp_path / "s", seeds=4, final_eval_size=4096, seed_sd=0.03, noise_sd=0.03,
                        final={("grpo/clip", 1): 0.56, ("grpo/clip", 256): 0.55, ("m2po/paper", 1): 0.55,
                               ("m2po/paper", 256): 0.56})
    trails = trail_table(load_journals(sweep))
    items = contrasts(trails)
    for c in items:
        if c.method != PAIRED:
            continue
        common = [s for s in c.a.index if s in c.b.index]
        d = c.a.loc[common].to_numpy(float) - c.b.loc[common].to_numpy(float)
        assert c.mde == pytest.approx(min_detectable_effect(float(d.std(ddof=1)), len(common)))
        assert c.needed == seeds_needed(float(d.mean()), float(d.std(ddof=1)))
    undecided = [c for c in items if c.method == PAIRED and c.kind == "algorithms" and c.metric == "eval_final"
                 and not c.diff.excludes(0.0)]
    assert undecided, "the study is built so that M2PO and GRPO cannot be told apart"
    found = findings(trails, items)
    sentence = next(f for f in found if "cannot tell M2PO/paper's final eval reward" in f)
    c = undecided[0]
    assert f"80 % power to separate ±{c.mde:.3f}" in sentence
    assert f"about {c.needed} paired seeds would separate" in sentence and "(an estimate)" in sentence
    text = write_report(sweep).read_text(encoding="utf-8")
    frame = pd.read_csv(sweep / "report" / "contrasts.csv")
    assert {"mde_80", "seeds_needed_est", "sd_diff", "sampling_sd_diff"} <= set(frame.columns)
    assert "separates (80 % power)" in text and "seeds needed (est.)" in text


def test_the_secondary_metric_is_compared_beside_the_primary(tmp_path: Path) -> None:
    sweep = study_sweep(tmp_path / "s", seeds=3, final_eval_size=4096)
    items = contrasts(trail_table(load_journals(sweep)))
    kinds = {(c.kind, c.metric) for c in items}
    assert {("algorithms", "eval_last3"), ("staleness", "eval_last3"), ("algorithms", "eval_final")} <= kinds
    found = findings(trail_table(load_journals(sweep)), items)
    assert any("mean of the last 3 evals (secondary metric)" in f for f in found)


def test_findings_rest_on_confirmatory_seeds_and_exploratory_ones_are_apart(tmp_path: Path) -> None:
    # exploratory seeds 1-2 show a large effect that the confirmatory seeds 101-105 do not
    sweep = tmp_path / "s"
    study_sweep(sweep, seeds_list=[101, 102, 103, 104, 105], final_eval_size=4096, seed=1,
                final={("grpo/clip", 1): 0.56, ("grpo/clip", 256): 0.56, ("m2po/paper", 1): 0.56,
                       ("m2po/paper", 256): 0.56})
    study_sweep(sweep, seeds_list=[1, 2], final_eval_size=4096, seed=2, noise_sd=0.0)
    finish_sweep(sweep, sorted(p for p in sweep.iterdir() if (p / "trail.json").is_file()),
                 {"exploratory": [1, 2], "confirmatory": [101, 102, 103, 104, 105]})
    data = load_journals(sweep)
    assert data.seed_roles[1] == "exploratory" and data.seed_roles[103] == "confirmatory"
    text = write_report(sweep).read_text(encoding="utf-8")
    findings_part = text.split("## Findings")[1].split("## Eval reward against staleness")[0]
    assert "Findings rest on the confirmatory seeds only (101–105; 20 finished trails)" in findings_part
    assert "Exploratory seeds (1–2" in findings_part
    assert "n = 5 paired seeds" in findings_part and "n = 2 paired seeds" not in findings_part
    exploratory = text.split("## Exploratory seeds (not confirmatory)")[1].split("## Curves")[0]
    assert "n = 2 paired seeds" in exploratory and "n = 5 paired seeds" not in exploratory
    cells = pd.read_csv(sweep / "report" / "cells.csv")
    assert set(cells["seeds"]) == {"confirmatory", "exploratory"}
    assert set(cells[(cells["seeds"] == "exploratory") & (cells["metric"] == "eval_final")]["n"]) == {2}
    trails = pd.read_csv(sweep / "report" / "trails.csv")
    assert set(trails[trails["seed"] < 100]["seed_role"]) == {"exploratory"}


def test_a_sweep_without_declared_roles_says_its_findings_are_not_confirmatory(tmp_path: Path) -> None:
    sweep = study_sweep(tmp_path / "s", seeds=3)
    text = write_report(sweep).read_text(encoding="utf-8")
    assert "These findings are not confirmatory: the sweep file declares no confirmatory seeds" in text
    assert "## Exploratory seeds" not in text
    assert set(pd.read_csv(sweep / "report" / "contrasts.csv")["seeds"]) == {"undeclared"}


def test_declared_roles_with_no_confirmatory_trail_yet(tmp_path: Path) -> None:
    sweep = study_sweep(tmp_path / "s", seeds=2, roles={"exploratory": [1, 2], "confirmatory": [11, 12]})
    text = write_report(sweep).read_text(encoding="utf-8")
    assert "No confirmatory trail has finished, so this sweep has no confirmatory finding yet" in text
    assert "## Exploratory seeds (not confirmatory)" in text


def test_planning_a_run_from_a_finished_sweep(tmp_path: Path) -> None:
    from harness.report.power import separation_probability
    from harness.report.variance import difference_sampling_variance

    sweep = study_sweep(tmp_path / "s", seeds=6, final_eval_size=4096, seed_sd=0.03, noise_sd=0.02,
                        final={("grpo/clip", 1): 0.56, ("grpo/clip", 256): 0.53, ("m2po/paper", 1): 0.55,
                               ("m2po/paper", 256): 0.55})
    items = contrasts(trail_table(load_journals(sweep)))
    c = next(c for c in items if c.kind == "algorithms" and c.metric == "eval_final" and c.a_key[2] == 256)
    d = c.differences
    assert list(d.index) == [1, 2, 3, 4, 5, 6] and d.to_numpy() == pytest.approx((c.a - c.b).to_numpy())
    shift = difference_sampling_variance(c.a[d.index], c.b[d.index], 64, 64) \
        - difference_sampling_variance(c.a[d.index], c.b[d.index], c.eval_size, c.eval_size_b)
    assert c.eval_size == 4096 and shift > 0
    base, more, noisier = (separation_probability(d, n=5), separation_probability(d, n=20),
                           separation_probability(d, n=5, variance_shift=shift))
    assert more.noncentral_t > base.noncentral_t > noisier.noncentral_t


def test_the_report_opens_with_what_the_sweep_file_says_it_asks(tmp_path: Path) -> None:
    # a demo states in its sweep file what its seeds can and cannot show; the report carries it under its title
    sweep = tmp_path / "demo"
    dirs = [write_trail(sweep, _axes(seed), _records([0.4, 0.5])) for seed in (1, 2)]
    write_sweep_meta(sweep, name="demo", trails=[d.name for d in dirs],
                     description="Six paired seeds: GRPO's drop separates in about 9 runs of 10.")
    text = (write_report(sweep)).read_text()
    title, _, rest = text.partition("\n\n")
    assert title == "# Trail report: demo"
    assert rest.startswith("**The sweep.** Six paired seeds: GRPO's drop separates in about 9 runs of 10.")
