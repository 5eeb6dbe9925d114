"""Local backend: each trail in its own `python -m harness.worker` process, at most `max_parallel` at once.

Why processes, not threads: a crashing or memory-hungry trail takes only itself down, and each trail sets its own
torch thread count. The default cap is cores ÷ threads per trail so two 1-thread trails share a 2-core laptop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Deque, List, Optional

from omegaconf import DictConfig

from harness.rundir import load_config, read_status, record_outcome
from harness.states import TERMINAL, TrailState

# Exit codes that alone say how the trail ended; others are checked against the status the worker recorded.
WORKER_EXIT_STATES = {state.exit_code: state for state in (TrailState.DONE, TrailState.DIVERGED)}
LOCKED_EXIT = 75  # harness.worker.LOCKED_EXIT: another process runs the trail; its status.json is not ours to write
IO_EXIT = 74      # harness.worker.IO_EXIT: the worker could not write its run dir


@dataclass
class LocalJob:
    run_dir: Path
    threads: int = 1
    proc: Optional[subprocess.Popen] = field(default=None, repr=False)
    state: TrailState = TrailState.PENDING


def _end_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the sweep process dies, however it dies (Linux PR_SET_PDEATHSIG).

    Why: the workers run in their own sessions (so Ctrl-C reaches them only through the sweep), so a SIGKILLed
    sweep would otherwise leave them running, holding their trails' locks, unseen by the next run of the sweep.
    SIGTERM lets each record itself cancelled and release its lock; a rerun resumes it from its checkpoint.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the trail locks still keep a second run away
        pass


def _last_error(run_dir: Path) -> str:
    """The worker's own one-line account of why it stopped (`harness: error: …` in log.txt), if it wrote one."""
    try:
        with open(run_dir / "log.txt", "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    said = [ln for ln in lines if ln.startswith("harness: error: ")]
    return said[-1][len("harness: error: "):] if said else ""


def default_parallelism(threads_per_trail: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, threads_per_trail))


class LocalBackend:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self._queue: Deque[LocalJob] = deque()
        self._running: List[LocalJob] = []
        self._max_parallel: Optional[int] = int(cfg.max_parallel) or None

    def submit(self, run_dirs: List[Path]) -> List[LocalJob]:
        jobs = []
        for run_dir in run_dirs:
            threads = int(load_config(run_dir).engine.get("threads", 1) or 1)
            job = LocalJob(Path(run_dir), threads)
            self._queue.append(job)
            jobs.append(job)
        if self._max_parallel is None and jobs:
            self._max_parallel = default_parallelism(max(j.threads for j in jobs))
        self._pump()
        return jobs

    @property
    def max_parallel(self) -> int:
        return self._max_parallel or 1

    def _start(self, job: LocalJob) -> None:
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(job.threads)
        log = open(job.run_dir / "log.txt", "ab")
        job.proc = subprocess.Popen([sys.executable, "-m", "harness.worker", str(job.run_dir)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    preexec_fn=_end_with_parent)
        log.close()
        job.state = TrailState.RUNNING
        self._running.append(job)

    def _reap(self) -> None:
        for job in list(self._running):
            code = job.proc.poll() if job.proc else None
            if code is None:
                continue
            self._running.remove(job)
            recorded = read_status(job.run_dir).get("state")
            if code in WORKER_EXIT_STATES:
                job.state = WORKER_EXIT_STATES[code]
            elif code == LOCKED_EXIT:
                job.state = TrailState(recorded) if recorded in TERMINAL else TrailState.FAILED
            elif recorded in (TrailState.FAILED, TrailState.CANCELLED):
                job.state = TrailState(recorded)
            else:
                # The worker died before it could record why (killed, out of memory): record it for it.
                reason = f"worker killed by signal {-code}" if code < 0 else f"worker exited with code {code}"
                if code == IO_EXIT:
                    reason = "the worker could not write its run dir (a full disk or a read-only file system)"
                said = _last_error(job.run_dir)
                reason = f"{reason}: {said}" if said else reason
                job.state = TrailState.FAILED
                record_outcome(job.run_dir, job.state, reason)

    def _pump(self) -> None:
        self._reap()
        while self._queue and len(self._running) < self.max_parallel:
            self._start(self._queue.popleft())

    def poll(self, handle: LocalJob) -> TrailState:
        self._pump()
        return handle.state

    def cancel(self, handle: LocalJob) -> None:
        if handle in self._queue:
            self._queue.remove(handle)
        elif handle.proc is not None and handle.proc.poll() is None:
            os.killpg(handle.proc.pid, signal.SIGTERM)
            try:
                handle.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(handle.proc.pid, signal.SIGKILL)
                handle.proc.wait()
            if handle in self._running:
                self._running.remove(handle)
        if not handle.state.terminal:
            handle.state = TrailState.CANCELLED
            try:
                record_outcome(handle.run_dir, handle.state, "cancelled by the sweep")
            except OSError:  # a full disk: the trail then reads as interrupted (running, lock free) in status
                pass

    def cancel_all(self) -> None:
        for job in list(self._queue) + list(self._running):
            self.cancel(job)

    def close(self) -> None:
        """The trail processes are this command's children: they end with it."""
        self.cancel_all()
