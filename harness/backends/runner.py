"""Run one trail inside its run directory: status bookkeeping, engine call, failure capture.

Every backend ends up here (local subprocess, Ray task, Slurm job), so a trail behaves the same wherever it runs.
An exception marks the trail failed with its reason; it never propagates to the sweep. The trail's lock
(harness.store.locks) is held for the whole run, so no two processes ever run the same trail: a second one is refused
(LockHeld) before it writes anything.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Protocol

from harness.engines import StepCallback, get_engine
from harness.errors import naming
from harness.store.journal import Journal
from harness.store.locks import trail_lock
from harness.store.rundir import RunDir
from harness.store.safe_files import open_regular
from harness.store.states import TrailState

STATUS_EVERY_S = 1.0


class LiveSyncer(Protocol):
    """What feeds MLflow while the trail runs (harness.tracking.live.LiveSync): started before, stopped after."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


MakeLiveSync = Callable[[Path], Optional[LiveSyncer]]


class _StatusWriter:
    """The trail's progress in status.json at most every STATUS_EVERY_S, the first a period after its start; the
    last step seen goes into the outcome record (`progress`). Why not every step, nor the first: each write is an
    fsynced file, and a trail that ends within a period needs none between its start and its outcome."""

    def __init__(self, run_dir: RunDir, extra: Optional[StepCallback]):
        self.run_dir, self.extra = run_dir, extra
        self.last = time.monotonic()  # the start was just recorded
        self.progress: Dict[str, int] = {}

    def __call__(self, step: int, total: int, metrics: dict) -> None:
        self.progress = {"step": step, "total_steps": total}
        now = time.monotonic()
        if now - self.last >= STATUS_EVERY_S:
            self.last = now
            # progress never overwrites an outcome another process recorded meanwhile (a scheduler's cancel)
            recorded = self.run_dir.status().state
            self.run_dir.write_status(recorded if recorded.terminal else TrailState.RUNNING, **self.progress)
        if self.extra is not None:
            self.extra(step, total, metrics)


def run_trail_dir(run_dir: Path | str, on_step: Optional[StepCallback] = None,
                  live_sync: Optional[MakeLiveSync] = None, node: Optional[str] = None) -> TrailState:
    """Run the trail whose config.yaml is in `run_dir`; return its final state.

    `node`: where the trail runs as its backend names it (a Ray node id, a Slurm node), recorded in status.json
    beside the host name (the default) so the sweep's view and tracking can tell trails on shared hosts apart.
    Raises harness.store.locks.LockHeld, having written nothing, when another live process is running this trail.
    """
    record = RunDir(run_dir)
    record.check()  # no file of the run dir is a link or a FIFO: nothing is written through one
    cfg = record.omega_config()
    with trail_lock(record.path):
        return _run_locked(record, cfg, on_step, live_sync, node)


def _run_locked(record: RunDir, cfg: Any, on_step: Optional[StepCallback],
                live_sync: Optional[MakeLiveSync], node: Optional[str] = None) -> TrailState:
    run_dir = record.path
    attempts = record.status().attempts + 1
    host = socket.gethostname()
    record.record_outcome(TrailState.RUNNING, "", started=time.time(), host=host, node=node or host,
                          pid=os.getpid(), attempts=attempts, ended=None)
    sync = live_sync(run_dir) if live_sync is not None else _default_live_sync(cfg, run_dir)
    journal = Journal(run_dir)
    if journal.cut_at is not None:  # records past a bad line were dropped: a checkpoint may be past them
        shutil.rmtree(record.checkpoint_dir, ignore_errors=True)
    progress = _StatusWriter(record, on_step)
    try:
        if sync is not None:
            sync.start()
        run = get_engine(cfg.engine.name)
        result = run(cfg, run_dir, journal, progress)
        state = TrailState(result.state)
        record.record_outcome(state, result.reason, **{**progress.progress, "step": result.step,
                                                       "unlogged": list(result.unlogged) or None})
    except KeyboardInterrupt:
        record.record_outcome(TrailState.CANCELLED, "interrupted", **progress.progress)
        raise
    except BaseException as exc:  # noqa: BLE001 - a trail's failure is recorded, never propagated
        reason = f"{type(exc).__name__}: {exc}"
        state = TrailState.FAILED
        try:
            with naming(record.log_path), open_regular(record.log_path, "a") as log:
                log.write(traceback.format_exc())
            record.record_outcome(state, reason, **progress.progress)
        except OSError:
            if not isinstance(exc, OSError):
                raise
            raise exc from None  # the disk is full: the first error is the one to report
    finally:
        _remove_own_temp_files(run_dir)
        journal.close()
        if sync is not None:
            sync.stop()
    return state


def _remove_own_temp_files(run_dir: Path) -> None:
    """Temp files this process left half-written (`.<name>.<pid>.tmp`, the harness's and engines' atomic-write
    convention), e.g. when the disk filled up mid-write; a finished write has already renamed its temp file."""
    for tmp in run_dir.glob(f"**/.*.{os.getpid()}.tmp"):
        try:
            tmp.unlink()
        except OSError:
            pass


def _default_live_sync(cfg: Any, run_dir: Path) -> Optional[LiveSyncer]:
    """The trail's own MLflow sync, if tracking is on and no sweep tracker follows it (tracking.live=sweep with a
    tracker running) — imported lazily: mlflow is slow to import."""
    tracking = cfg.get("tracking")
    if not tracking or not tracking.enabled or tracking.get("live", "sweep") == "off":
        return None
    from harness.store.locks import is_locked
    from harness.tracking.tracker import TRACKER_LOCK

    if tracking.get("live", "sweep") == "sweep" and is_locked(run_dir.parent / TRACKER_LOCK):
        return None
    try:
        from harness.tracking.live import LiveSync
    except ImportError:
        return None
    return LiveSync(run_dir, tracking)
