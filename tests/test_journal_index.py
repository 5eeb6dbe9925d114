"""The sweep's journal index: step runs equal to the journal's steps, reused while a journal is unchanged and
re-read when it changes; `harness status` answers from it and lists a large sweep as plain lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from synthetic_sweeps import finish_sweep, write_trail

import harness.store.journal_columns as journal_columns
from harness.cli import main
from harness.orchestration.listing import PLAIN_ABOVE
from harness.store.journal import JOURNAL_NAME, Journal
from harness.store.journal_index import INDEX_NAME, JournalIndex, journal_key, missing_in, step_ranges
from harness.store.rundir import Status
from harness.store.states import TrailState


@given(st.lists(st.integers(min_value=1, max_value=60), max_size=40), st.integers(min_value=0, max_value=70))
def test_step_runs_hold_exactly_the_journals_steps(steps: list[int], last: int) -> None:
    ranges = step_ranges(steps)
    assert [s for low, high in ranges for s in range(low, high + 1)] == sorted(set(steps))
    assert all(b[0] > a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False)), "runs are maximal"
    assert missing_in(ranges, last) == [s for s in range(1, last + 1) if s not in set(steps)]


def _trail(sweep_dir: Path, name: str, steps: int = 3) -> Path:
    return write_trail(sweep_dir, {"stale": 1, "alloc": "d2+d1", "rollout": 96, "algo": "grpo", "seed": 1},
                       [{"step": k, "time": 1000.0 + k, "eval/reward": 0.5} for k in range(1, steps + 1)],
                       dirname=name)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run dirs whose journal the index read."""
    seen: list[str] = []
    real = journal_columns.read_steps

    def counting(run_dir):
        seen.append(Path(run_dir).name)
        return real(run_dir)

    monkeypatch.setattr(journal_columns, "read_steps", counting)
    return seen


def test_an_unchanged_journal_is_read_once_and_a_changed_one_again(tmp_path: Path, reads: list[str]) -> None:
    a, b = _trail(tmp_path, "a"), _trail(tmp_path, "b")
    index = JournalIndex(tmp_path)
    assert index.ranges(a) == [(1, 3)] and index.ranges(b) == [(1, 3)]
    index.save()
    assert json.loads((tmp_path / INDEX_NAME).read_text())["trails"]["a"]["ranges"] == [[1, 3]]
    again = JournalIndex(tmp_path)  # a later `harness status`
    assert again.ranges(a) == [(1, 3)] and reads == ["a", "b"]
    with Journal(a) as journal:  # appended
        journal.append(4, {"x": 1.0})
    lines = (b / JOURNAL_NAME).read_bytes().splitlines(keepends=True)
    (b / JOURNAL_NAME).write_bytes(lines[0] + lines[2])  # step 2 lost
    assert again.ranges(a) == [(1, 4)] and again.ranges(b) == [(1, 1), (3, 3)]
    assert reads == ["a", "b", "a", "b"]
    assert again.lost_steps(b, Status(TrailState.DONE, step=3)) == [2]
    assert again.lost_steps(b, Status(TrailState.RUNNING, step=3)) == [], "only finished trails are checked"


def test_what_was_read_while_the_journal_grew_is_not_kept(tmp_path: Path) -> None:
    run_dir = _trail(tmp_path, "a")
    key = journal_key(run_dir)
    with Journal(run_dir) as journal:  # a running trail appends while a reader parses the journal
        journal.append(4, {"x": 1.0})
    index = JournalIndex(tmp_path)
    assert index.learn(run_dir, key, [1, 2, 3]) == [(1, 3)]
    assert index.ranges(run_dir) == [(1, 4)], "the stale read was not kept under the new journal's key"


def test_an_index_that_cannot_be_written_is_not_kept(tmp_path: Path) -> None:
    run_dir = _trail(tmp_path, "a")
    (tmp_path / "file").write_text("")
    index = JournalIndex(tmp_path / "file")  # its index path is under a file: every write fails
    assert index.ranges(run_dir) == [(1, 3)]
    index.save()
    for damaged in ("{not json", "[1, 2]", '{"version": 1, "trails": {"a": {"key": 7, "ranges": 3}}}'):
        (tmp_path / INDEX_NAME).write_text(damaged)
        assert JournalIndex(tmp_path).ranges(run_dir) == [(1, 3)], f"a damaged index is only a miss: {damaged}"
    key = journal_key(run_dir)
    (tmp_path / INDEX_NAME).write_text(json.dumps({"version": 1, "trails": {"a": {"key": key, "ranges": "x"}}}))
    assert JournalIndex(tmp_path).ranges(run_dir) == [(1, 3)]


def test_status_of_a_large_sweep_lists_plain_lines_and_flags_lost_records(tmp_path: Path, capsys) -> None:
    sweep_dir = tmp_path / "runs" / "big"
    dirs = [_trail(sweep_dir, f"t{i:03d}") for i in range(PLAIN_ABOVE + 1)]
    finish_sweep(sweep_dir, dirs)
    assert main(["status", "big", "--root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"big (?): {PLAIN_ABOVE + 1}/{PLAIN_ABOVE + 1} done"
    assert out[1].split() == ["trail", "id", "state", "step", "reason"] and len(out) == PLAIN_ABOVE + 3
    assert all(line.split()[-2:] == ["done", "3"] for line in out[2:]), out[2:4]
    assert (sweep_dir / INDEX_NAME).is_file()
    lines = (dirs[7] / JOURNAL_NAME).read_bytes().splitlines(keepends=True)
    (dirs[7] / JOURNAL_NAME).write_bytes(lines[0] + lines[2])
    assert main(["status", "big", "--root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert f"{PLAIN_ABOVE}/{PLAIN_ABOVE + 1} done" in out and "lacks step 2 of 3" in out
