"""The column-wise journal reader gives exactly what the line reader gives: the complete records up to the first torn
or corrupt line, "nan"/"inf" strings as floats — whatever a crash or a disk left in the file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.store.journal import JOURNAL_NAME, Journal, read_records
from harness.store.journal_columns import read_steps, read_table


def _same(run_dir: Path) -> None:
    records = read_records(run_dir)
    assert read_steps(run_dir) == [r["step"] for r in records]
    table = read_table(run_dir).to_pandas()
    expected = pd.DataFrame.from_records(records) if records else pd.DataFrame({"step": []})
    assert list(table["step"]) == list(expected["step"])
    for column in expected.columns:
        got, want = table[column].tolist(), expected[column].tolist()
        assert all((isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b
                   for a, b in zip(got, want, strict=False)), column


def _journal(tmp_path: Path, steps: int = 5) -> Path:
    with Journal(tmp_path) as journal:
        for step in range(1, steps + 1):
            metrics = {"train/loss": step / 3}
            if step % 2 == 0:
                metrics["eval/reward"] = step / 10
            journal.append(step, metrics, time=1000.0 + step)
    return tmp_path


def _rewrite(run_dir: Path, transform) -> None:
    path = run_dir / JOURNAL_NAME
    path.write_bytes(transform(path.read_bytes()))


def test_a_clean_journal_is_read_column_wise(tmp_path: Path) -> None:
    run_dir = _journal(tmp_path)
    _same(run_dir)
    assert read_table(run_dir).column_names[:3] == ["step", "time", "train/loss"]


def test_absent_and_empty_journals_have_no_records(tmp_path: Path) -> None:
    assert read_steps(tmp_path) == [] and read_table(tmp_path).num_rows == 0
    (tmp_path / JOURNAL_NAME).write_text("")
    _same(tmp_path)


def test_a_torn_last_line_is_not_a_record(tmp_path: Path) -> None:
    run_dir = _journal(tmp_path)
    _rewrite(run_dir, lambda data: data[:-7])
    _same(run_dir)
    assert read_steps(run_dir) == [1, 2, 3, 4]


def test_reading_stops_at_a_corrupt_or_blank_line_as_the_line_reader_does(tmp_path: Path) -> None:
    for name, transform in {
        "corrupt": lambda data: data.replace(b'{"step": 3', b'{"step": 3 oops', 1),
        "blank": lambda data: data.replace(b'\n{"step": 3', b'\n\n{"step": 3', 1),
        "spaces": lambda data: data.replace(b'\n{"step": 3', b'\n  \t\n{"step": 3', 1),
        "array": lambda data: data.replace(b'{"step": 3', b'[3]\n{"step": 3', 1),
        "NaN literal": lambda data: data.replace(b'{"step": 3, ', b'{"step": 3, "x": NaN, ', 1) + b"x\n",
    }.items():
        run_dir = tmp_path / name
        run_dir.mkdir()
        _journal(run_dir)
        _rewrite(run_dir, transform)
        if name == "NaN literal":  # json.loads takes it, pyarrow does not: the line reader decides
            _same(run_dir)
            assert read_steps(run_dir) == [1, 2, 3, 4, 5]
            continue
        _same(run_dir)
        assert read_steps(run_dir) == [1, 2], name


def test_a_diverged_trails_nan_strings_are_floats(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.append(1, {"train/loss": 0.5})
        journal.append(2, {"train/loss": float("nan"), "train/grad_norm": float("inf")})
    assert '"nan"' in (tmp_path / JOURNAL_NAME).read_text()
    _same(tmp_path)
    loss = read_table(tmp_path).to_pandas()["train/loss"].tolist()
    assert loss[0] == 0.5 and math.isnan(loss[1])


def write_damaged_journal(run_dir: Path, steps: list[int], cut: int, damage: str,
                          every_third: Callable[[int], dict]) -> None:
    """A journal of one record per step (metric m, or `every_third(step)` at steps divisible by 3), then damaged at
    byte `cut`: "none", "cut" (torn there), "garbage" (an unparsable line inserted) or "blank" (an empty line)."""
    lines = [json.dumps({"step": s, "time": 1000.0 + i, **({"m": s / 7} if s % 3 else every_third(s))})
             for i, s in enumerate(steps)]
    data = "".join(line + "\n" for line in lines).encode()
    at = min(cut, len(data))
    if damage == "cut":
        data = data[:at]
    elif damage == "garbage":
        data = data[:at] + b"}{x\n" + data[at:]
    elif damage == "blank":
        data = data[:at] + b"\n" + data[at:]
    (run_dir / JOURNAL_NAME).write_bytes(data)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(min_value=1, max_value=30), max_size=25),
       cut=st.integers(min_value=0, max_value=2000), damage=st.sampled_from(["none", "cut", "garbage", "blank"]))
def test_any_journal_reads_the_same_both_ways(tmp_path_factory, steps: list[int], cut: int, damage: str) -> None:
    run_dir = tmp_path_factory.mktemp("j")
    write_damaged_journal(run_dir, steps, cut, damage, lambda s: {"e": -s})
    _same(run_dir)
