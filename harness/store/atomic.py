"""Atomic file writes: a reader sees the old file or the new one, never a torn one, and a failed write leaves
nothing behind (a full disk must not leave temp files)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from harness.errors import naming


@contextmanager
def atomic_write(path: Path) -> Iterator[TextIO]:
    """Write `path` through `.<name>.<pid>.tmp` beside it, fsync, then rename over it (a link at `path` is replaced,
    never written through). On any failure the temp file is removed and `path` is left as it was; an OSError names
    `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with naming(path):
            tmp.unlink(missing_ok=True)  # a stale one of a dead process of this PID, or a planted link: never followed
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with naming(path), open(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
