"""What a sweep says while it runs: off a terminal a line per trail state change and a periodic line of counts, as
the trails run (not only at the end); on a terminal a live table with a row for the work before launch; and the
base model built by the sweep before any trail starts."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import main
from harness.orchestration.progress import LineDisplay, LiveDisplay, open_display
from harness.store.journal import Journal
from harness.store.rundir import read_status, record_outcome, write_json_atomic
from harness.store.states import ACTIVE, TrailState
from harness.store.sweepdir import trail_dirs


def _active(sweep_dir: Path) -> int:
    """Trails of the sweep still pending or running, read from their status files."""
    if not (sweep_dir / "sweep.json").exists():
        return -1
    return sum(read_status(d).get("state") in ACTIVE for d in trail_dirs(sweep_dir))


@pytest.mark.e2e
def test_a_piped_sweep_says_each_change_and_its_progress_while_trails_run(root: Path, tiny: list[str]) -> None:
    args = ["sweep", "stale=0,1,2", *tiny, "backend.max_parallel=1", "sweep.progress_every_s=1", "--name", "piped",
            "--root", str(root), "--no-report"]
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []  # each line as it arrived, with the number of trails then still to finish
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append((line.rstrip("\n"), _active(root / "piped")))
    assert proc.wait(timeout=60) == 0, "\n".join(line for line, _ in seen)
    lines = [line for line, _ in seen]
    done_line = re.compile(r"\[\d/3\] .*: done \(eval/reward \d\.\d{3}\) in \d+ s$")
    done = [(line, active) for line, active in seen if done_line.match(line)]
    assert sorted(line[:5] for line, _ in done) == ["[1/3]", "[2/3]", "[3/3]"], lines
    assert len([line for line in lines if re.match(r"\[\d/3\] .*: running$", line)]) == 3, lines
    # one trail at a time: when the first trail's line arrived, the others had not finished yet
    assert done[0][1] >= 2, f"the first trail's end was said only when {3 - done[0][1]} trails had finished"
    progress = [(line, active) for line, active in seen if line.startswith("progress ")]
    assert any(active >= 1 and "running 1" in line for line, active in progress), lines


def _trail(sweep_dir: Path, name: str) -> Path:
    run_dir = sweep_dir / name.replace(" ", "_")
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "trail.json", {"name": name, "id": name[-1] * 10})
    record_outcome(run_dir, TrailState.PENDING)
    return run_dir


def test_off_a_terminal_each_change_is_one_line(tmp_path: Path) -> None:
    a, b = _trail(tmp_path, "trail a"), _trail(tmp_path, "trail b")
    out = io.StringIO()
    display = open_display(Console(file=out, width=40), [a, b], every_s=3600)
    assert isinstance(display, LineDisplay)
    with display:
        display.say("base model", "pretraining step 100 of at most 4000")
        display.update({a: TrailState.RUNNING, b: TrailState.PENDING})
        display.update({a: TrailState.RUNNING, b: TrailState.PENDING})  # no change: no line
        with Journal(a) as journal:
            journal.append(1, {"eval/reward": 0.25})
            journal.append(2, {"train/loss": 1.0, "eval/reward": 0.5})
        record_outcome(a, TrailState.DONE, started=1000.0, ended=1084.0)
        record_outcome(b, TrailState.FAILED, "worker killed by signal 9", started=1000.0, ended=1003.0)
        display.update({a: TrailState.DONE, b: TrailState.FAILED})
    assert out.getvalue().splitlines() == [
        "base model: pretraining step 100 of at most 4000",  # not wrapped at the console's width
        "[1/2] trail a: running",
        "[1/2] trail a: done (eval/reward 0.500) in 1 min 24 s",
        "[2/2] trail b: failed in 3 s: worker killed by signal 9",
    ]


def test_off_a_terminal_a_line_of_counts_comes_every_period(tmp_path: Path) -> None:
    a, b = _trail(tmp_path, "trail a"), _trail(tmp_path, "trail b")
    out = io.StringIO()
    display = LineDisplay(Console(file=out, width=200), [a, b], every_s=0.3)
    display.update({a: TrailState.RUNNING, b: TrailState.PENDING})
    assert not [line for line in out.getvalue().splitlines() if line.startswith("progress")], "not before a period"
    time.sleep(0.35)
    record_outcome(a, TrailState.RUNNING, step=30, total_steps=800)
    display.update({a: TrailState.RUNNING, b: TrailState.PENDING})
    (line,) = [line for line in out.getvalue().splitlines() if line.startswith("progress")]
    assert re.fullmatch(r"progress \d+ s: queued 1 · running 1 · done 0 · diverged 0 · failed 0 · \[1/2\] step 30/800",
                        line), line


def test_on_a_terminal_the_work_before_launch_has_its_own_row(tmp_path: Path) -> None:
    a = _trail(tmp_path, "trail a")
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True, color_system=None)
    display = open_display(console, [a])
    assert isinstance(display, LiveDisplay)
    display.say("base model", "pretraining step 300 of at most 4000")
    console.print(display)
    rows = [line for line in out.getvalue().splitlines() if "base model" in line]
    assert len(rows) == 1 and "preparing" in rows[0] and "pretraining step 300 of at most 4000" in rows[0], rows
    assert "trail a" in out.getvalue() and "queued 1" in out.getvalue()
    display.end_phases()
    out.truncate(0)
    console.print(display)
    (row,) = [line for line in out.getvalue().splitlines() if "base model" in line]
    assert "preparing" not in row, "its clock stops when the work before launch is over"


@pytest.mark.e2e
def test_the_base_model_is_built_once_before_any_trail_starts(root: Path, tiny: list[str], tmp_path: Path,
                                                              capsys) -> None:
    cache = tmp_path / "cache"
    args = ["sweep", "stale=0,1", *tiny, f"engine.cache_dir={cache}", "backend.max_parallel=1", "--name", "base",
            "--root", str(root), "--no-report"]
    assert main([*args, "--dry-run"]) == 0
    assert not cache.exists(), "a dry run builds nothing"
    assert main(args) == 0
    (model,) = cache.glob("base-*.pt")
    out = capsys.readouterr().out
    assert re.search(r"base model: built in \d+ s: 30 pretraining steps", out)
    # the sweep ends by saying where its wall time went
    assert re.search(r"wall time \d+ s: preparation \d+ s, trails \d+ s, wrap-up \d+ s", out), out
    for run_dir in trail_dirs(root / "base"):
        assert "pretraining step" not in (run_dir / "log.txt").read_text(), f"{run_dir.name} built it itself"
        assert model.stat().st_mtime <= read_status(run_dir)["started"], "built before the trail started"
