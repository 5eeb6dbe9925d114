"""Findings follow the data: a difference is stated only when its (paired) interval excludes 0, the sentence says
"cannot tell … with n = …" otherwise, one seed gets the eval-set interval and the seed-variance caveat, and every
mean carries its per-seed values."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_sweeps import study_sweep
from test_report_tables import build

from harness.report import write_report
from harness.report.contrasts import contrasts
from harness.report.findings import findings
from harness.report.load import load_journals
from harness.report.tables import trail_table

GRPO = [(0.60, 0.40), (0.70, 0.42), (0.80, 0.44)]
M2PO_PAIRED_UP = [(0.65, 0.30), (0.76, 0.31), (0.84, 0.32)]  # +0.05, +0.06, +0.04 over GRPO, seed by seed
FORBIDDEN = ("no degradation", "no difference", "within noise", "does not degrade")


def texts(sweep_dir: Path, cells: dict, **kw) -> list[str]:
    return findings(trail_table(load_journals(build(sweep_dir, cells, **kw))))


def one(found: list[str], *needles: str) -> str:
    hits = [f for f in found if all(n in f for n in needles)]
    assert len(hits) == 1, (needles, found)
    return hits[0]


def test_paired_difference_is_stated_and_flips_with_the_data(tmp_path: Path) -> None:
    found = texts(tmp_path / "a", {(256, "grpo"): GRPO, (256, "m2po"): M2PO_PAIRED_UP})
    text = one(found, "final eval reward", "GRPO/clip's")
    assert text.startswith("stale 256: M2PO/paper's final eval reward is above GRPO/clip's by 0.050")
    assert "paired 95 % interval [+0.025, +0.075], n = 3 paired seeds" in text
    assert "M2PO/paper 0.750 ± 0.237 (n = 3: 0.650, 0.760, 0.840)" in text  # per-seed values beside the mean
    flipped = texts(tmp_path / "b", {(256, "grpo"): M2PO_PAIRED_UP, (256, "m2po"): GRPO})
    assert "M2PO/paper's final eval reward is below GRPO/clip's by 0.050" in one(flipped, "final eval reward")


def test_an_interval_including_zero_says_cannot_tell_with_n(tmp_path: Path) -> None:
    noisy = [(0.62, 0.40), (0.69, 0.42), (0.82, 0.44)]  # −0.02, +0.01, +0.02 against GRPO: interval holds 0
    found = texts(tmp_path / "a", {(256, "grpo"): GRPO, (256, "m2po"): noisy})
    text = one(found, "final eval reward")
    assert "cannot tell M2PO/paper's final eval reward from GRPO/clip's with n = 3 paired seeds" in text
    assert "includes 0" in text and "is above" not in text and "is below" not in text


def test_one_seed_gets_the_eval_set_interval_and_the_seed_variance_caveat(tmp_path: Path) -> None:
    found = texts(tmp_path / "a", {(1, "grpo"): [(0.316, 0.73)], (256, "grpo"): [(0.0, 0.91)],
                                   (256, "m2po"): [(0.262, 0.5)]})
    assert any("have one seed: for them the seed-to-seed variance is unknown" in f for f in found)
    drop = one(found, "GRPO/clip: final eval reward")
    # 0.316 vs 0.000 over 512 problems: Newcombe's interval is far from 0, so the drop is stated — for this seed
    assert "is below its stale 1 value by 0.316" in drop and "eval-set 95 % interval" in drop
    assert "seed-to-seed variance is unknown with one seed a side" in drop
    assert "0.000 (n = 1; eval-set 95 % 0.000–0.007 of 512 problems)" in drop
    grad = one(found, "mean grad_norm")
    assert "cannot tell" in grad and "no interval; seed variance is unknown" in grad
    paper = one(found, "reaches 0.95×")
    assert "cannot tell whether M2PO/paper at stale 256 reaches 0.95×" in paper and "no interval" in paper


def test_degradation_and_the_papers_ratio(tmp_path: Path) -> None:
    cells = {
        (1, "grpo"): [(0.80, 0.4), (0.81, 0.4), (0.82, 0.4)],
        (256, "grpo"): [(0.60, 0.4), (0.62, 0.4), (0.64, 0.4)],  # −0.20, −0.19, −0.18: degrades
        (1, "m2po"): [(0.80, 0.3), (0.82, 0.3), (0.84, 0.3)],
        (256, "m2po"): [(0.80, 0.3), (0.805, 0.3), (0.81, 0.3)],  # ratio to GRPO stale 1: 0.805 / 0.81 = 0.994
    }
    found = texts(tmp_path / "a", cells)
    grpo = one(found, "GRPO/clip: final eval reward")
    assert "is below its stale 1 value by 0.190" in grpo and "it degrades with staleness" in grpo
    paper = one(found, "0.95×")
    assert paper.startswith("M2PO/paper at stale 256 reaches ≥ 0.95× the final eval reward of GRPO/clip at stale 1")
    assert "ratio 0.994, Fieller 95 % interval" in paper
    cells[(256, "m2po")] = [(0.60, 0.3), (0.61, 0.3), (0.62, 0.3)]
    assert "falls short of 0.95×" in one(texts(tmp_path / "b", cells), "0.95×")
    cells[(256, "m2po")] = [(0.70, 0.3), (0.80, 0.3), (0.90, 0.3)]
    assert "cannot tell whether M2PO/paper at stale 256 reaches 0.95×" in one(texts(tmp_path / "c", cells), "0.95×")


def test_token_fractions_and_no_controlled_axis_compared(tmp_path: Path) -> None:
    sweep = study_sweep(tmp_path / "s", seeds=2, stales=(1, 256), steps=20, eval_every=10)
    text = write_report(sweep).read_text()
    assert "M2PO/paper's masked-token fraction (mean over steps): 0.07 % ± 0 % (n = 2: 0.07 %, 0.07 %) at stale 1" \
        in text
    assert "GRPO/clip's clipped-token fraction (mean over steps)" in text
    findings_part = text.split("## Findings")[1].split("## Eval reward against staleness")[0]
    comparisons = text.split("## Comparisons")[1].split("## Curves")[0]
    assert "staleness mean" not in comparisons and "realised" not in findings_part
    assert "stale 256 m2po/paper seed 2" in text and "d2+d1" not in findings_part  # fixed mode: only the lag


rewards = st.lists(st.floats(0, 1, allow_nan=False, width=32), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None)
@given(rewards, rewards)
def test_a_difference_is_claimed_exactly_when_its_interval_excludes_zero(tmp_path_factory, a: list,
                                                                        b: list) -> None:
    sweep = build(tmp_path_factory.mktemp("p"), {(256, "grpo"): [(x, 0.4) for x in a],
                                                 (256, "m2po"): [(x, 0.3) for x in b]})
    trails = trail_table(load_journals(sweep))
    items = contrasts(trails)
    found = findings(trails, items)
    assert not any(word in f for f in found for word in FORBIDDEN)
    ev = [c for c in items if c.kind == "algorithms" and c.metric == "eval_final"][0]
    text = one(found, "final eval reward")
    paired = [s for s in ev.a.index if s in ev.b.index]
    if len(paired) >= 2 and all(ev.a[s] == ev.b[s] for s in paired):  # the same values in every seed: no contest
        assert "in each of the" in text and "is above" not in text and "is below" not in text
        return
    assert ("cannot tell" not in text) == ev.diff.excludes(0.0)


def test_lift_over_the_base_model_is_paired_by_trail_and_stated_only_when_it_clears_noise(tmp_path: Path) -> None:
    from synthetic_sweeps import engine_config, finish_sweep, write_trail
    from test_report_tables import axes, flat_trail

    def sweep(name: str, lifts: list[float]) -> list[str]:
        dirs = []
        for seed, lift in enumerate(lifts, start=1):
            records = flat_trail(0.1 + lift, 0.5)
            records[0]["base/reward"] = 0.1  # the engine logs the base model's eval with step 1
            dirs.append(write_trail(tmp_path / name, axes(1, "grpo", seed), records, ended=1010.0,
                                    config=engine_config()))
        return findings(trail_table(load_journals(finish_sweep(tmp_path / name, dirs))))

    text = one(sweep("up", [0.50, 0.52, 0.55]), "the base model")
    assert text.startswith("stale 1: RL lifts GRPO/clip's final eval reward above the base model's by 0.523")
    assert "paired 95 % interval" in text and "n = 3 paired seeds" in text
    flat = one(sweep("flat", [0.02, -0.03, 0.01]), "the base model")
    assert "cannot tell" in flat and "lifts" not in flat


def test_two_losses_identical_in_every_seed_are_called_identical_not_undecided(tmp_path: Path) -> None:
    found = texts(tmp_path / "a", {(1, "grpo"): GRPO, (1, "m2po"): GRPO})
    text = one(found, "final eval reward", "GRPO/clip's")
    assert "equals GRPO/clip's in each of the 3 paired seeds" in text and "nothing to compare" in text
    assert "cannot tell" not in text
