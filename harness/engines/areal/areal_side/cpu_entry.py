"""Run an AReaL entry point (e.g. examples/math/gsm8k_rl.py) with AReaL's worker start-up limits raised.

Usage (in AReaL's Python, from the AReaL checkout):  python cpu_entry.py ENTRYPOINT [ARGS...]
The AReaL engine uses it only when engine.device=cpu; on GPUs the entry point runs as AReaL ships it.

Why: areal 1.0.4 waits at most 30 s for a freshly started worker to answer (areal/infra/scheduler/local.py,
LocalScheduler(startup_timeout=30.0); areal/infra/data_service/controller/controller.py,
DataController._WORKERS_READY_TIMEOUT = 30.0). A worker's imports alone (torch, transformers, vLLM) take 30 to 40 s on
a loaded two-core machine, so AReaL gives up on workers that are still starting. Both limits become
HARNESS_AREAL_STARTUP_TIMEOUT_S (default 600 s). And a Ctrl-C closes AReaL's TensorBoard writer before anything
else (close_tensorboard_on_ctrl_c), so the stats it holds in memory reach the file. Nothing else of AReaL changes.
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


def close_tensorboard_on_ctrl_c(wait_s: float = 3.0) -> None:
    """On SIGINT (how the harness asks AReaL to stop), close every tensorboardX writer first, then raise
    KeyboardInterrupt as Python's own handler would.

    Why: AReaL's trainer closes its writer last in `PPOTrainer.close()`, after it has stopped its data service and
    deleted its workers (areal 1.0.4, areal/trainer/rl_trainer.py), which on a small CPU machine outlasts the
    harness's 5 s before SIGTERM; tensorboardX keeps up to 10 queued events and 120 s of written ones in memory
    (tensorboardX 2.6, event_file_writer.py), so a step's stats were lost or cut in half. Closing drains the queue and
    flushes the file. It runs in a thread the handler waits on for at most `wait_s`: should the signal land while the
    main thread holds the writer's queue lock, the close finishes as the main thread unwinds instead of deadlocking."""
    import signal
    import threading
    import weakref

    from tensorboardX import SummaryWriter

    writers: weakref.WeakSet[SummaryWriter] = weakref.WeakSet()
    init = SummaryWriter.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        writers.add(self)

    SummaryWriter.__init__ = __init__

    def close_all() -> None:
        for writer in list(writers):
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - a writer that cannot close keeps what it flushed
                traceback.print_exc()

    def on_ctrl_c(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)   # a second Ctrl-C interrupts at once
        closing = threading.Thread(target=close_all, name="harness-close-tensorboard", daemon=True)
        closing.start()
        closing.join(wait_s)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_ctrl_c)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: cpu_entry.py ENTRYPOINT [ARGS...]")
    raise_startup_limits(float(os.environ.get("HARNESS_AREAL_STARTUP_TIMEOUT_S", "600")))
    close_tensorboard_on_ctrl_c()
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
