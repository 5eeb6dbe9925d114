"""SIGTERM as Ctrl-C: a process told to stop by its scheduler or by a cancelling sweep unwinds through
KeyboardInterrupt, so what it was doing is recorded (a trail as cancelled, its metrics kept) rather than cut off."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator


def raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt; the previous handler is restored after it."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
