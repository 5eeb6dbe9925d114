"""What a sweep command does for MLflow: the summary run, who follows the trails while they run, the final catch-up
and the report attached to the summary run.

With tracking.live=sweep and a backend whose trails run on this machine, one tracker process
(harness.tracking.tracker) does all three, so the sweep process never imports mlflow; a tracker that dies is started
again (at most MAX_RESTARTS times). Otherwise — live=trail|off, a backend whose trails run elsewhere (their own sync
takes over), or no tracker could be started — the sweep makes the summary run itself and catches MLflow up when it
ends, as `harness sync` would. Tracking trouble never stops a sweep: it is logged, and the next sync catches up.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from harness.tracking.client import resolve_uri
from harness.tracking.config import plain_config
from harness.tracking.tracker import FINISH, READY, REPORT

log = logging.getLogger("harness.tracking")

MAX_RESTARTS = 3
READY_TIMEOUT_S = 60.0   # a new tracker first waits for an earlier one's final pass (tracker.lock)
LOG_NAME = "tracking.log"


def _wait_ready(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Whether the tracker said `ready` (it holds the sweep's tracker lock) within `timeout_s`."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, min(1.0, deadline - time.monotonic())))
        if ready:
            return proc.stdout.readline().decode(errors="replace").strip() == READY
        if proc.poll() is not None:
            return False
    return False


class SweepTracking:
    """MLflow bookkeeping of one sweep command: start() before the trails launch, then finish(outcome) when they
    have all ended, or close() when the sweep stops early."""

    def __init__(self, tracking_cfg: Any, sweep_dir: Path | str, same_host: bool):
        self.raw = tracking_cfg
        self.cfg = plain_config(tracking_cfg)
        self.sweep_dir = Path(sweep_dir)
        self.use_tracker = bool(self.cfg.enabled and self.cfg.live == "sweep" and same_host)
        self.restarts = 0
        self._proc: Optional[subprocess.Popen] = None
        self._stopping = False
        self._lock = threading.Lock()

    @property
    def tracker_pid(self) -> Optional[int]:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    # ------------------------------------------------------------ the sweep's calls
    def start(self) -> None:
        """Start the tracker (which makes the summary run), else make the summary run here."""
        if not self.cfg.enabled:
            return
        if self.use_tracker:
            with self._lock:
                started = self._spawn()
            if started:
                threading.Thread(target=self._watchdog, name="tracker-watchdog", daemon=True).start()
                return
            log.warning("the sweep's MLflow tracker did not start (see %s); each trail syncs itself",
                        self.sweep_dir / LOG_NAME)
        from harness.tracking.sweep_run import ensure_sweep_run

        ensure_sweep_run(self.sweep_dir, self.raw)

    def finish(self, outcome: str, report_dir: Optional[Path] = None) -> None:
        """Final sync of every trail, the report (a directory) attached to the summary run, and the end of the
        summary run with the sweep's outcome."""
        if not self.cfg.enabled:
            return
        if self._proc is not None:
            code = self._stop(outcome, wait=True, report_dir=report_dir)
            if code == 0 or code is None:  # None: still finishing after the wait; it ends the run on its own
                return
            log.warning("the sweep's MLflow tracker ended with code %s; catching up from this process", code)
        from harness.tracking.sweep_run import attach_report, finish_sweep_run
        from harness.tracking.sync import sync_sweep

        sync_sweep(self.sweep_dir)
        if report_dir is not None:
            attach_report(self.sweep_dir, report_dir)
        finish_sweep_run(self.sweep_dir, str(outcome))

    def close(self) -> None:
        """Stop following without ending the summary run (an interrupted sweep). Returns at once: the tracker makes
        its final pass on its own, after the trails' workers have recorded how they ended."""
        self._stop(None, wait=False)

    # ------------------------------------------------------------ the tracker process
    def _command(self) -> list[str]:
        cfg = dict(asdict(self.cfg), uri=resolve_uri(self.cfg.uri))  # resolved here, in the sweep's cwd
        return [sys.executable, "-m", "harness.tracking.tracker", str(self.sweep_dir), "--config", json.dumps(cfg),
                "--parent-pid", str(os.getpid())]

    def _spawn(self) -> bool:
        """Start a tracker and wait until it holds the sweep's tracker lock (the caller holds self._lock)."""
        try:
            with open(self.sweep_dir / LOG_NAME, "ab") as err:
                proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                        start_new_session=True)
        except OSError as exc:
            log.warning("could not start the sweep's MLflow tracker: %s", exc)
            return False
        if not _wait_ready(proc, READY_TIMEOUT_S):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            return False
        self._proc = proc
        return True

    def _watchdog(self) -> None:
        """Start the tracker again when it dies while the sweep runs (its cursors make that safe)."""
        while True:
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            with self._lock:
                if self._stopping or proc is not self._proc:
                    return
                if self.restarts >= MAX_RESTARTS:
                    log.warning("the sweep's MLflow tracker died %d times; the sweep catches MLflow up when it ends",
                                self.restarts + 1)
                    self._proc = None
                    return
                self.restarts += 1
                log.warning("the sweep's MLflow tracker ended with code %s while the sweep runs; starting it again",
                            code)
                if not self._spawn():
                    self._proc = None
                    return

    def _stop(self, outcome: Optional[str], wait: bool, report_dir: Optional[Path] = None) -> Optional[int]:
        """Tell the tracker the report and outcome (if any) and close its pipe; with `wait`, its exit code (None: not
        yet)."""
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is None:
            return None
        try:
            assert proc.stdin is not None
            if report_dir is not None:
                proc.stdin.write(f"{REPORT} {Path(report_dir).resolve()}\n".encode())
            if outcome is not None:
                proc.stdin.write(f"{FINISH} {outcome}\n".encode())
            proc.stdin.close()
        except OSError:
            pass  # it is gone already: its exit code says how it ended
        if not wait:
            return None
        try:
            return proc.wait(float(self.cfg.stop_timeout_s) + 30.0)
        except subprocess.TimeoutExpired:
            log.warning("the sweep's MLflow tracker is still syncing; it finishes on its own")
            return None
