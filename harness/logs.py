"""Logging of the `harness` command: libraries' INFO lines stay out of the way unless asked for with --verbose.

Why: what a user reads while a sweep runs is the harness's own account of its trails; MLflow creating its database
tables or a connection pool retrying is noise there, yet worth having when something goes wrong. Warnings and errors
always show, on stderr.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys

# Libraries that log at INFO on their own: their loggers are held at WARNING unless verbose.
QUIET_LOGGERS = ("alembic", "mlflow", "urllib3", "requests", "git", "matplotlib", "PIL", "filelock", "hydra",
                 "sqlalchemy", "httpx", "httpcore", "numexpr", "submitit", "ray")


def configure_logging(verbose: bool = False) -> None:
    """Send log records to stderr: INFO and up when verbose, else WARNING and up with QUIET_LOGGERS held there too.

    MLflow sets its own loggers' level when it is imported, from MLFLOW_LOGGING_LEVEL; that variable is set (unless the
    user set it) so its import does not lift them back to INFO, here or in the processes this one starts."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def dump_stacks_on_sigusr1() -> None:
    """`kill -USR1 PID` prints every thread's Python stack to the process's stderr (a sweep's terminal, a worker's
    trail log, the tracker's tracking.log) and the process goes on: where a sweep that seems stuck is waiting."""
    if not hasattr(signal, "SIGUSR1"):
        return
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (AttributeError, ValueError, OSError):  # stderr is no file here (a caller capturing it): the real one
        if sys.__stderr__ is not None:
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)


def duration(seconds: float) -> str:
    """84 s, 12 min 5 s, 1 h 3 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
