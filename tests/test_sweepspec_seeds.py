"""Exploratory and confirmatory seeds in a sweep file: the schema, its one-line errors before anything launches, how
it combines with seed= overrides, and the roles reaching sweep.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.spec.sweepspec import build_spec, build_trails, seeds_text
from harness.store.sweepdir import read_sweep_meta


def _file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "study.yaml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def _seeds(spec) -> list:
    return sorted({t.cfg.seed for t in build_trails(spec)})


def test_declared_seeds_are_the_seed_axis(tmp_path: Path) -> None:
    spec = build_spec([_file(tmp_path, "overrides: [stale=1]\n"
                                       "seeds: {exploratory: [1, 2], confirmatory: 'range(101,104)'}\n")])
    assert spec.seed_roles == {"exploratory": [1, 2], "confirmatory": [101, 102, 103]}
    assert _seeds(spec) == [1, 2, 101, 102, 103]


def test_a_file_seed_override_must_match_the_declaration(tmp_path: Path) -> None:
    ok = build_spec([_file(tmp_path, "overrides: ['seed=1,2,7']\nseeds: {exploratory: [1, 2], confirmatory: 7}\n")])
    assert _seeds(ok) == [1, 2, 7]
    unused = build_spec([_file(tmp_path, "overrides: ['seed=1,2']\nseeds: {exploratory: [1, 2], confirmatory: [7]}\n")])
    with pytest.raises(HarnessError, match=r"declared confirmatory seed 7 is used by no trail"):
        build_trails(unused)
    undeclared = build_spec([_file(tmp_path, "overrides: ['seed=1,2,3']\nseeds: {exploratory: [1, 2]}\n")])
    with pytest.raises(HarnessError, match=r"seed 3 \(sweep file .*\) is not declared in 'seeds'"):
        build_trails(undeclared)


def test_the_command_line_picks_a_subset_of_the_declared_seeds(tmp_path: Path) -> None:
    path = _file(tmp_path, "seeds: {exploratory: [1, 2], confirmatory: 'range(101,111)'}\n")
    assert _seeds(build_spec([path, "seed=101,102"])) == [101, 102]      # confirmatory later, on its own
    with pytest.raises(HarnessError, match=r"seed 5 \(the command line\) is not declared .*exploratory 1–2; "
                                           r"confirmatory 101–110"):
        build_trails(build_spec([path, "seed=2,5"]))


@pytest.mark.parametrize("seeds, message", [
    ("{exploratory: [1, 2], confirmatory: [2, 3]}", "seed 2 is both exploratory and confirmatory"),
    ("{exploratory: [1, 1]}", r"'seeds.exploratory': seed 1 is listed twice"),
    ("{confirmed: [1]}", r"unknown seed role 'confirmed' in 'seeds' \(allowed: exploratory, confirmatory\)"),
    ("{exploratory: [1.5]}", r"'seeds.exploratory': expected integer seeds, got \[1.5\]"),
    ("{exploratory: 'abc'}", r"'seeds.exploratory': expected integer seeds, got \['abc'\]"),
    ("{exploratory: 'range(1,'}", r"'seeds.exploratory': cannot parse 'range\(1,'"),
    ("[1, 2]", r"'seeds' must map exploratory and/or confirmatory to seed lists"),
    ("{exploratory: []}", r"'seeds' declares no seed"),
])
def test_bad_declarations_fail_in_one_line(tmp_path: Path, seeds: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message) as err:
        build_spec([_file(tmp_path, f"seeds: {seeds}\n")])
    assert "\n" not in str(err.value)


def test_a_sweep_without_declaration_is_unchanged(tmp_path: Path) -> None:
    spec = build_spec([_file(tmp_path, "overrides: ['seed=1,2']\n")])
    assert spec.seed_roles == {} and _seeds(spec) == [1, 2]


def test_seeds_text() -> None:
    assert seeds_text([101, 1, 2, 103, 102, 5]) == "1–2, 5, 101–103"


@pytest.mark.e2e
def test_roles_reach_sweep_json_and_the_report(tmp_path: Path, tiny: list) -> None:
    from harness.orchestration.sweep import main_sweep
    from harness.report import write_report

    path = _file(tmp_path, "overrides: [stale=1]\nseeds: {exploratory: [1], confirmatory: [11, 12]}\n")
    assert main_sweep([path, *tiny], name="roles", root=str(tmp_path / "runs"), report=False) == 0
    sweep_dir = tmp_path / "runs" / "roles"
    assert read_sweep_meta(sweep_dir)["seeds"] == {"exploratory": [1], "confirmatory": [11, 12]}
    text = write_report(sweep_dir).read_text(encoding="utf-8")
    assert "Findings rest on the confirmatory seeds only (11–12; 2 finished trails)" in text
    assert "## Exploratory seeds (not confirmatory)" in text
