"""Findings follow the data: they flip when the data flips and say "within noise" when the intervals overlap."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report.findings import findings
from harness.report.stats import estimate, within_noise
from harness.report.load import load_journals
from harness.report.tables import trail_table
from test_report_tables import build

CLEAR_GRPO = [(0.60, 0.40), (0.70, 0.42), (0.80, 0.44)]  # grad 0.42 ± 0.050, eval 0.70 ± 0.248
CLEAR_M2PO = [(0.80, 0.30), (0.82, 0.31), (0.84, 0.32)]  # grad 0.31 ± 0.025, eval 0.82 ± 0.050


def texts(sweep_dir: Path, cells: dict) -> list[str]:
    return findings(trail_table(load_journals(build(sweep_dir, cells))))


def one(found: list[str], *needles: str) -> str:
    hits = [f for f in found if all(n in f for n in needles)]
    assert len(hits) == 1, (needles, found)
    return hits[0]


def test_grad_norm_finding_flips_when_the_data_flips(tmp_path: Path) -> None:
    found = texts(tmp_path / "a", {(256, "grpo"): CLEAR_GRPO, (256, "m2po"): CLEAR_M2PO})
    text = one(found, "grad_norm")
    assert "the grad_norm of GRPO is higher than M2PO" in text
    assert "M2PO 0.31 ± 0.0248 (n = 3) vs GRPO 0.42 ± 0.0497 (n = 3)" in text
    assert "M2PO − GRPO = -0.11" in text
    flipped = texts(tmp_path / "b", {(256, "grpo"): CLEAR_M2PO, (256, "m2po"): CLEAR_GRPO})
    assert "the grad_norm of M2PO is higher than GRPO" in one(flipped, "grad_norm")


def test_overlapping_intervals_are_reported_as_within_noise(tmp_path: Path) -> None:
    found = texts(tmp_path / "a", {(256, "grpo"): CLEAR_GRPO, (256, "m2po"): CLEAR_M2PO})
    # eval: GRPO [0.452, 0.948] and M2PO [0.770, 0.870] overlap, although M2PO's mean is higher
    text = one(found, "eval reward")
    assert "differ within noise" in text and "the 95 % intervals overlap" in text
    assert "is higher than" not in text
    # a tight GRPO eval makes the same M2PO numbers a real difference
    tight = [(0.60, 0.40), (0.61, 0.42), (0.62, 0.44)]  # eval 0.61 ± 0.025: [0.585, 0.635] vs [0.770, 0.870]
    found = texts(tmp_path / "b", {(256, "grpo"): tight, (256, "m2po"): CLEAR_M2PO})
    assert "the eval reward of M2PO is higher than GRPO" in one(found, "eval reward")


def test_single_seeds_never_claim_a_difference(tmp_path: Path) -> None:
    found = texts(tmp_path / "a", {(256, "grpo"): [(0.2, 0.9)], (256, "m2po"): [(0.9, 0.1)]})
    text = one(found, "grad_norm")
    assert "within noise" in text and "n < 2" in text


def test_staleness_findings_m2po_retention_and_grpo_degradation(tmp_path: Path) -> None:
    cells = {
        (1, "grpo"): [(0.80, 0.4), (0.81, 0.4), (0.82, 0.4)],    # 0.81 ± 0.025
        (256, "grpo"): [(0.60, 0.4), (0.62, 0.4), (0.64, 0.4)],  # 0.62 ± 0.050: disjoint, lower -> degrades
        (1, "m2po"): [(0.80, 0.3), (0.82, 0.3), (0.84, 0.3)],    # 0.82; mark 0.95 · 0.82 = 0.779
        (256, "m2po"): [(0.80, 0.3), (0.805, 0.3), (0.81, 0.3)],  # 0.805 ± 0.012 = [0.793, 0.817] ≥ 0.779
    }
    found = texts(tmp_path / "a", cells)
    grpo = one(found, "GRPO", "staleness")
    assert "GRPO degrades with staleness" in grpo and "ratio 0.765" in grpo  # 0.62 / 0.81
    m2po = one(found, "M2PO's final eval reward at stale 256")
    assert "stays at or above 0.95× its stale 1 value" in m2po and "ratio 0.982" in m2po and "mark 0.779" in m2po
    assert "within noise" not in m2po
    # flip: M2PO collapses at stale 256, GRPO holds
    cells[(256, "m2po")] = [(0.60, 0.3), (0.61, 0.3), (0.62, 0.3)]
    cells[(256, "grpo")] = [(0.79, 0.4), (0.81, 0.4), (0.83, 0.4)]  # 0.81 ± 0.050 overlaps stale 1's 0.81 ± 0.025
    found = texts(tmp_path / "b", cells)
    assert "falls below 0.95×" in one(found, "M2PO's final eval reward at stale 256")
    grpo = one(found, "GRPO's final eval reward changes within noise")
    assert "no degradation is shown" in grpo


def test_m2po_retention_straddling_the_mark_is_within_noise(tmp_path: Path) -> None:
    cells = {
        (1, "m2po"): [(0.80, 0.3), (0.82, 0.3), (0.84, 0.3)],    # mark 0.779
        (256, "m2po"): [(0.75, 0.3), (0.80, 0.3), (0.85, 0.3)],  # 0.80 ± 0.124: [0.676, 0.924] contains 0.779
    }
    text = one(texts(tmp_path / "a", cells), "M2PO's final eval reward")
    assert "stays at or above" in text and "straddles the mark, so this is within noise" in text


values = st.lists(st.floats(0, 1, allow_nan=False), min_size=0, max_size=6)


@settings(max_examples=60, deadline=None)
@given(values, values)
def test_a_difference_is_claimed_only_with_two_seeds_a_side_and_disjoint_intervals(a: list, b: list) -> None:
    ea, eb = estimate(a), estimate(b)
    assert within_noise(ea, eb) == within_noise(eb, ea)
    if not within_noise(ea, eb):
        assert ea.n >= 2 and eb.n >= 2
        assert ea.hi < eb.lo or eb.hi < ea.lo
