"""A trail's sync cursor (`<run_dir>/mlflow.json`) and the lock that gives it one writer at a time.

The cursor holds, per tracking URI: the run id, the last step known to be in MLflow (`synced_step`) and an
*in-flight* step range written just before a batch is sent (harness.tracking.sync explains the protocol). Why a lock:
the sweep's tracker, a trail's sidecar and `harness sync` from a shell may all reach the same trail at once.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator

from harness.store.rundir import read_json_object, write_json_atomic
from harness.store.safe_files import open_regular

CURSOR_NAME = "mlflow.json"
LOCK_NAME = ".mlflow.lock"


def read_cursor(run_dir: Path, uri: str) -> Dict[str, Any]:
    """This URI's entry of the trail's cursor (empty when the trail was never synced there)."""
    entry = (_read(Path(run_dir) / CURSOR_NAME) or {}).get(uri)
    return dict(entry) if isinstance(entry, dict) else {}


def _read(path: Path) -> Dict[str, Any]:
    return read_json_object(path, "sync cursor", "remove it: the next sync verifies what MLflow holds and goes on") \
        or {}


def write_cursor(run_dir: Path, uri: str, cursor: Dict[str, Any]) -> None:
    """Atomic rewrite of this URI's entry (the caller holds the trail's sync lock)."""
    path = Path(run_dir) / CURSOR_NAME
    data = _read(path)
    data[uri] = cursor
    write_json_atomic(path, data)


@contextmanager
def sync_lock(run_dir: Path) -> Iterator[None]:
    """One syncer per trail at a time (blocking: a second syncer waits for the first to finish its pass)."""
    with open_regular(Path(run_dir) / LOCK_NAME, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
