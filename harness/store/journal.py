"""The per-trail metric journal: one JSON line per step, appended and flushed as the trail goes.

It is the source of truth for every metric: MLflow and reports are fed from it. A line that a crash cut short is
ignored when reading, and resume truncates the journal back to the checkpoint so no step is ever written twice.
The writer also holds that line itself: a step appended again (a trail restarted from scratch, or from a
checkpoint older than its last record) first drops the records from that step on. A writer that opens a journal
with a bad line anywhere (a torn or zero-filled line, the first included) cuts it there: readers stop at the first
bad line, so what follows it is lost to them anyway, and the trail writes those steps again.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Union

from harness.errors import naming
from harness.store.atomic import atomic_write
from harness.store.safe_files import open_regular

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
        self.cut_at = self._repair()
        self._last = last_step(self.path.parent)
        self._fh = open_regular(self.path, "a")

    def _repair(self) -> Optional[int]:
        """Cut the journal at its first bad line (torn by a kill mid-write, zero-filled by a crash, not a record), so
        readers see every line and the next append starts on a fresh one. Returns the byte offset cut at, None when
        the journal was sound (a torn last line alone is cut too, and not reported)."""
        try:
            fh = open_regular(self.path, "r+b")
        except FileNotFoundError:
            return None
        with fh:
            data = fh.read()
            end = good_prefix(data)
            if end == len(data):
                return None
            fh.truncate(end)
            os.fsync(fh.fileno())
        return end if data[end:].count(b"\n") else None

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
        self._fh = open_regular(self.path, "a")
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


def _record(line: bytes) -> Optional[dict]:
    """A line's record, or None when it is not one (corrupt, blank, zero-filled, or JSON that is not an object with
    an integer step)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or type(record.get("step")) is not int:
        return None
    return record


def good_prefix(data: bytes) -> int:
    """The length of the journal's leading run of complete, sound records (what iter_records reads)."""
    end = 0
    while True:
        newline = data.find(b"\n", end)
        if newline < 0 or _record(data[end:newline]) is None:
            return end
        end = newline + 1


def iter_records(run_dir: Path | str, after: Optional[int] = None) -> Iterator[dict]:
    """Yield the journal's complete records in order; a torn last line is skipped.

    `after`: records at or below that step are skipped unparsed (a follower that re-reads a growing journal on
    every pass then parses only what is new)."""
    path = Path(run_dir) / JOURNAL_NAME
    try:
        fh = open_regular(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            if after is not None:
                step = _leading_step(raw.decode("utf-8", "replace"))
                if step is not None and step <= after:
                    continue
            record = _record(raw)
            if record is None:  # corrupt, or valid JSON but not a record: as bad as a torn line
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
        with open_regular(path, "rb") as fh:
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
    else column-wise (harness.store.journal_columns, imported here only: a trail never asks); both read the same
    steps."""
    try:
        size = (Path(run_dir) / JOURNAL_NAME).stat().st_size
    except FileNotFoundError:
        size = 0
    if _line_read[0] + size <= LINE_READ_BUDGET and "harness.store.journal_columns" not in sys.modules:
        _line_read[0] += size
        seen = {int(record["step"]) for record in iter_records(run_dir)}
    else:
        from harness.store.journal_columns import read_steps

        seen = set(read_steps(run_dir))
    return [s for s in range(1, int(last) + 1) if s not in seen]


def read_records(run_dir: Path | str) -> List[dict]:
    return list(iter_records(run_dir))


def truncate_after(run_dir: Path | str, step: int) -> int:
    """Keep only records with step <= `step` (atomic rewrite). Returns how many records remain."""
    path = Path(run_dir) / JOURNAL_NAME
    if not os.path.lexists(path):
        return 0
    kept = [r for r in iter_records(run_dir) if int(r["step"]) <= step]
    with atomic_write(path) as fh:
        for record in kept:
            fh.write(json.dumps({k: _clean(v) if k not in ("step",) else v for k, v in record.items()}) + "\n")
    return len(kept)
