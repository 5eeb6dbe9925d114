"""`python -m harness.worker RUN_DIR`: the process a backend starts for one trail; its exit code is
`TrailState.exit_code` of the outcome (0 done, 3 diverged, 1 failed, 130 cancelled), or LOCKED_EXIT when another
live process holds the trail's lock (the worker then ran and wrote nothing), or IO_EXIT when its run dir could not
be written."""

from __future__ import annotations

import signal
import sys

from harness.errors import describe_os_error
from harness.interrupts import raise_interrupt
from harness.locks import LockHeld
from harness.runner import run_trail_dir
from harness.states import TrailState

LOCKED_EXIT = 75  # EX_TEMPFAIL: the trail is being run by another process
IO_EXIT = 74      # EX_IOERR: the run dir could not be written (a full disk, a read-only file system)


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
    except OSError as exc:  # the run dir cannot be written (a full disk): the sweep records what it can
        try:
            print(f"harness: error: {describe_os_error(exc)}", file=sys.stderr, flush=True)
        except OSError:  # stderr is the run dir's log.txt, on the same full disk
            pass
        return IO_EXIT


if __name__ == "__main__":
    sys.exit(main())
