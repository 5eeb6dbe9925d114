"""Which steps each journal of a sweep holds, cached in `<sweep dir>/.journal-index.json` by the journal's size,
mtime and inode. Why: `harness status` checks every finished trail for lost records, and reading 1,000 journals
takes seconds each time it is asked; a finished trail's journal does not change (a rerun that repairs it rewrites
it, which changes its size, mtime or inode), so each is read once.

The cache is only ever a copy: a missing, stale or unreadable index means reading the journal, and an index that
cannot be written (a read-only root) is simply not kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from harness.errors import HarnessError
from harness.store.journal import JOURNAL_NAME
from harness.store.rundir import RunDir, Status, read_json, write_json_atomic
from harness.store.safe_files import check_regular

INDEX_NAME = ".journal-index.json"
VERSION = 1
Ranges = List[Tuple[int, int]]


def step_ranges(steps: Sequence[int]) -> Ranges:
    """Distinct steps as sorted inclusive runs: [1, 2, 3, 5] → [(1, 3), (5, 5)]."""
    import numpy as np

    distinct = np.unique(np.asarray(steps, dtype=np.int64))
    if not len(distinct):
        return []
    breaks = np.flatnonzero(np.diff(distinct) != 1)
    starts = np.concatenate(([distinct[0]], distinct[breaks + 1]))
    ends = np.concatenate((distinct[breaks], [distinct[-1]]))
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=False)]


def missing_in(ranges: Ranges, last: int) -> List[int]:
    """Steps 1..`last` outside `ranges`."""
    missing: List[int] = []
    expected = 1
    for low, high in ranges:
        if low > last:
            break
        missing.extend(range(expected, min(low, last + 1)))
        expected = max(expected, high + 1)
    missing.extend(range(expected, last + 1))
    return missing


def journal_key(run_dir: Path | str) -> Optional[List[int]]:
    """What identifies the journal's content: its size, mtime and inode (None: no journal)."""
    path = Path(run_dir) / JOURNAL_NAME
    if not check_regular(path):  # a link or a FIFO is refused, never followed
        return None
    st = path.lstat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class JournalIndex:
    """The step summaries of one sweep's journals; `save()` keeps what was learnt for the next reader."""

    def __init__(self, sweep_dir: Path | str):
        self.path = Path(sweep_dir) / INDEX_NAME
        try:
            data = read_json(self.path)
        except (OSError, HarnessError):  # unreadable, not UTF-8, a link: the index is only a copy
            data = None
        entries = data.get("trails") if isinstance(data, dict) and data.get("version") == VERSION else None
        self._entries: Dict[str, Any] = entries if isinstance(entries, dict) else {}
        self._changed = False

    def ranges(self, run_dir: Path | str) -> Ranges:
        """The steps the trail's journal holds, as runs: from the index if the journal is as it was when indexed,
        else read (column-wise) and indexed."""
        run_dir = Path(run_dir)
        key = journal_key(run_dir)
        entry = self._entries.get(run_dir.name)
        if key is not None and isinstance(entry, dict) and entry.get("key") == key:
            try:
                return [(int(a), int(b)) for a, b in entry["ranges"]]
            except (KeyError, TypeError, ValueError):  # a damaged entry is a miss
                pass
        from harness.store.journal_columns import read_steps

        return self.learn(run_dir, key, read_steps(run_dir))

    def learn(self, run_dir: Path | str, key: Optional[List[int]], steps: Sequence[int]) -> Ranges:
        """Index `steps`, read from the journal whose key was `key` before the read began; kept only if the journal
        has not changed since (a running trail appends while it is read)."""
        ranges = step_ranges(steps)
        if key is not None and journal_key(run_dir) == key:
            self._entries[Path(run_dir).name] = {"key": key, "ranges": [list(r) for r in ranges]}
            self._changed = True
        return ranges

    def lost_steps(self, run_dir: Path | str, status: Optional[Status] = None) -> List[int]:
        """RunDir.lost_steps through the index: for a finished trail, the steps up to its final step that its
        journal lacks (empty: complete)."""
        record = RunDir(run_dir)
        status = record.status() if status is None else status
        return record.lost_steps(self.ranges(run_dir), status) if status.state.finished else []

    def save(self) -> None:
        if not self._changed:
            return
        try:
            write_json_atomic(self.path, {"version": VERSION, "trails": self._entries})
            self._changed = False
        except (OSError, HarnessError):  # a read-only or full root, a link: the next reader reads the journals again
            pass

