"""`python -m harness.backends.worker RUN_DIR`: the process a backend starts for one trail; its exit code is
`TrailState.exit_code` of the outcome (0 done, 3 diverged, 1 failed, 130 cancelled), or LOCKED_EXIT when another
live process holds the trail's lock (the worker then ran and wrote nothing), or IO_EXIT when its run dir could not
be written.

`python -m harness.backends.worker --serve`: a warm worker (harness.backends.pool) that runs trail after trail in one
process, so Python, torch and the engine are imported once per worker rather than once per trail. It reads one JSON
request per line on stdin ({"run_dir", "log", "threads", "engine", "entry_points"}: the trail, its log, its thread
count, its engine and the plug-in entry points the sweep read) and answers each with one JSON line {"code": <exit code
as above>} on stdout; each trail's own output goes to its log file. A cancelled trail (SIGTERM) ends the worker, as it
ends a per-trail process; end of input ends it too. """

from __future__ import annotations

import gc
import json
import os
import random
import signal
import sys
import traceback
from typing import IO, Dict, Optional, Set

from harness import plugins
from harness.backends.runner import run_trail_dir
from harness.backends.spawn import PARENT_VAR, THREAD_VARS  # noqa: F401 - THREAD_VARS re-exported
from harness.engines import get_engine
from harness.errors import HarnessError, describe_os_error
from harness.interrupts import raise_interrupt
from harness.logs import dump_stacks_on_sigusr1
from harness.store.locks import LockHeld
from harness.store.rundir import load_config
from harness.store.safe_files import open_fd
from harness.store.states import TrailState

LOCKED_EXIT = 75  # EX_TEMPFAIL: the trail is being run by another process
IO_EXIT = 74      # EX_IOERR: the run dir could not be written (a full disk, a read-only file system)


def run_one(run_dir: str) -> int:
    """Run one trail; its exit code. KeyboardInterrupt (SIGTERM, Ctrl-C) propagates once the trail recorded it."""
    try:
        return run_trail_dir(run_dir).exit_code
    except LockHeld as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return LOCKED_EXIT
    except OSError as exc:  # the run dir cannot be written (a full disk): the sweep records what it can
        try:
            print(f"harness: error: {describe_os_error(exc)}", file=sys.stderr, flush=True)
        except OSError:  # stderr is the run dir's log.txt, on the same full disk
            pass
        return IO_EXIT


def end_with_parent() -> None:
    """SIGTERM this worker when the sweep process that started it (PARENT_VAR) dies, however it dies (Linux
    PR_SET_PDEATHSIG); a parent already gone is caught by its PID.

    Why: workers run in sessions of their own (Ctrl-C reaches them only through the sweep), so a SIGKILLed sweep
    would otherwise leave them running, holding their trails' locks, unseen by the next run of the sweep; SIGTERM
    lets each record itself cancelled and release its lock, and a rerun resumes it from its checkpoint. Set here
    rather than between fork and exec: a preexec_fn makes every spawn a full fork of the sweep process, several
    times slower than the spawn Python does without one.
    """
    parent = os.environ.pop(PARENT_VAR, "")
    if not parent.isdigit():
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the trail locks still keep a second run away
        return
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    end_with_parent()
    dump_stacks_on_sigusr1()
    if argv == ["--serve"]:
        return serve()
    if len(argv) != 1:
        print("usage: python -m harness.backends.worker RUN_DIR | --serve", file=sys.stderr)
        return 2
    # SIGTERM (a cancelled sweep) unwinds like Ctrl-C so the trail is recorded as cancelled, its metrics kept.
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        return run_one(argv[0])
    except KeyboardInterrupt:
        return TrailState.CANCELLED.exit_code


# --- warm worker -----------------------------------------------------------------------------------------------

class _Fresh:
    """What a new process would start a trail with, restored before each trail of a warm worker: environment,
    working directory, signal handlers, thread counts, torch's global modes and the global random generators
    (which a fresh process seeds from the OS: an engine that wants reproducibility seeds its own)."""

    def __init__(self) -> None:
        self.environ: Dict[str, str] = dict(os.environ)
        self.cwd = os.getcwd()

    def restore(self, threads: int) -> None:
        os.environ.clear()
        os.environ.update(self.environ)
        for var in THREAD_VARS:
            os.environ[var] = str(threads)
        os.chdir(self.cwd)
        signal.signal(signal.SIGTERM, raise_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        random.seed()
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        torch = sys.modules.get("torch")
        if torch is not None:  # imported by an earlier trail: undo what that trail may have changed
            torch.seed()
            torch.set_num_threads(threads)
            torch.set_grad_enabled(True)
            torch.set_default_dtype(torch.float32)
            if torch.are_deterministic_algorithms_enabled():  # the call itself costs seconds the first time
                torch.use_deterministic_algorithms(False)


def _point_output_at(path: str) -> None:
    """fds 1 and 2 (and the engine's subprocesses) write to `path` from now on."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:  # never through a link; a log.txt that is not a regular file is the runner's to refuse, in one line
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except (OSError, HarnessError):
        fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def serve() -> int:
    """Run trails as they are requested until input ends (exit 0) or a trail is cancelled (exit 130)."""
    # the request and reply pipes move to private descriptors, so neither the trail nor the programs it starts can
    # read a request or write into a reply; stdin becomes /dev/null
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    fresh = _Fresh()
    engines: Set[str] = set()
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        _settle()
        for line in requests:
            request = json.loads(line)
            _point_output_at(request["log"])
            fresh.restore(int(request.get("threads", 1)))
            plugins.use_entry_points(request.get("entry_points", ()))  # as the sweep read them
            try:
                _import_engine(request["run_dir"], engines, request.get("engine") or None)
                code = run_one(request["run_dir"])
            except KeyboardInterrupt:
                _reply(replies, TrailState.CANCELLED.exit_code)
                return TrailState.CANCELLED.exit_code
            except Exception as exc:  # noqa: BLE001 - before the runner could record it (an unreadable config)
                traceback.print_exc()
                print(f"harness: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                code = TrailState.FAILED.exit_code  # the sweep records it, as for a per-trail process
            finally:
                _point_output_at(os.devnull)
            _reply(replies, code)
            gc.collect()  # what the trail left in reference cycles, while the sweep picks the next trail
    except KeyboardInterrupt:  # told to stop between trails
        return TrailState.CANCELLED.exit_code
    return 0


def _settle() -> None:
    """Before the first request: the work its trail would otherwise wait for, done while the sweep still composes —
    the built-in plug-in records imported, and what the worker imported so far collected once and frozen out of the
    garbage collector's reach (the collection after the engine's import then scans only what that import made)."""
    try:
        plugins.preload_builtins()
    except Exception:  # noqa: BLE001 - the trail that needs one meets the error, and its log says it
        pass
    gc.collect()
    gc.freeze()


def _import_engine(run_dir: str, engines: Set[str], name: Optional[str] = None) -> None:
    """Import the trail's engine (`name`, as the request says, else read from its config) the first time the worker
    meets it, then freeze everything imported so far out of the garbage collector's reach (gc.freeze): the collection
    after each trail then scans what the trail made, not torch's whole object graph (a third of a second each). A
    config that cannot be read is left to the runner, which records why."""
    if name is None:
        try:
            name = str(load_config(run_dir).engine.name)
        except Exception:  # noqa: BLE001 - the runner reports it as the trail's failure
            return
    if name not in engines:
        engines.add(name)
        try:
            get_engine(name)
        except Exception:  # noqa: BLE001 - likewise: the trail fails with the import error
            return
        gc.collect()
        gc.freeze()


def _reply(replies: IO[str], code: int) -> None:
    try:
        replies.write(json.dumps({"code": code}) + "\n")
        replies.flush()
    except (BrokenPipeError, KeyboardInterrupt):  # the sweep is gone or stopping: nobody waits for the answer
        pass


if __name__ == "__main__":
    sys.exit(main())
