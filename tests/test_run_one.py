"""`harness run`: one trail in the foreground, its run directory complete, a finished trail not rerun."""

from __future__ import annotations

from pathlib import Path

from harness.cli import main
from harness.store.journal import read_records
from harness.store.rundir import read_status


def test_run_writes_a_complete_run_dir_and_skips_when_done(root: Path, tiny: list[str], capsys):
    assert main(["run", "stale=1", *tiny, "--root", str(root)]) == 0
    (run_dir,) = [p.parent for p in (root / "single").glob("*/config.yaml")]
    assert read_status(run_dir)["state"] == "done"
    assert [r["step"] for r in read_records(run_dir)] == [0, 1, 2, 3, 4, 5, 6]  # step 0: the base model's eval
    journal = (run_dir / "journal.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["run", "stale=1", *tiny, "--root", str(root)]) == 0
    assert "already done" in capsys.readouterr().out
    assert (run_dir / "journal.jsonl").read_bytes() == journal


def test_run_refuses_a_sweep(root: Path, capsys):
    assert main(["run", "stale=1,2", "--root", str(root)]) == 2
    assert "harness sweep" in capsys.readouterr().err
    assert not root.exists()
