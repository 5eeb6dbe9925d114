"""The sweep's tracker: one process per sweep that follows every trail's journal and status and feeds MLflow.

Why one per sweep: a sidecar per trail pays mlflow's import, a store start-up and a Python process for each trail;
one process pays them once for the whole sweep. It runs the same exactly-once protocol (harness.tracking.sync) on
the same cursors as `harness sync`, so it can be killed at any point and restarted, or replaced by `harness sync`.
It also makes the sweep's summary run (harness.tracking.sweep_run) and, at the end, attaches the report to it.

    python -m harness.tracking.tracker SWEEP_DIR --config JSON [--parent-pid PID]

It holds `<sweep>/tracker.lock` while it follows the sweep: a trail that finds the lock held leaves MLflow to it
(tracking.live=sweep); one that finds it free syncs itself. It prints `ready` once it holds the lock. It beats in
the lock file (harness.store.locks: `beat`) after each trail it syncs and each pass: a tracker whose beat is older than
`heartbeat_timeout_s` is stopped (SIGSTOP) or hung, however alive its process, and is replaced — by the sweep that
started it, or by the next tracker of the sweep, which kills it and takes its lock over. A pass that meets an
unreachable server stops there (the other trails would each wait out the same timeout) and the final pass has one
deadline for the whole sweep (`deadline_s`); what is left is `harness sync`'s. Its stdin is
a pipe from the sweep: a line `report <dir>` names the sweep's report, a line `finish <state>` gives the sweep's
outcome; end of file (the sweep ending, or dying) stops it: it follows the trails still running on this host for at
most `stop_timeout_s`, makes a final pass, attaches the report and ends the summary run if it was given them, and
exits (0 when the final pass reached every trail).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from harness.logs import dump_stacks_on_sigusr1
from harness.store.journal import JOURNAL_NAME, tail_step
from harness.store.locks import FileLock, LockHeld, read_holder
from harness.store.rundir import RunDir
from harness.store.states import TrailState
from harness.store.sweepdir import trail_dirs
from harness.tracking.client import unreachable
from harness.tracking.config import TrackingConfig
from harness.tracking.cursor import read_cursor
from harness.tracking.sync import sync_trail

TRACKER_LOCK = "tracker.lock"
READY = "ready"
FINISH = "finish"
REPORT = "report"

log = logging.getLogger("harness.tracking.tracker")

Signature = Tuple[int, int, int, int]


def tracker_lock(sweep_dir: Path | str) -> FileLock:
    return FileLock(Path(sweep_dir) / TRACKER_LOCK, f"tracker of sweep {Path(sweep_dir).name!r}")


def _stat(path: Path) -> Tuple[int, int]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except FileNotFoundError:
        return -1, -1


def signature(run_dir: Path) -> Signature:
    """What changes when a trail has something new for MLflow: its journal or its status."""
    return _stat(run_dir / JOURNAL_NAME) + _stat(RunDir(run_dir).status_path)


def settled(run_dir: Path, uri: str) -> bool:
    """Nothing to send: a trail not started yet, or one whose cursor already holds its last step and its state."""
    state = RunDir(run_dir).status().state
    if state == TrailState.PENDING:
        return True
    cursor = read_cursor(run_dir, uri)
    last = tail_step(run_dir)
    return (bool(cursor.get("run_id")) and cursor.get("status") == state and not cursor.get("inflight")
            and (last is None or int(cursor.get("synced_step", -1)) >= last))


def running_here(run_dir: Path) -> bool:
    """A trail recorded as running by a live process on this host (read-only: its lock is never touched)."""
    status = RunDir(run_dir).status()
    if status.state != TrailState.RUNNING or status.host != socket.gethostname():
        return False
    try:
        pid = int(status.pid or 0)
        if pid <= 0:
            return False
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, under another user
    except (OSError, ValueError):
        return False
    return True


@dataclass
class Followed:
    run_dir: Path
    seen: Optional[Signature] = None   # signature at its last successful sync
    failing: bool = False


class Tracker:
    """Follows the trails of one sweep dir; `tick()` syncs each trail whose journal or status changed."""

    def __init__(self, sweep_dir: Path | str, cfg: TrackingConfig, beat: Optional[Any] = None):
        self.sweep_dir = Path(sweep_dir)
        self.cfg = cfg
        self.uri = cfg.uri  # resolved by the sweep, in its working directory
        self.trails: Dict[Path, Followed] = {}
        self._client: Any = None
        self._beat = beat or (lambda: None)  # says "alive and working" (the tracker lock's beat)
        self.failing = False
        self.syncs = 0
        self.errors = 0

    def client(self) -> Any:
        if self._client is None:
            from harness.tracking.client import make_client

            self._client = make_client(self.uri, float(self.cfg.http_timeout_s), int(self.cfg.http_retries))
        return self._client

    def discover(self) -> None:
        """Add the sweep's trails not followed yet; those with nothing to send start as seen."""
        for run_dir in trail_dirs(self.sweep_dir):
            if run_dir not in self.trails:
                followed = Followed(run_dir)
                if settled(run_dir, self.uri):
                    followed.seen = signature(run_dir)
                self.trails[run_dir] = followed

    def tick(self, deadline: Optional[float] = None) -> int:
        """One pass over the followed trails; never raises. Returns how many trails could not be synced. The pass
        stops at the first trail that finds the server unreachable, and at `deadline` (time.monotonic()): the
        trails not reached count as not synced."""
        self._beat()
        try:
            self.discover()
        except Exception as exc:  # noqa: BLE001 - a damaged sweep.json: said, and the next tick tries again
            log.warning("cannot list the trails of %s: %s", self.sweep_dir, exc)
        failed: List[Tuple[Followed, str]] = []
        cut_short = ""
        for trail in self.trails.values():
            now = signature(trail.run_dir)
            if now == trail.seen and not trail.failing:
                continue
            if cut_short or (deadline is not None and time.monotonic() > deadline):
                trail.failing = True
                failed.append((trail, cut_short or "MLflow's deadline for this sweep passed"))
                continue
            try:
                sync_trail(trail.run_dir, uri=self.uri, client=self.client(), tracking=self.cfg)
                trail.seen, trail.failing = now, False
                self.syncs += 1
            except Exception as exc:  # noqa: BLE001 - tracking never stops; the next tick retries
                trail.failing = True
                first_line = (str(exc).splitlines() or [""])[0]
                failed.append((trail, f"{type(exc).__name__}: {first_line}"))
                if unreachable(exc):
                    cut_short = f"not tried: the server was unreachable for {trail.run_dir.name}"
            self._beat()
        self.errors += len(failed)
        if failed and not self.failing:
            log.warning("MLflow sync to %s failed for %d trail(s), retrying every %g s (`harness sync` catches up "
                        "later): %s: %s", self.uri, len(failed), self.cfg.sync_every_s, failed[0][0].run_dir.name,
                        failed[0][1])
        elif not failed and self.failing:
            log.warning("MLflow sync to %s recovered", self.uri)
        self.failing = bool(failed)
        return len(failed)

    def still_running(self) -> bool:
        return any(running_here(t.run_dir) for t in self.trails.values())


def follow(tracker: Tracker, stop: threading.Event, parent_pid: Optional[int] = None) -> int:
    """Tick until `stop` is set or the parent is gone, then until no trail runs here (at most stop_timeout_s),
    then a final pass; all of it after `stop` within the sweep's MLflow deadline (deadline_s). Returns the number
    of trails the final pass could not sync."""
    every = max(0.01, float(tracker.cfg.sync_every_s))
    while not stop.wait(every):
        tracker.tick()
        if parent_pid is not None and os.getppid() != parent_pid:
            break
    deadline = time.monotonic() + float(tracker.cfg.deadline_s)
    waited = min(deadline, time.monotonic() + float(tracker.cfg.stop_timeout_s))
    while tracker.still_running() and time.monotonic() < waited:
        tracker.tick(deadline)  # workers of a sweep that died are recording their outcome
        time.sleep(min(every, 0.5))
    return tracker.tick(deadline)


def _is_tracker_of(pid: int, sweep_dir: Path) -> bool:
    """Whether process `pid` on this host is a tracker of `sweep_dir` (its command line says so)."""
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    if "harness.tracking.tracker" not in argv:
        return False
    mine = os.path.realpath(sweep_dir)
    return any(os.path.realpath(os.path.join(cwd, a)) == mine for a in argv if a and not a.startswith("-"))


def stale_holder(lock: FileLock, timeout_s: float) -> Optional[int]:
    """The PID of the tracker holding `lock` on this host when its beat is older than `timeout_s` (stopped or hung),
    else None."""
    holder = read_holder(lock.path)
    beat = holder.get("beat", holder.get("since"))
    try:
        pid = int(holder.get("pid") or 0)
        age = time.time() - float(beat)  # type: ignore[arg-type]  # None: caught below
    except (TypeError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid() or holder.get("host") != socket.gethostname() or age <= timeout_s:
        return None
    return pid if _is_tracker_of(pid, lock.path.parent) else None


def take_over(lock: FileLock, timeout_s: float, poll_s: float = 0.5, parent_pid: Optional[int] = None) -> FileLock:
    """Take the sweep's tracker lock, waiting for a live tracker's final pass, but killing a tracker whose beat is
    older than `timeout_s`: a stopped or hung process keeps its flock as long as it lives. Gives up (SystemExit)
    when the parent is gone: nobody waits for this tracker any more."""
    while True:
        try:
            return lock.acquire()
        except LockHeld:
            if parent_pid is not None and os.getppid() != parent_pid:
                raise SystemExit(1) from None
            pid = stale_holder(lock, timeout_s)
            if pid is not None:
                log.warning("the tracker PID %d of %s has not beaten for over %g s (stopped or hung): replacing it",
                            pid, lock.path.parent, timeout_s)
                try:
                    os.kill(pid, signal.SIGKILL)  # a stopped process dies of SIGKILL too; the kernel frees its lock
                except OSError:
                    pass
            time.sleep(poll_s)


def _read_commands(stream: Any, outcome: List[str], report: List[str], stop: threading.Event) -> None:
    """The sweep's pipe: `report <dir>` and `finish <state>` lines, then end of file."""
    for raw in stream:
        line = raw.decode(errors="replace").rstrip("\n")
        words = line.split()
        if len(words) == 2 and words[0] == FINISH:
            outcome[:] = [words[1]]
        elif line.startswith(REPORT + " "):
            report[:] = [line[len(REPORT) + 1:]]
    stop.set()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.tracking.tracker")
    parser.add_argument("sweep_dir")
    parser.add_argument("--config", default="{}", help="TrackingConfig fields as JSON (uri resolved)")
    parser.add_argument("--parent-pid", type=int, default=None, help="stop when this process is gone")
    args = parser.parse_args(argv)
    dump_stacks_on_sigusr1()
    known = {f.name for f in fields(TrackingConfig)}
    cfg = TrackingConfig(**{k: v for k, v in json.loads(args.config).items() if k in known})
    # This process's own lines go to stderr (the sweep points it at <sweep>/tracking.log); the summary-run module
    # writes that file itself, so its logger gets no handler here.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s [tracker] %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("harness.tracking").addHandler(logging.NullHandler())

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # an earlier tracker may be making its final pass (wait for it), or be stopped or hung (take its lock over)
    lock = take_over(tracker_lock(args.sweep_dir), float(cfg.heartbeat_timeout_s), parent_pid=args.parent_pid)
    print(READY, flush=True)
    os.dup2(2, 1)  # nothing reads the pipe after this line: anything printed later goes to the log instead
    outcome: List[str] = []
    report: List[str] = []
    threading.Thread(target=_read_commands, args=(sys.stdin.buffer, outcome, report, stop), daemon=True).start()

    from harness.tracking.sweep_run import attach_report, ensure_sweep_run, finish_sweep_run

    ensure_sweep_run(args.sweep_dir, cfg, uri=cfg.uri)
    lock.beat()
    tracker = Tracker(args.sweep_dir, cfg, beat=lock.beat)
    log.info("following %d trails of %s", len(trail_dirs(Path(args.sweep_dir))), args.sweep_dir)
    missed = follow(tracker, stop, args.parent_pid)
    if report and not missed:  # with trails missed (a server down, the deadline) `harness sync` attaches it later
        attach_report(args.sweep_dir, report[0], uri=cfg.uri)
    if outcome and not missed:
        finish_sweep_run(args.sweep_dir, outcome[0], uri=cfg.uri)
    lock.release()
    return 1 if missed else 0


if __name__ == "__main__":
    # os._exit: everything is committed by now, and a normal exit with mlflow loaded spends ~1.5 s in teardown.
    os._exit(main())
