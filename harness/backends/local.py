"""Local backend: trails on this machine, at most `max_parallel` at once, each in a worker process of its own
(harness.backends.pool: warm workers that run trail after trail, or a fresh process per trail).

Why processes, not threads: a crashing or memory-hungry trail takes only itself down, and each trail sets its own
torch thread count. The default cap is cores ÷ threads per trail so two 1-thread trails share a 2-core laptop.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Deque, List, Optional, Sequence

from omegaconf import DictConfig

from harness.backends.pool import TrailProcesses, WarmPool, wait_readable
from harness.backends.worker import IO_EXIT, LOCKED_EXIT
from harness.errors import HarnessError
from harness.store.rundir import RunDir
from harness.store.safe_files import open_regular
from harness.store.states import TrailState

if TYPE_CHECKING:
    from harness.spec.trails import Trail

FRESH_S = 0.05  # this soon after a wait, poll answers from the wait's look at the workers instead of looking again
# Exit codes that alone say how the trail ended; others are checked against the status the worker recorded.
WORKER_EXIT_STATES = {state.exit_code: state for state in (TrailState.DONE, TrailState.DIVERGED)}


@dataclass(eq=False)
class LocalJob:
    run_dir: Path
    threads: int = 1
    engine: str = ""  # the trail's engine, for a warm worker to import before it runs the trail ("": unknown)
    state: TrailState = TrailState.PENDING
    pid: Optional[int] = field(default=None, repr=False)  # the worker process running it


def _last_error(run_dir: Path) -> str:
    """The worker's own one-line account of why it stopped (`harness: error: …` in log.txt), if it wrote one."""
    try:
        with open_regular(RunDir(run_dir).log_path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except (OSError, HarnessError):
        return ""
    said = [ln for ln in lines if ln.startswith("harness: error: ")]
    return said[-1][len("harness: error: "):] if said else ""


def outcome(run_dir: Path, code: int) -> TrailState:
    """The trail's state from its worker's exit code (harness.worker's meaning) and what it recorded; an outcome
    the worker could not record (it was killed, it could not write) is recorded here for it."""
    record = RunDir(run_dir)
    try:
        recorded = record.status().state
    except HarnessError:  # a status.json that is not one: what the worker says is all there is
        recorded = TrailState.PENDING
    if code in WORKER_EXIT_STATES:
        return WORKER_EXIT_STATES[code]
    if code == LOCKED_EXIT:
        return recorded if recorded.terminal else TrailState.FAILED
    if recorded in (TrailState.FAILED, TrailState.CANCELLED):
        return recorded
    # The worker died before it could record why (killed, out of memory): record it for it.
    reason = f"worker killed by signal {-code}" if code < 0 else f"worker exited with code {code}"
    if code == IO_EXIT:
        reason = "the worker could not write its run dir (a full disk or a read-only file system)"
    said = _last_error(run_dir)
    try:
        record.record_outcome(TrailState.FAILED, f"{reason}: {said}" if said else reason)
    except HarnessError:  # a status.json that is a link or a FIFO: the sweep says it failed all the same
        pass
    return TrailState.FAILED


def _job(run_dir: Path) -> LocalJob:
    """The trail's job: its torch threads (engine.threads) and engine, read from its config as plain YAML; 1 thread
    and no engine when the config cannot be read, which its worker then reports."""
    try:
        engine = RunDir(run_dir).config()["engine"]
        return LocalJob(run_dir, int(engine.get("threads", 1) or 1), str(engine["name"]))
    except Exception:  # noqa: BLE001 - yaml, type or OS errors alike: the trail fails in its worker, named
        return LocalJob(run_dir)


def default_parallelism(threads_per_trail: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, threads_per_trail))


class LocalBackend:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self._queue: Deque[LocalJob] = deque()
        self._running: List[LocalJob] = []
        self._max_parallel: Optional[int] = int(cfg.max_parallel) or None
        self._waited = float("-inf")  # when wait() last looked at the workers
        warm = str(cfg.get("workers", "warm")) == "warm"
        self._workers = WarmPool(int(cfg.get("worker_max_trails", 0) or 0)) if warm else TrailProcesses()

    def submit(self, run_dirs: List[Path]) -> List[LocalJob]:
        jobs = []
        for run_dir in run_dirs:
            job = _job(Path(run_dir))
            self._queue.append(job)
            jobs.append(job)
        if self._max_parallel is None and jobs:
            self._max_parallel = default_parallelism(max(j.threads for j in jobs))
        self._pump()
        return jobs

    def warm_up(self, trails: Sequence[Trail]) -> None:
        """Start the warm workers that `trails` will run in now, before their run dirs are written, so that
        Python and the harness are imported meanwhile (trails of one thread count; others start their own)."""
        threads = {int(t.cfg.engine.get("threads", 1) or 1) for t in trails}
        if not isinstance(self._workers, WarmPool) or len(threads) != 1:
            return
        (count,) = threads
        self._workers.prestart(min(len(trails), self._max_parallel or default_parallelism(count)), count)

    @property
    def max_parallel(self) -> int:
        return self._max_parallel or 1

    def _start(self, job: LocalJob) -> None:
        job.pid = self._workers.start(job)
        job.state = TrailState.RUNNING
        self._running.append(job)

    def _reap(self) -> None:
        for job, code in self._workers.ended():
            self._running.remove(job)  # type: ignore[arg-type]
            job.state = outcome(job.run_dir, code)  # type: ignore[attr-defined]

    def _pump(self) -> None:
        self._reap()
        while self._queue and len(self._running) < self.max_parallel:
            self._start(self._queue.popleft())

    def poll(self, handle: LocalJob) -> TrailState:
        # A sweep asks of every trail after each wait: an ended trail's state is final, and just after a wait the
        # wait's own look at the workers answers (news since is still readable, so the next wait returns at once).
        if handle.state.terminal or time.monotonic() - self._waited < FRESH_S:
            return handle.state
        self._pump()
        return handle.state

    def wait(self, timeout: float) -> None:
        """Return as soon as a running trail's worker answers or ends, or after `timeout` s; trails that ended are
        reaped and the next queued ones started before it returns."""
        fds = self._workers.waitables()
        if fds:
            wait_readable(fds, timeout)
        else:
            time.sleep(timeout)
        self._pump()
        self._waited = time.monotonic()

    def cancel(self, handle: LocalJob) -> None:
        if handle in self._queue:
            self._queue.remove(handle)
        elif handle in self._running:
            self._reap()  # a trail that ended meanwhile keeps its real outcome
            if handle in self._running:
                self._workers.stop(handle)
                self._running.remove(handle)
        if not handle.state.terminal:
            handle.state = TrailState.CANCELLED
            try:
                RunDir(handle.run_dir).record_outcome(handle.state, "cancelled by the sweep")
            except (OSError, HarnessError):  # a full disk: the trail then reads as interrupted in status
                pass

    def cancel_all(self) -> None:
        for job in list(self._queue) + list(self._running):
            self.cancel(job)

    def close(self) -> None:
        """The worker processes are this command's children: they end with it."""
        self.cancel_all()
        self._workers.close()
