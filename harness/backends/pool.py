"""The local backend's worker processes: warm workers that run trail after trail (`backend.workers=warm`, the
default), or one fresh process per trail (`backend.workers=process`).

Why warm workers: a fresh Python that imports torch, Hydra and the engine costs about 2 s per trail, which a fast trail
cannot hide. A warm worker (`python -m harness.backends.worker --serve`) pays it once and keeps the isolation that
matters: each trail runs in its own run dir under its own lock, with the process state a fresh process would have
(harness.backends.worker restores it), and a worker that dies takes only its current trail with it — the pool notices,
the trail is failed as a dead per-trail process is, and the next trail gets a new worker.

Both kinds run in sessions of their own (Ctrl-C reaches them only through the sweep, which cancels them) and get
SIGTERM when the sweep process dies, however it dies (Linux PR_SET_PDEATHSIG, which the worker sets itself:
harness.backends.worker.end_with_parent). Either way a trail ends as an exit
code with `harness.backends.worker`'s meaning, which the backend turns into the trail's state.

Each kind names the descriptors that become readable when one of its trails ends (`waitables`: a warm worker's reply
pipe, which also reaches end of file when the worker dies; a per-trail process's pidfd), so the sweep sleeps until a
trail ends rather than for a fixed interval (`wait_readable`).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

from harness import plugins
from harness.backends.spawn import spawn, take_spare

# How long a SIGTERMed worker may take to record its trail cancelled before SIGKILL: its engine stops what it started
# in that time (the AReaL engine: up to 9 s, harness.engines.areal.processes), with room for a loaded machine.
STOP_WAIT_S = 15.0


class Job(Protocol):
    run_dir: Path
    threads: int
    engine: str


def _log(job: Job) -> Path:
    return Path(job.run_dir) / "log.txt"


def wait_readable(fds: Sequence[int], timeout: float) -> bool:
    """Block until one of `fds` is readable or `timeout` s have passed; whether one is. A signal's handler that raises
    (Ctrl-C, the sweep's SIGTERM) ends the wait at once."""
    with selectors.DefaultSelector() as selector:
        for fd in fds:
            selector.register(fd, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def _pidfd(pid: int) -> Optional[int]:
    """A descriptor that becomes readable when process `pid` ends (Linux ≥ 5.3); None where there is none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def wait_exit(proc: subprocess.Popen, timeout: float) -> int:
    """`proc.wait(timeout)`, woken by the kernel when the process ends (a pidfd) rather than by subprocess's timed
    wait, which polls with sleeps that double up to 50 ms and so overshoot an exit by up to half their length (a
    worker ending after the sweep's last trail: 16 ms on a 10 ms exit). Raises subprocess.TimeoutExpired likewise."""
    if proc.returncode is not None:
        return proc.returncode
    pidfd = _pidfd(proc.pid)
    if pidfd is None:
        return proc.wait(timeout=timeout)
    try:
        if not wait_readable([pidfd], timeout):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process's session (it records its trail cancelled), SIGKILL it if it has not ended in time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        wait_exit(proc, STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


class TrailProcesses:
    """`backend.workers=process`: a fresh `python -m harness.backends.worker RUN_DIR` per trail; its exit code is
    the answer."""

    def __init__(self) -> None:
        self._procs: Dict[Job, subprocess.Popen] = {}
        self._pidfds: Dict[Job, int] = {}

    def start(self, job: Job) -> int:
        proc = spawn([str(job.run_dir)], job.threads, _log(job))
        self._procs[job] = proc
        pidfd = _pidfd(proc.pid)
        if pidfd is not None:
            self._pidfds[job] = pidfd
        return proc.pid

    def waitables(self) -> List[int]:
        """Descriptors readable once a trail's process has ended; empty where some process has none (the caller
        then falls back to its interval)."""
        return list(self._pidfds.values()) if len(self._pidfds) == len(self._procs) else []

    def ended(self) -> List[Tuple[Job, int]]:
        done = [(job, code) for job, proc in self._procs.items() if (code := proc.poll()) is not None]
        for job, _ in done:
            self._forget(job)
        return done

    def stop(self, job: Job) -> None:
        proc = self._procs.get(job)
        if proc is not None:
            stop(proc)
            self._forget(job)

    def _forget(self, job: Job) -> None:
        self._procs.pop(job, None)
        pidfd = self._pidfds.pop(job, None)
        if pidfd is not None:
            os.close(pidfd)

    def close(self) -> None:
        for job in list(self._procs):
            self.stop(job)


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen
    threads: Optional[int]  # None: a spare, whose first trail sets it
    job: Optional[Job] = None
    trails: int = 0
    buffer: bytes = b""

    def send(self, job: Job) -> None:
        request = {"run_dir": str(job.run_dir), "log": str(Path(job.run_dir) / "log.txt"), "threads": job.threads,
                   "engine": job.engine, "entry_points": plugins.entry_point_refs()}
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        self.job = job
        self.threads = job.threads

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

    A worker is reused only for trails with its thread count (the BLAS variables are read once, when its first
    trail's engine is imported; a spare has no count until then); an idle worker of another count is retired when a
    new one is spawned, so the pool never holds more processes than the backend's slots. `max_trails` > 0 retires a
    worker after that many trails (bounding any leak an engine has).
    """

    def __init__(self, max_trails: int = 0):
        self.max_trails = max_trails
        self._workers: List[_Worker] = []
        self._retired: List[subprocess.Popen] = []
        spare = take_spare()  # the command line's, already importing (harness.backends.spawn)
        if spare is not None:
            self._workers.append(self._adopt(spare, None))

    def start(self, job: Job) -> int:
        ready = [w for w in self._workers if w.job is None and w.threads in (job.threads, None)]
        worker = min(ready, key=lambda w: w.threads is None, default=None)  # one of its count first, then a spare
        if worker is not None:
            try:
                worker.send(job)
                return worker.proc.pid
            except (BrokenPipeError, OSError):  # it died while idle: replaced below
                self._drop(worker)
        for idle in [w for w in self._workers if w.job is None]:
            self._retire(idle)
        worker = self._spawn(job.threads, _log(job))
        try:
            worker.send(job)
        except (BrokenPipeError, OSError):  # it could not even start: ended() reports its exit code for the job
            worker.job = job
        return worker.proc.pid

    def prestart(self, count: int, threads: int) -> None:
        """Start idle workers up to `count` for trails of `threads` threads, before any trail is handed over: each
        imports Python and the harness while the sweep still writes run dirs and starts tracking."""
        idle = [w for w in self._workers if w.job is None and w.threads in (threads, None)]
        for _ in range(count - len(idle)):
            self._spawn(threads, None)

    def _spawn(self, threads: int, log: Optional[Path]) -> _Worker:
        proc = spawn(["--serve"], threads, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        worker = self._adopt(proc, threads)
        self._workers.append(worker)
        return worker

    @staticmethod
    def _adopt(proc: subprocess.Popen, threads: Optional[int]) -> _Worker:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        return _Worker(proc, threads)

    def waitables(self) -> List[int]:
        """The reply pipes of the busy workers: readable when a worker answers, and at end of file when it dies."""
        return [w.proc.stdout.fileno() for w in self._workers if w.job is not None and w.proc.stdout is not None]

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
                wait_exit(proc, STOP_WAIT_S)
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
        return wait_exit(proc, STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        stop(proc)
        return proc.wait()
