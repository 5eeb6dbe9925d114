"""Run an AReaL entry point (e.g. examples/math/gsm8k_rl.py) with AReaL's worker start-up limits raised.

Usage (in AReaL's Python, from the AReaL checkout):  python cpu_entry.py ENTRYPOINT [ARGS...]
The AReaL engine uses it only when engine.device=cpu; on GPUs the entry point runs as AReaL ships it.

Why: areal 1.0.4 waits at most 30 s for a freshly started worker to answer (areal/infra/scheduler/local.py,
LocalScheduler(startup_timeout=30.0); areal/infra/data_service/controller/controller.py,
DataController._WORKERS_READY_TIMEOUT = 30.0). A worker's imports alone (torch, transformers, vLLM) take 30 to 40 s on
a loaded two-core machine, so AReaL gives up on workers that are still starting. Both limits become
HARNESS_AREAL_STARTUP_TIMEOUT_S (default 600 s); nothing else of AReaL changes.
"""

from __future__ import annotations

import functools
import os
import runpy
import sys
import traceback


def raise_startup_limits(seconds: float) -> None:
    from areal.infra.data_service.controller.controller import DataController
    from areal.infra.scheduler.local import LocalScheduler

    DataController._WORKERS_READY_TIMEOUT = seconds
    init = LocalScheduler.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if len(args) < 3:  # startup_timeout is the third positional parameter; only an unset one is raised
            kwargs.setdefault("startup_timeout", seconds)
        init(self, *args, **kwargs)

    LocalScheduler.__init__ = __init__


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: cpu_entry.py ENTRYPOINT [ARGS...]")
    raise_startup_limits(float(os.environ.get("HARNESS_AREAL_STARTUP_TIMEOUT_S", "600")))
    entrypoint = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(entrypoint))  # what `python ENTRYPOINT` would have there
    try:
        runpy.run_path(entrypoint, run_name="__main__")
    except BaseException as exc:  # noqa: BLE001 - every way out of a failed run ends the process
        # Why os._exit: when PPOTrainer's construction fails (e.g. a worker missing a start-up limit), AReaL's main
        # process prints the traceback and then waits at interpreter exit for threads it started and never stops
        # (seen with areal 1.0.4: alive and sleeping, 10 threads, minutes after its TimeoutError). Ending it here lets
        # the harness see the failure at once; the harness then stops the workers it leaves behind.
        code = exc.code if isinstance(exc, SystemExit) else 1
        code = 0 if code is None else code if isinstance(code, int) else 1
        if code:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
