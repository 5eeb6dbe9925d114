"""Reading a journal past a step (what a follower re-reads on every pass) gives the records a full read gives past
that step, torn or blank lines included, without parsing the lines at or below it."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_journal_columns import write_damaged_journal

from harness.store import journal as journal_mod
from harness.store.journal import Journal, iter_records


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(st.integers(min_value=1, max_value=30), max_size=25),
       after=st.integers(min_value=-1, max_value=31), cut=st.integers(min_value=0, max_value=2000),
       damage=st.sampled_from(["none", "cut", "blank"]))
def test_past_a_step_as_a_full_read_filtered(tmp_path_factory, steps: list[int], after: int, cut: int,
                                             damage: str) -> None:
    run_dir = tmp_path_factory.mktemp("j")
    write_damaged_journal(run_dir, steps, cut, damage, lambda s: {"e": "nan"})
    past = [json.dumps(r) for r in iter_records(run_dir, after=after)]  # as text: "nan" reads as NaN, never equal
    assert past == [json.dumps(r) for r in iter_records(run_dir) if r["step"] > after]


def test_lines_at_or_below_the_step_are_not_parsed(tmp_path: Path, monkeypatch) -> None:
    with Journal(tmp_path) as journal:
        for step in range(1, 101):
            journal.append(step, {"train/loss": step / 3, "eval/reward": float("nan")}, time=1000.0 + step)
    parsed = []
    real = journal_mod.json.loads

    def counting(text: str):
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(journal_mod.json, "loads", counting)
    assert [r["step"] for r in iter_records(tmp_path, after=97)] == [98, 99, 100]
    assert len(parsed) == 3
