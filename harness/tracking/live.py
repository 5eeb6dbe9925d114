"""Live MLflow sync of a running trail: every `sync_every_s`, new journal records go to MLflow in batches.

The trail never waits on MLflow: start() returns at once, a failing tick is logged once to `<run_dir>/log.txt` and
retried on the next tick, HTTP calls are bounded, and stop() waits for the final sync at most `stop_timeout_s`.
Whatever is missed is caught up by `harness sync` from the cursor.

Two modes (tracking.live_mode). "process" (default): a sidecar `python -m harness.tracking.live RUN_DIR ...`, so
mlflow's import (~2.5 s of CPU) and its sqlite inserts never run in the trail's process or hold its GIL; the sidecar
does a final sync and exits when its stdin (a pipe from the trail) closes — stop(), or the trail process dying.
"thread": a daemon thread in the trail's process (no extra process; used by tests and where processes are scarce).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, List, Optional, Tuple

from harness.errors import HarnessError
from harness.store.journal import JOURNAL_NAME
from harness.store.safe_files import open_regular
from harness.tracking.config import TrackingConfig, plain_config
from harness.tracking.sync import sync_trail
from harness.tracking.target import trail_target


def _mtime(path: Path) -> Tuple[int, int]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except FileNotFoundError:
        return -1, -1


class LiveSync:
    """Journal → MLflow pusher for one trail (constructed and driven by harness.backends.runner)."""

    def __init__(self, run_dir: Path | str, tracking_cfg: Any, parent_pid: Optional[int] = None):
        self.run_dir = Path(run_dir)
        self.cfg = plain_config(tracking_cfg)
        self.every_s = max(0.01, float(self.cfg.sync_every_s))
        self.target = trail_target(self.run_dir, None, self.cfg)
        self.mode = "thread" if self.cfg.live_mode == "thread" else "process"
        self._parent_pid = parent_pid      # sidecar: stop when this process is gone
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._proc: Optional[subprocess.Popen] = None
        self._client: Any = None
        self._failing = False
        self._last_seen: Optional[tuple] = None
        self.ticks = 0
        self.errors = 0
        self.busy_s = 0.0           # wall time spent syncing (thread mode; for the overhead benchmark)
        self.busy_cpu_s = 0.0       # CPU time of the sync (thread or sidecar), the mlflow import included

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if not self.cfg.enabled or self._thread is not None or self._proc is not None:
            return
        if self.mode == "thread":
            self._thread = threading.Thread(target=self._loop, name=f"mlflow-sync-{self.run_dir.name}", daemon=True)
            self._thread.start()
            return
        self._cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        try:
            # Its stdin is a pipe from us: closing it (stop(), or our death) tells it to do a final sync and exit.
            # A pipe, not a signal: a trail that ends within a second must not kill the sidecar before it is ready.
            self._proc = subprocess.Popen(self._sidecar_cmd(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:  # no sidecar: fall back to the thread, training goes on either way
            self._log(f"could not start the MLflow sync process ({exc}); syncing from a thread instead")
            self.mode = "thread"
            self.start()

    def stop(self) -> None:
        """Final sync (status included: the runner writes it before calling stop), bounded in time."""
        timeout = float(self.cfg.stop_timeout_s)
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._log(f"final MLflow sync still running after {timeout:.0f} s; leaving it to `harness sync`")
            self._thread = None
        if self._proc is not None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
                code = self._proc.wait(timeout)
                self.errors += int(code != 0)
                self.busy_cpu_s += resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - self._cpu_before
            except subprocess.TimeoutExpired:
                self._log(f"final MLflow sync still running after {timeout:.0f} s; it finishes on its own")
            except OSError:
                pass
            self._proc = None

    def _sidecar_cmd(self) -> List[str]:
        cfg = dict(asdict(self.cfg), live_mode="thread", uri=self.target.uri)  # resolved here, in the trail's cwd
        return [sys.executable, "-m", "harness.tracking.live", str(self.run_dir), "--config", json.dumps(cfg),
                "--parent-pid", str(os.getpid()), "--stop-on-stdin-eof"]

    # ------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.every_s) or self._orphaned():
                break
        self.tick(force=True)

    def _orphaned(self) -> bool:
        return self._parent_pid is not None and os.getppid() != self._parent_pid

    def _signature(self) -> tuple:
        return _mtime(self.run_dir / JOURNAL_NAME) + _mtime(self.run_dir / "status.json")

    def tick(self, force: bool = False) -> bool:
        """One sync; never raises. Skipped when neither journal nor status changed since the last success."""
        signature = self._signature()
        if not force and not self._failing and signature == self._last_seen:
            return True
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            if self._client is None:
                from harness.tracking.client import make_client

                self._client = make_client(self.target.uri, self.target.timeout_s, self.target.retries)
            sync_trail(self.run_dir, uri=self.target.uri, client=self._client, tracking=self.cfg)
            self._last_seen = signature
            if self._failing:
                self._log(f"MLflow sync to {self.target.uri} recovered")
            self._failing = False
            return True
        except Exception as exc:  # noqa: BLE001 - tracking must never stop training
            self.errors += 1
            if not self._failing:
                first_line = str(exc).splitlines()[0] if str(exc) else ""
                self._log(f"MLflow sync to {self.target.uri} failed, training goes on and sync retries every "
                          f"{self.every_s:g} s (`harness sync` catches up later): {type(exc).__name__}: {first_line}")
            self._failing = True
            return False
        finally:
            self.ticks += 1
            self.busy_s += time.perf_counter() - started
            self.busy_cpu_s += time.thread_time() - cpu_started

    def _log(self, message: str) -> None:
        try:
            with open_regular(self.run_dir / "log.txt", "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [tracking] {message}\n")
        except (OSError, HarnessError):
            pass


def main(argv: Optional[List[str]] = None) -> int:
    """The sidecar: sync RUN_DIR every sync_every_s until SIGTERM or the trail process is gone, then a final sync."""
    parser = argparse.ArgumentParser(prog="python -m harness.tracking.live")
    parser.add_argument("run_dir")
    parser.add_argument("--config", default="{}", help="TrackingConfig fields as JSON")
    parser.add_argument("--parent-pid", type=int, default=None, help="stop when this process is gone")
    parser.add_argument("--stop-on-stdin-eof", action="store_true", help="stop when stdin closes")
    args = parser.parse_args(argv)
    cfg = TrackingConfig(**{k: v for k, v in json.loads(args.config).items()
                            if k in {f.name for f in fields(TrackingConfig)}})
    cfg.live_mode = "thread"
    live = LiveSync(args.run_dir, cfg, parent_pid=args.parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: live._stop.set())
    signal.signal(signal.SIGINT, lambda *_: live._stop.set())
    if args.stop_on_stdin_eof:
        def watch_stdin() -> None:
            sys.stdin.buffer.read()
            live._stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    live._loop()
    return 0 if not live._failing else 1


if __name__ == "__main__":
    # os._exit: everything is committed and closed by now, and a normal interpreter exit with mlflow loaded takes
    # ~1.5 s of atexit work and module teardown that the trail would wait for in stop().
    os._exit(main())
