"""`harness status`: what each trail of a sweep is doing now, from its run dir and, for a job that outlives the
command that submitted it (Slurm, Ray), from its backend; a running trail whose process died without a word is
recorded interrupted here, so that the table never shows a dead trail as running."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Dict, List

from harness import plugins
from harness.errors import HarnessError
from harness.orchestration.progress import trail_row
from harness.store.locks import trail_lock
from harness.store.rundir import RunDir
from harness.store.states import ACTIVE, TrailState
from harness.store.sweepdir import trail_dirs


def _poll_detached(run_dir: Path, state: TrailState) -> TrailState:
    """What the trail's backend says now, for backends whose jobs outlive the command that submitted them."""
    name = RunDir(run_dir).meta().backend
    plugin = plugins.backends().get(name) if name else None
    poll = plugin.load_poll_detached() if plugin is not None else None
    return TrailState(poll(run_dir)) if poll is not None else state


def mark_interrupted(run_dir: Path) -> bool:
    """A trail recorded as running on this host whose lock is free: its process died without a word (SIGKILL, OOM
    killer). Record it interrupted (under its lock, so a worker starting now is never overwritten)."""
    record = RunDir(run_dir)
    status = record.status()
    if status.state != TrailState.RUNNING or (status.host or socket.gethostname()) != socket.gethostname():
        return False  # on another host the lock may not be visible from here: the scheduler's word counts
    lock = trail_lock(run_dir)
    try:
        lock.acquire()
    except (HarnessError, OSError):
        return False
    try:
        status = record.status()
        if status.state != TrailState.RUNNING:
            return False
        try:
            record.record_outcome(TrailState.INTERRUPTED,
                                  f"its process (PID {status.pid or '?'}) ended without recording an outcome; "
                                  f"a rerun of the sweep resumes it")
        except OSError:
            pass  # a read-only or full root: shown as interrupted all the same
        return True
    finally:
        lock.release()


def status_rows(sweep_dir: Path) -> List[Dict[str, Any]]:
    """A row per trail for `harness status`: what its run dir says, the scheduler's word for a detached job still
    active, and a running trail whose process died without a word recorded interrupted."""
    from harness.store.journal_index import JournalIndex

    index = JournalIndex(sweep_dir)  # finished trails' journals are read once, not on every status
    rows = []
    for run_dir in trail_dirs(sweep_dir):
        row = trail_row(run_dir, index=index)
        if row["state"] in ACTIVE:
            try:
                row["state"] = _poll_detached(run_dir, row["state"])
            except Exception as exc:  # noqa: BLE001
                row["reason"] = f"scheduler not reachable: {exc}"
        if row["state"] == TrailState.RUNNING and mark_interrupted(run_dir):
            row = trail_row(run_dir, index=index) | {"state": TrailState.INTERRUPTED.value}
        rows.append(row)
    index.save()
    return rows
