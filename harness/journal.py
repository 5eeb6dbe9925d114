"""The per-trail metric journal: one JSON line per step, appended and flushed as the trail goes.

It is the source of truth for every metric: MLflow and reports are fed from it. A line that a crash cut short is
ignored when reading, and resume truncates the journal back to the checkpoint so no step is ever written twice.
The writer also holds that line itself: a step appended again (a trail restarted from scratch, or from a
checkpoint older than its last record) first drops the records from that step on.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Union

from harness.atomic import atomic_write
from harness.errors import naming

JOURNAL_NAME = "journal.jsonl"


def _clean(value: float) -> Union[float, str]:
    """JSON has no NaN/inf: store them as strings so a diverged step is still recorded faithfully."""
    value = float(value)
    if math.isfinite(value):
        return value
    return str(value)  # "nan", "inf", "-inf"


class Journal:
    """Append-only JSONL writer of {"step": k, "time": t, <metric>: value, ...} records."""

    def __init__(self, run_dir: Path | str):
        self.path = Path(run_dir) / JOURNAL_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._last = last_step(self.path.parent)
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        """Drop a partial last line left by a kill mid-write, so the next append starts on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data.endswith(b"\n"):
                return
            cut = data.rfind(b"\n") + 1
            fh.truncate(cut)

    def append(self, step: int, metrics: Mapping[str, float], time: Optional[float] = None) -> None:
        if self._last is not None and int(step) <= self._last:
            self.rewind(int(step) - 1)
        record: Dict[str, object] = {"step": int(step)}
        if time is not None:
            record["time"] = float(time)
        for key, value in metrics.items():
            record[key] = _clean(value)
        with naming(self.path):
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()
        self._last = int(step)

    def rewind(self, step: int) -> int:
        """Resume from a checkpoint at `step`: drop later records and keep appending to the rewritten file.
        Returns how many records remain."""
        self.close()
        kept = truncate_after(self.path.parent, step)
        self._last = last_step(self.path.parent)
        self._fh = open(self.path, "a", encoding="utf-8")
        return kept

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_STEP_FIELD = '{"step": '  # how the Journal starts every line


def _leading_step(line: str) -> Optional[int]:
    """The step of a line as the Journal writes it (its first field), read without parsing the JSON."""
    if not line.startswith(_STEP_FIELD):
        return None
    end = line.find(",", len(_STEP_FIELD))
    try:
        return int(line[len(_STEP_FIELD):end if end > 0 else line.find("}")])
    except ValueError:
        return None


def iter_records(run_dir: Path | str, after: Optional[int] = None) -> Iterator[dict]:
    """Yield the journal's complete records in order; a torn last line is skipped.

    `after`: records at or below that step are skipped unparsed (a follower that re-reads a growing journal on
    every pass then parses only what is new)."""
    path = Path(run_dir) / JOURNAL_NAME
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            if after is not None:
                step = _leading_step(line)
                if step is not None and step <= after:
                    continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(record, dict):  # valid JSON but not a record: as corrupt as a torn line
                break
            for key, value in record.items():
                if isinstance(value, str) and key not in ("step",):
                    try:
                        record[key] = float(value)
                    except ValueError:
                        pass
            yield record


def last_step(run_dir: Path | str) -> Optional[int]:
    """The step of the journal's last complete record (None when it has none)."""
    last = None
    for record in iter_records(run_dir):
        last = int(record["step"])
    return last


def tail_step(run_dir: Path | str, window: int = 65536) -> Optional[int]:
    """The step of the journal's last complete record, read from the end of the file (None when there is none).

    Why: a follower of many trails asks this of each one without reading whole journals."""
    path = Path(run_dir) / JOURNAL_NAME
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - window))
            lines = fh.read().split(b"\n")[:-1]  # what follows the last newline is a torn record
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue  # the window's first line may be cut
    return None if size <= window else last_step(run_dir)


# Bytes of journals missing_steps reads line by line in a process before it turns to pyarrow: below it, reading the
# lines costs less than importing pyarrow (about 0.2 s), so a short sweep's end never pays that import.
LINE_READ_BUDGET = 4 * 1024 * 1024
_line_read = [0]


def missing_steps(run_dir: Path | str, last: int) -> List[int]:
    """Steps 1..`last` that the journal does not hold (lost or torn lines; records after a corrupt line count as
    lost, since readers stop there). Read line by line while this process has read less than LINE_READ_BUDGET so,
    else column-wise (harness.journal_columns, imported here only: a trail never asks); both read the same steps."""
    try:
        size = (Path(run_dir) / JOURNAL_NAME).stat().st_size
    except FileNotFoundError:
        size = 0
    if _line_read[0] + size <= LINE_READ_BUDGET and "harness.journal_columns" not in sys.modules:
        _line_read[0] += size
        seen = {int(record["step"]) for record in iter_records(run_dir)}
    else:
        from harness.journal_columns import read_steps

        seen = set(read_steps(run_dir))
    return [s for s in range(1, int(last) + 1) if s not in seen]


def read_records(run_dir: Path | str) -> List[dict]:
    return list(iter_records(run_dir))


def truncate_after(run_dir: Path | str, step: int) -> int:
    """Keep only records with step <= `step` (atomic rewrite). Returns how many records remain."""
    path = Path(run_dir) / JOURNAL_NAME
    if not path.exists():
        return 0
    kept = [r for r in iter_records(run_dir) if int(r["step"]) <= step]
    with atomic_write(path) as fh:
        for record in kept:
            fh.write(json.dumps({k: _clean(v) if k not in ("step",) else v for k, v in record.items()}) + "\n")
    return len(kept)
