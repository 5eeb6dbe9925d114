"""What a sweep command does for MLflow: the summary run, who follows the trails while they run, the final catch-up
and the report attached to the summary run.

With tracking.live=sweep and a backend whose trails run on this machine, one tracker process
(harness.tracking.tracker) does all three, so the sweep process never imports mlflow; a tracker that dies, or whose
heartbeat stops (SIGSTOP, a hang), is killed if need be and started again (at most MAX_RESTARTS times). The sweep's
end gives MLflow `deadline_s` in all, whatever the number of trails. Otherwise — live=trail|off, a backend whose
trails run elsewhere (their own sync takes over), or no tracker could be started — the sweep makes the summary run
itself and catches MLflow up when it ends, as `harness sync` would. Tracking trouble never stops a sweep: it is
logged, and the next sync catches up.
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

from harness.tracking.config import plain_config

# What tracking needs (the MLflow client's URI rules, the tracker's protocol) is imported where it is used: a sweep
# with tracking off makes a SweepTracking that does nothing, and imports no more than this module.

log = logging.getLogger("harness.tracking")

MAX_RESTARTS = 3
READY_TIMEOUT_S = 60.0   # a new tracker first waits for an earlier one's final pass (tracker.lock)
LOG_NAME = "tracking.log"
WRAP_UP_S = 15.0         # beyond deadline_s: the tracker's report upload and summary run after its final pass


def _wait_ready(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Whether the tracker said `ready` (it holds the sweep's tracker lock) within `timeout_s`."""
    from harness.tracking.tracker import READY

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

    def uri_fields(self) -> dict:
        """What sweep.json records of the store before anything is tracked: the URI resolved once, here, in the
        directory the sweep is launched from; every syncer and the report's MLflow reader use it."""
        if not self.cfg.enabled:
            return {}
        from harness.tracking.client import resolve_uri

        return {"mlflow_uri": resolve_uri(self.cfg.uri)}

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
        deadline = time.monotonic() + float(self.cfg.deadline_s)
        if self._proc is not None:
            code = self._stop(outcome, wait=True, report_dir=report_dir, deadline=deadline)
            if code == 0 or code is None:  # None: still working (beating) at the deadline; it ends on its own
                return
            log.warning("the sweep's MLflow tracker ended with code %s; catching up from this process", code)
        from harness.tracking.sweep_run import attach_report, finish_sweep_run
        from harness.tracking.sync import sync_sweep

        results = sync_sweep(self.sweep_dir, deadline=deadline)
        missed = [r for r in results if r.error]
        if missed:
            log.warning("MLflow: %d of %d trails not synced before the sweep's deadline (%g s) or for an error (%s: "
                        "%s); `harness sync %s` catches up", len(missed), len(results), self.cfg.deadline_s,
                        missed[0].run_dir.name, missed[0].error, self.sweep_dir)
            return
        if report_dir is not None:
            attach_report(self.sweep_dir, report_dir)
        finish_sweep_run(self.sweep_dir, str(outcome))

    def close(self) -> None:
        """Stop following without ending the summary run (an interrupted sweep). Returns at once: the tracker makes
        its final pass on its own, after the trails' workers have recorded how they ended."""
        self._stop(None, wait=False)

    # ------------------------------------------------------------ the tracker process
    def _command(self) -> list[str]:
        from harness.tracking.client import resolve_uri

        cfg = dict(asdict(self.cfg), uri=resolve_uri(self.cfg.uri))  # resolved here, in the sweep's cwd
        return [sys.executable, "-m", "harness.tracking.tracker", str(self.sweep_dir.resolve()), "--config",
                json.dumps(cfg), "--parent-pid", str(os.getpid())]

    def _spawn(self) -> bool:
        """Start a tracker and wait until it holds the sweep's tracker lock (the caller holds self._lock)."""
        from harness.store.safe_files import open_regular

        try:
            with open_regular(self.sweep_dir / LOG_NAME, "ab") as err:
                proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                        start_new_session=True)
        except OSError as exc:
            log.warning("could not start the sweep's MLflow tracker: %s", exc)
            return False
        try:
            ready = _wait_ready(proc, READY_TIMEOUT_S)
        except BaseException:  # Ctrl-C while it starts: it is not left behind
            proc.kill()
            proc.wait()
            raise
        if not ready:
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
            code = self._wait(proc)
            if code is None:  # stopping: _stop waits for it now
                return
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

    def _silent(self, proc: subprocess.Popen) -> bool:
        """Whether `proc` holds the tracker lock and has not beaten for heartbeat_timeout_s."""
        from harness.store.locks import read_holder
        from harness.tracking.tracker import TRACKER_LOCK

        holder = read_holder(self.sweep_dir / TRACKER_LOCK)
        try:
            return int(holder.get("pid") or 0) == proc.pid and \
                time.time() - float(holder.get("beat", holder["since"])) > float(self.cfg.heartbeat_timeout_s)
        except (KeyError, TypeError, ValueError):
            return False

    def _wait(self, proc: subprocess.Popen, deadline: Optional[float] = None) -> Optional[int]:
        """The tracker's exit code; a tracker whose heartbeat stopped is killed (SIGKILL works on a stopped process,
        and the kernel frees its lock). None at `deadline`, or when the sweep starts stopping (watchdog only)."""
        while True:
            try:
                return proc.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
            if self._silent(proc):
                log.warning("the sweep's MLflow tracker (PID %d) has not beaten for over %g s (stopped or hung): "
                            "killing it", proc.pid, self.cfg.heartbeat_timeout_s)
                proc.kill()
                return proc.wait()
            if deadline is not None and time.monotonic() > deadline:
                return None
            if deadline is None and self._stopping:
                return None

    def _stop(self, outcome: Optional[str], wait: bool, report_dir: Optional[Path] = None,
              deadline: Optional[float] = None) -> Optional[int]:
        """Tell the tracker the report and outcome (if any) and close its pipe; with `wait`, its exit code (None: not
        yet)."""
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is None:
            return None
        from harness.tracking.tracker import FINISH, REPORT

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
        until = (deadline if deadline is not None else time.monotonic() + float(self.cfg.deadline_s)) + WRAP_UP_S
        code = self._wait(proc, until)
        if code is None:
            log.warning("the sweep's MLflow tracker is still syncing at the sweep's MLflow deadline (%g s); it "
                        "finishes on its own (`harness sync` catches up whatever it misses)", self.cfg.deadline_s)
        return code
