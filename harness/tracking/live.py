"""Live MLflow sync inside a running trail: a daemon thread pushes new journal records every `sync_every_s`.

The trail never waits on MLflow: start() returns at once (mlflow is imported in the thread), a failing tick is logged
once to `<run_dir>/log.txt` and retried on the next tick, HTTP calls are bounded, and stop() waits for the final
sync at most `stop_timeout_s`. Whatever is missed is caught up by `harness sync` from the cursor.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Optional, Tuple

from harness.journal import JOURNAL_NAME
from harness.tracking.sync import sync_trail, trail_target


def _mtime(path: Path) -> Tuple[int, int]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except FileNotFoundError:
        return -1, -1


class LiveSync:
    """Background journal → MLflow pusher for one trail (constructed and driven by harness.runner)."""

    def __init__(self, run_dir: Path | str, tracking_cfg: Any):
        self.run_dir = Path(run_dir)
        self.cfg = tracking_cfg
        self.every_s = max(0.01, float(tracking_cfg.sync_every_s))
        self.target = trail_target(self.run_dir, None, tracking_cfg)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._client: Any = None
        self._failing = False
        self._last_seen: Optional[tuple] = None
        self.ticks = 0
        self.busy_s = 0.0           # time spent syncing (for the overhead benchmark)
        self.errors = 0

    def start(self) -> None:
        if not getattr(self.cfg, "enabled", True) or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name=f"mlflow-sync-{self.run_dir.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Final sync (status included: the runner writes it before calling stop), bounded in time."""
        if self._thread is None:
            return
        self._stop.set()
        timeout = float(getattr(self.cfg, "stop_timeout_s", 30.0))
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._log(f"final MLflow sync still running after {timeout:.0f} s; leaving it to `harness sync`")
        self._thread = None

    def _loop(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.every_s):
                break
        self.tick(force=True)

    def _signature(self) -> tuple:
        return _mtime(self.run_dir / JOURNAL_NAME) + _mtime(self.run_dir / "status.json")

    def tick(self, force: bool = False) -> bool:
        """One sync; never raises. Skipped when neither journal nor status changed since the last success."""
        signature = self._signature()
        if not force and not self._failing and signature == self._last_seen:
            return True
        started = time.perf_counter()
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
                self._log(f"MLflow sync to {self.target.uri} failed, training goes on and sync retries every "
                          f"{self.every_s:g} s (`harness sync` catches up later): {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}")
            self._failing = True
            return False
        finally:
            self.ticks += 1
            self.busy_s += time.perf_counter() - started

    def _log(self, message: str) -> None:
        try:
            with open(self.run_dir / "log.txt", "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [tracking] {message}\n")
        except OSError:
            pass
