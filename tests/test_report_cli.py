"""`harness report` from the command line: by sweep name under --root, unfinished trails, unknown sweeps."""

from __future__ import annotations

from pathlib import Path

from synthetic_sweeps import finish_sweep, write_trail
from test_report_tables import axes, flat_trail

from harness.cli import main


def test_cli_report_of_an_unfinished_sweep(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "runs" / "demo"
    dirs = [write_trail(sweep, axes(1, "grpo", 1), [], state="pending"),
            write_trail(sweep, axes(1, "m2po", 1), flat_trail(0.8, 0.3)[:2], state="running")]
    finish_sweep(sweep, dirs)
    assert main(["report", "demo", "--root", str(tmp_path / "runs")]) == 0
    assert str(sweep / "report" / "REPORT.md") in capsys.readouterr().out
    text = (sweep / "report" / "REPORT.md").read_text()
    assert "No trail has finished, so no comparison can be made yet." in text
    assert "`stale 1 d2+d1 rollout 96 m2po/paper seed 1` — running at step 2" in text  # no config: all axes
    assert "is above" not in text and "is below" not in text


def test_cli_report_of_an_unknown_sweep_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["report", "nope", "--root", str(tmp_path)]) == 2
    assert "sweep 'nope' not found" in capsys.readouterr().err
