"""`harness sweep` on the local backend, end to end with the embedded engine on tiny trails: progress to completion,
failure isolation, skip-finished / resume-unfinished on re-run, status table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FinishedSweep
from tiny_trail import tiny_trail

from harness.cli import main
from harness.store.journal import read_records
from harness.store.rundir import read_status
from harness.store.sweepdir import read_sweep_meta, trail_dirs


def states(sweep_dir: Path) -> dict[str, str]:
    return {d.name: read_status(d)["state"] for d in trail_dirs(sweep_dir)}


def test_sweep_runs_every_trail_and_leaves_finished_dirs(finished_sweep: FinishedSweep):
    sweep_dir = finished_sweep.dir
    assert sorted(states(sweep_dir).values()) == ["done"] * 4
    for run_dir in trail_dirs(sweep_dir):
        for name in ("config.yaml", "overrides.yaml", "trail.json", "status.json", "journal.jsonl"):
            assert (run_dir / name).is_file(), f"{run_dir.name} lacks {name}"
        steps = [r["step"] for r in read_records(run_dir)]
        assert steps == list(range(len(steps))) and steps[-1] == 6  # step 0: the base model's eval
    assert len(read_sweep_meta(sweep_dir)["trails"]) == 4


@pytest.mark.e2e
def test_a_failing_trail_does_not_stop_the_others(root: Path, tiny: list[str], tmp_path: Path, capsys):
    # An unwritable base-model cache: the engine raises at run time, which no validation can foresee.
    sweep_file = tmp_path / "mixed.yaml"
    sweep_file.write_text("trails:\n  - [seed=1]\n  - [seed=2, engine.cache_dir=/proc/harness-cannot-write]\n")
    rc = main(["sweep", str(sweep_file), *tiny, "backend.max_parallel=1", "--name", "mixed", "--root", str(root),
               "--no-report"])
    assert rc == 1, "a sweep with a failed trail exits non-zero"
    sweep_dir = root / "mixed"
    by_state = sorted(states(sweep_dir).values())
    assert by_state == ["done", "failed"]
    failed = next(d for d in trail_dirs(sweep_dir) if read_status(d)["state"] == "failed")
    assert read_status(failed)["reason"], "a failed trail records its reason"
    assert "did not finish cleanly" in capsys.readouterr().out


def test_rerun_skips_finished_trails(finished_sweep: FinishedSweep, root: Path):
    sweep_dir = finished_sweep.copy_to(root)
    before = {d.name: (read_status(d)["attempts"], (d / "journal.jsonl").read_bytes()) for d in trail_dirs(sweep_dir)}
    assert main(finished_sweep.args(root)) == 0
    after = {d.name: (read_status(d)["attempts"], (d / "journal.jsonl").read_bytes()) for d in trail_dirs(sweep_dir)}
    assert after == before, "finished trails are neither rerun nor touched"


@pytest.mark.e2e
def test_rerun_resumes_a_killed_sweep_from_checkpoints(root: Path):
    # one trail at a time: however fast the first trail runs, the kill finds trails still to run
    args = ["sweep", "stale=0", "algo=grpo,m2po", *tiny_trail("engine.steps=40", "engine.checkpoint_every=2"),
            "backend.max_parallel=1", "--name", "killed", "--root", str(root), "--no-report"]
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep_dir = root / "killed"
    deadline = time.time() + 120
    while time.time() < deadline:
        if sweep_dir.exists() and any((d / "checkpoint").exists() and len(read_records(d)) >= 4
                                      for d in trail_dirs(sweep_dir)):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, as a lost machine would
    proc.wait()
    assert any(s != "done" for s in states(sweep_dir).values()), "the kill came too late to test resume"
    assert main(args) == 0
    for run_dir in trail_dirs(sweep_dir):
        steps = [r["step"] for r in read_records(run_dir)]
        assert steps == list(range(0, 41)), f"{run_dir.name}: every step exactly once"
        assert read_status(run_dir)["state"] == "done"
    assert max(read_status(d)["attempts"] for d in trail_dirs(sweep_dir)) >= 2


def test_status_prints_the_trail_table(finished_sweep: FinishedSweep, root: Path, capsys):
    finished_sweep.copy_to(root)  # status records what it read (the journal index) in the sweep dir
    assert main(["status", finished_sweep.name, "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "stale 0 grpo" in out and "done" in out and "6/6" in out and "4/4 done" in out


def test_dry_run_launches_nothing(root: Path, capsys):
    assert main(["sweep", "demo", "--dry-run", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "15 trails" in out and "stale 256 m2po seed 5" in out
    assert not root.exists()
