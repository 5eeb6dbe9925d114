"""Starting the local backend's worker processes (`python -m harness.backends.worker`), and the spare warm worker
a sweep command starts before it knows it will need one.

Why a spare: a warm worker spends about as long importing Python and the harness as the sweep command spends
importing Hydra and composing its trails; started first, it has done so by the time the sweep hands it the first
trail, instead of starting only then. The command line starts it as `harness sweep` begins (not for a dry run nor a
detached sweep) and the local backend adopts it; a sweep that turns out not to need it (another backend, an invalid
trail) ends it at once. A spare has no thread count yet: the worker sets the BLAS thread variables from its first
request before it imports any engine, and keeps that count from then on (harness.backends.pool).

Light on purpose (no harness import): the command line imports it before anything else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, List, Optional

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PARENT_VAR = "HARNESS_WORKER_PARENT"  # the PID of the sweep process that started a worker (harness.backends.worker)

_spares: List[subprocess.Popen] = []  # this process's spare warm workers, not yet adopted


def spawn(args: List[str], threads: Optional[int], log: Optional[Path], **popen: Any) -> subprocess.Popen:
    """`python -m harness.backends.worker ARGS` in a session of its own, output appended to `log` (None: discarded,
    for a warm worker started before its first trail, which points its output at each trail's log), the BLAS thread
    variables set to `threads` (None: as this process has them, for a spare)."""
    env = dict(os.environ, **{PARENT_VAR: str(os.getpid())})  # the worker ends when this process dies
    if threads is not None:
        env.update({var: str(threads) for var in THREAD_VARS})
    with _open_log(log) as out:
        return subprocess.Popen([sys.executable, "-m", "harness.backends.worker", *args], stderr=out,
                                stdout=popen.pop("stdout", out), env=env, start_new_session=True, **popen)


def _open_log(log: Optional[Path]) -> IO[bytes]:
    """`log` opened to append, never through a link (harness.store.safe_files); /dev/null for None."""
    if log is None:
        return open(os.devnull, "ab")
    from harness.store.safe_files import open_regular  # only here: a spare (no log) imports nothing of the harness

    return open_regular(log, "ab")


def start_spare() -> None:
    """Start a spare warm worker (at most one per process)."""
    if not _spares:
        _spares.append(spawn(["--serve"], None, None, stdin=subprocess.PIPE, stdout=subprocess.PIPE))


def take_spare() -> Optional[subprocess.Popen]:
    """The spare warm worker, if one was started and is still alive, now the caller's to run and end."""
    while _spares:
        proc = _spares.pop()
        if proc.poll() is None:
            return proc
        proc.wait()
    return None


def end_spare() -> None:
    """End a spare no one adopted: it has run nothing, so it is killed rather than asked."""
    while _spares:
        proc = _spares.pop()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        proc.kill()
        proc.wait()
