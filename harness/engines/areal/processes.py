"""AReaL's processes: started in a session of their own, marked, and stopped all together.

Why all three: AReaL's launcher starts worker processes, RPC servers and a vLLM or SGLang server, and after a failure
some of them can outlive its main process (which can also hang). Starting AReaL with start_new_session puts the whole
tree in one process group that a single killpg reaches and that a Ctrl-C at the harness's terminal does not (the
harness decides when AReaL stops). The mark — an environment variable naming the run dir, which every descendant
inherits — finds the processes that left the group anyway (a library calling setsid, an orphan re-parented to init).

Stopping starts with AReaL's own Ctrl-C: SIGINT to its main process only, whose trainer then unwinds through
`PPOTrainer.__exit__` → `close()` → `StatsLogger.close()`, which flushes the TensorBoard writer (areal 1.0.4,
areal/trainer/rl_trainer.py and areal/utils/stats_logger.py; tensorboardX holds up to 10 events or 120 s in memory).
A SIGTERM or SIGKILL first would lose those last stats. The group gets SIGTERM, then SIGKILL, only if it has not
ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List

MARK = "HARNESS_AREAL_RUN"
INT_GRACE_S = 5.0     # SIGINT → SIGTERM: AReaL's close; the three graces stay well under the time in which the
TERM_GRACE_S = 2.0    # SIGTERM → SIGKILL        local backend SIGKILLs a cancelled worker (pool.STOP_WAIT_S)
PROC = Path("/proc")


def marked(value: str) -> List[int]:
    """PIDs of live processes (this user's, readable in /proc) whose environment carries MARK=value."""
    needle = b"\0" + f"{MARK}={value}".encode() + b"\0"   # a whole entry: not a longer name's or value's tail
    found: List[int] = []
    if not PROC.is_dir():
        return found
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours
        if needle in b"\0" + environ + b"\0":
            found.append(int(entry.name))
    return found


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pids(pids: List[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop(proc: subprocess.Popen, mark: str, grace_s: float = TERM_GRACE_S,
         interrupt_grace_s: float = INT_GRACE_S) -> None:
    """End AReaL: SIGINT to its main process, SIGTERM to its process group after `interrupt_grace_s`, SIGKILL to the
    group after `grace_s` more, then SIGKILL to any process still carrying the mark. Safe to call when everything has
    already exited."""
    if proc.poll() is None:
        _signal_pids([proc.pid], signal.SIGINT)
        try:
            proc.wait(timeout=interrupt_grace_s)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGKILL)   # workers may outlive the main process in its group
    if proc.poll() is None:
        proc.wait()
    deadline = time.monotonic() + grace_s
    while True:
        left = marked(mark)
        if not left:
            return
        _signal_pids(left, signal.SIGKILL)
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)
