"""Files under a sweep are opened only if they are regular files, never through a symbolic link.

Why: a sweep directory may be shared, copied or tampered with. A `journal.jsonl` or a lock that is a link would have
every write land in the link's target (any file the user can write), and a FIFO would block a reader forever. So
every open of such a file goes through here: `O_NOFOLLOW` refuses a link at the last path component, `O_NONBLOCK`
keeps the open of a FIFO from waiting for a writer, and `fstat` on the open descriptor refuses anything that is not
a regular file. The error names the file and what to do, in one line.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO, Any

from harness.errors import HarnessError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class NotRegularFile(HarnessError):
    """A file the harness reads or writes is a link, a FIFO, a device or a directory."""

    def __init__(self, path: Path | str, kind: str):
        self.path = Path(path)
        super().__init__(f"{path} is {kind}, not a regular file: refused (nothing is read or written through it); "
                         f"remove it, and the next run writes a fresh one")


def kind_of(mode: int) -> str:
    """'a symbolic link', 'a FIFO', … for an st_mode."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: Path | str, missing_ok: bool = True) -> bool:
    """lstat `path`: True for a regular file, False when it does not exist (with `missing_ok`); NotRegularFile for
    anything else (a link is refused whatever it points to)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, kind_of(mode))
    return True


def check_directory(path: Path | str) -> bool:
    """lstat `path`: True for a real directory, False when absent; NotRegularFile for a link or anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode):
        kind = kind_of(mode)
        raise HarnessError(f"{path} is {kind}, not a directory: refused (nothing is read or written through it); "
                           f"remove it, and the next run makes a fresh one")
    return True


def open_fd(path: Path | str, flags: int, mode: int = 0o644) -> int:
    """os.open with O_NOFOLLOW (and O_NONBLOCK, cleared once the file is known to be regular); refuses a link or
    any file that is not regular with NotRegularFile. Other OS errors (absent file, full disk) propagate."""
    try:
        fd = os.open(path, flags | NOFOLLOW | NONBLOCK, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a link; a FIFO opened to write; a directory
            try:
                st_mode = os.lstat(path).st_mode
            except OSError:
                raise exc from None
            if not stat.S_ISREG(st_mode):
                raise NotRegularFile(path, kind_of(st_mode)) from None
        raise
    try:
        st_mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(st_mode):
            raise NotRegularFile(path, kind_of(st_mode))
        if NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: Path | str, mode: str = "r", encoding: str | None = "utf-8") -> IO[Any]:
    """open() for a regular file only, never through a link: 'r', 'rb', 'a', 'ab', 'r+b', 'w', 'wb'."""
    flags = {"r": os.O_RDONLY, "rb": os.O_RDONLY, "a": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
             "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "r+b": os.O_RDWR,
             "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}[mode]
    fd = open_fd(path, flags)
    if "b" in mode:
        return open(fd, mode, closefd=True)
    return open(fd, mode, encoding=encoding, closefd=True)


def read_bytes(path: Path | str) -> bytes:
    """The whole of a regular file (FileNotFoundError when absent)."""
    with open_regular(path, "rb") as fh:
        return fh.read()


def read_text(path: Path | str) -> str:
    """A regular file as UTF-8 text; a file that is not UTF-8 is named in one line."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{path}: not a text file (byte {exc.start} is not UTF-8): restore it or remove it") \
            from None
