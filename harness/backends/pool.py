"""The local backend's worker processes: warm workers that run trail after trail (`backend.workers=warm`, the
default), or one fresh process per trail (`backend.workers=process`).

Why warm workers: a fresh Python that imports torch, Hydra and the engine costs about 2 s per trail, which a fast
trail cannot hide. A warm worker (`python -m harness.worker --serve`) pays it once and keeps the isolation that
matters: each trail runs in its own run dir under its own lock, with the process state a fresh process would have
(harness.worker restores it), and a worker that dies takes only its current trail with it — the pool notices, the
trail is failed as a dead per-trail process is, and the next trail gets a new worker.

Both kinds run in sessions of their own (Ctrl-C reaches them only through the sweep, which cancels them) and get
SIGTERM when the sweep process dies, however it dies (Linux PR_SET_PDEATHSIG). Either way a trail ends as an exit
code with `harness.worker`'s meaning, which the backend turns into the trail's state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Tuple

from harness.safe_files import open_regular
from harness.worker import THREAD_VARS

STOP_WAIT_S = 10.0  # how long a SIGTERMed worker may take to record its trail cancelled before SIGKILL


class Job(Protocol):
    run_dir: Path
    threads: int


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


def spawn(args: List[str], job: Job, **popen: Any) -> subprocess.Popen:
    """`python -m harness.worker ARGS` in a session of its own, output appended to the job's log.txt, the BLAS
    thread variables set to the job's thread count."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(job.threads)
    with open_regular(Path(job.run_dir) / "log.txt", "ab") as log:  # never through a link
        return subprocess.Popen([sys.executable, "-m", "harness.worker", *args], stderr=log,
                                stdout=popen.pop("stdout", log), env=env, start_new_session=True,
                                preexec_fn=_end_with_parent, **popen)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process's session (it records its trail cancelled), SIGKILL it if it has not ended in time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


class TrailProcesses:
    """`backend.workers=process`: a fresh `python -m harness.worker RUN_DIR` per trail; its exit code is the answer."""

    def __init__(self) -> None:
        self._procs: Dict[Job, subprocess.Popen] = {}

    def start(self, job: Job) -> int:
        proc = spawn([str(job.run_dir)], job)
        self._procs[job] = proc
        return proc.pid

    def ended(self) -> List[Tuple[Job, int]]:
        done = [(job, code) for job, proc in self._procs.items() if (code := proc.poll()) is not None]
        for job, _ in done:
            del self._procs[job]
        return done

    def stop(self, job: Job) -> None:
        proc = self._procs.pop(job, None)
        if proc is not None:
            stop(proc)

    def close(self) -> None:
        for job in list(self._procs):
            self.stop(job)


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen
    threads: int
    job: Optional[Job] = None
    trails: int = 0
    buffer: bytes = b""

    def send(self, job: Job) -> None:
        request = {"run_dir": str(job.run_dir), "log": str(Path(job.run_dir) / "log.txt"), "threads": job.threads}
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        self.job = job

    def replies(self) -> Tuple[List[int], bool]:
        """The exit codes the worker has answered since last asked, and whether its pipe has closed (it ended)."""
        assert self.proc.stdout is not None
        fd, closed = self.proc.stdout.fileno(), False
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                closed = True
                break
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [int(json.loads(line)["code"]) for line in lines if line.strip()], closed


class WarmPool:
    """`backend.workers=warm`: long-lived workers, at most one per running trail plus idle ones kept for the next.

    A worker is reused only for trails with its thread count (the BLAS variables are read once, at start-up); an
    idle worker of another count is retired when a new one is spawned, so the pool never holds more processes than
    the backend's slots. `max_trails` > 0 retires a worker after that many trails (bounding any leak an engine has).
    """

    def __init__(self, max_trails: int = 0):
        self.max_trails = max_trails
        self._workers: List[_Worker] = []
        self._retired: List[subprocess.Popen] = []

    def start(self, job: Job) -> int:
        worker = next((w for w in self._workers if w.job is None and w.threads == job.threads), None)
        if worker is not None:
            try:
                worker.send(job)
                return worker.proc.pid
            except (BrokenPipeError, OSError):  # it died while idle: replaced below
                self._drop(worker)
        for idle in [w for w in self._workers if w.job is None]:
            self._retire(idle)
        proc = spawn(["--serve"], job, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        worker = _Worker(proc, job.threads)
        self._workers.append(worker)
        try:
            worker.send(job)
        except (BrokenPipeError, OSError):  # it could not even start: ended() reports its exit code for the job
            worker.job = job
        return proc.pid

    def ended(self) -> List[Tuple[Job, int]]:
        """Jobs whose trail has ended since last asked, each with its exit code: the worker's answer, or the
        worker's own exit status when it died before answering."""
        done: List[Tuple[Job, int]] = []
        for worker in list(self._workers):
            codes, closed = worker.replies()
            for code in codes:
                if worker.job is not None:
                    done.append((worker.job, code))
                    worker.job, worker.trails = None, worker.trails + 1
            if closed or worker.proc.poll() is not None:
                code = _wait(worker.proc)
                if worker.job is not None:
                    done.append((worker.job, code))
                self._drop(worker)
            elif worker.job is None and self.max_trails and worker.trails >= self.max_trails:
                self._retire(worker)
        self._retired = [p for p in self._retired if p.poll() is None]
        return done

    def stop(self, job: Job) -> None:
        worker = next((w for w in self._workers if w.job is job), None)
        if worker is not None:
            stop(worker.proc)
            self._drop(worker)

    def pids(self) -> List[int]:
        return [w.proc.pid for w in self._workers]

    def close(self) -> None:
        """Stop busy workers, let idle ones end at the end of their input, and reap every one."""
        for worker in list(self._workers):
            if worker.job is not None:
                self.stop(worker.job)
            else:
                self._retire(worker)
        for proc in self._retired:
            try:
                proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                stop(proc)
        self._retired = []

    def _retire(self, worker: _Worker) -> None:
        """An idle worker ends once its input closes; it is reaped later."""
        self._workers.remove(worker)
        _close_pipes(worker.proc)
        self._retired.append(worker.proc)

    def _drop(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        _close_pipes(worker.proc)
        _wait(worker.proc)


def _close_pipes(proc: subprocess.Popen) -> None:
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass


def _wait(proc: subprocess.Popen) -> int:
    """The exit status of a worker whose reply pipe closed (it is ending), killing it if it hangs on."""
    try:
        return proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        stop(proc)
        return proc.wait()
