"""`python -m harness.worker RUN_DIR`: the process a backend starts for one trail; its exit code is
`TrailState.exit_code` of the outcome (0 done, 3 diverged, 1 failed, 130 cancelled), or LOCKED_EXIT when another
live process holds the trail's lock (the worker then ran and wrote nothing)."""

from __future__ import annotations

import signal
import sys

from harness.interrupts import raise_interrupt
from harness.locks import LockHeld
from harness.runner import run_trail_dir
from harness.states import TrailState

LOCKED_EXIT = 75  # EX_TEMPFAIL: the trail is being run by another process


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.worker RUN_DIR", file=sys.stderr)
        return 2
    # SIGTERM (a cancelled sweep) unwinds like Ctrl-C so the trail is recorded as cancelled, its metrics kept.
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        return run_trail_dir(argv[0]).exit_code
    except LockHeld as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return LOCKED_EXIT
    except KeyboardInterrupt:
        return TrailState.CANCELLED.exit_code


if __name__ == "__main__":
    sys.exit(main())
