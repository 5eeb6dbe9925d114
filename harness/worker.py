"""`python -m harness.worker RUN_DIR`: the process a backend starts for one trail. Exit 0 done, 3 diverged, 1 failed."""

from __future__ import annotations

import signal
import sys

from harness.interrupts import raise_interrupt
from harness.runner import run_trail_dir

EXIT_CODES = {"done": 0, "diverged": 3, "failed": 1, "cancelled": 130}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.worker RUN_DIR", file=sys.stderr)
        return 2
    # SIGTERM (a cancelled sweep) unwinds like Ctrl-C so the trail is recorded as cancelled, its metrics kept.
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        return EXIT_CODES.get(run_trail_dir(argv[0]), 1)
    except KeyboardInterrupt:
        return EXIT_CODES["cancelled"]


if __name__ == "__main__":
    sys.exit(main())
