"""OS file locks for sweeps and trails: one writer per sweep dir and per run dir.

Why flock: the kernel releases the lock when its holder dies (SIGKILL, lost power of a local machine), so a dead
holder never has to be detected and cleaned up — the next process simply takes the lock over. The lock file holds
the holder's PID and host (JSON) so a refusal can say who has it. The file itself is never deleted (deleting a lock
file lets two processes lock two different files of the same name).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, Optional

from harness.errors import HarnessError
from harness.store.safe_files import open_fd, read_bytes

RECORD_BYTES = 256  # the holder's record, padded: rewritten in place by each beat
SWEEP_LOCK = "sweep.lock"
TRAIL_LOCK = "trail.lock"


class LockHeld(HarnessError):
    """The lock is held by another live process (named in the message)."""

    def __init__(self, path: Path, what: str, holder: Dict[str, Any]):
        self.path, self.holder = path, holder
        who = f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')}"
        super().__init__(f"{what} is in use by {who} (lock {path})")


def read_holder(path: Path | str) -> Dict[str, Any]:
    """What the last holder wrote into the lock file (pid, host, since); empty when unknown."""
    try:
        data = json.loads(read_bytes(path).decode("utf-8") or "{}")
    except (OSError, ValueError, HarnessError):
        return {}
    return data if isinstance(data, dict) else {}


class FileLock:
    """An exclusive flock on `path`, held until `release()` or the process's death. Usable as a context manager."""

    def __init__(self, path: Path | str, what: str = ""):
        self.path = Path(path)
        self.what = what or str(self.path.parent)
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: bool = False, on_wait: Optional[Any] = None) -> FileLock:
        """Take the lock; raise LockHeld if another process has it, or block until it is free when `wait`."""
        if self._fd is not None:
            return self
        fd = open_fd(self.path, os.O_RDWR | os.O_CREAT)  # never through a link: its target would be overwritten
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if not wait:
                    raise LockHeld(self.path, self.what, read_holder(self.path)) from None
                if on_wait is not None:
                    on_wait(read_holder(self.path))
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._since = time.time()
            os.ftruncate(fd, 0)
            self._write(fd, self._since)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _write(self, fd: int, beat: float) -> None:
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": self._since, "beat": beat})
        os.pwrite(fd, record.ljust(RECORD_BYTES).encode(), 0)  # one write of one size: a reader sees all of it

    def beat(self) -> None:
        """Say that the holder is alive and working (the lock file's `beat`): a supervisor that finds the beat
        old takes the holder for stopped or hung, however alive its process."""
        if self._fd is not None:
            self._write(self._fd, time.time())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(path: Path | str) -> bool:
    """Whether a live process (this one included, through another descriptor) holds the lock at `path`."""
    try:
        fd = open_fd(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def sweep_lock(sweep_dir: Path) -> FileLock:
    return FileLock(Path(sweep_dir) / SWEEP_LOCK, f"sweep {Path(sweep_dir).name!r}")


def trail_lock(run_dir: Path) -> FileLock:
    return FileLock(Path(run_dir) / TRAIL_LOCK, f"trail {Path(run_dir).name!r}")
