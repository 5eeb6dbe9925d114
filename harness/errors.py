"""Errors the harness reports to users: each names the key, the value and what is allowed."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path
from typing import Iterator


class HarnessError(Exception):
    """A user-facing error; the CLI prints its message and exits 2 without a traceback."""


class ConfigError(HarnessError):
    def __init__(self, key: str, value: object, allowed: str, where: str = ""):
        self.key, self.value, self.allowed, self.where = key, value, allowed, where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}invalid value for '{key}': {value!r} (allowed: {allowed})")


def describe_os_error(exc: OSError) -> str:
    """One line naming the path and the errno: '/runs/x/status.json: No space left on device (errno 28, ENOSPC)'."""
    path = exc.filename if exc.filename is not None else "?"
    name = errno.errorcode.get(exc.errno or 0, "")
    code = f"errno {exc.errno}, {name}" if name else f"errno {exc.errno}"
    return f"{path}: {exc.strerror or exc} ({code})"


@contextlib.contextmanager
def naming(path: Path | str) -> Iterator[None]:
    """An OSError raised by a write (which, unlike open, carries no file name) names the file it was writing."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise
