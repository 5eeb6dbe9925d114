"""A trail's state: the one definition of the states, which of them are final, and what each means to a process
exit code and to MLflow. A leaf module (no harness imports), so every writer and reader of status.json can use it.

    pending ──► running ──► done        a rerun skips it (finished)
                   │   ├──► diverged    NaN/inf: metrics kept, a rerun skips it (finished)
                   │   ├──► failed      an exception or a lost worker: a rerun runs it again
                   │   ├──► cancelled   interrupted (Ctrl-C, SIGTERM, scancel): a rerun runs it again
                   │   └──► interrupted its process died without a word (SIGKILL, lost machine): found by
                   │                    `harness status` as "running" with its trail lock free; a rerun resumes it
                   └──► pending         requeued by a scheduler after preemption
"""

from __future__ import annotations

from enum import Enum
from typing import Tuple


class TrailState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DIVERGED = "diverged"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:  # "done", not "TrailState.DONE", in messages and f-strings
        return self.value

    def __format__(self, spec: str) -> str:  # f"{state:>8}" pads the value, as for a str
        return format(self.value, spec)

    __hash__ = str.__hash__  # a member and its value are the same dict key

    @property
    def finished(self) -> bool:
        """Ran to its end (done or diverged): a rerun of the sweep skips it."""
        return self in (TrailState.DONE, TrailState.DIVERGED)

    @property
    def terminal(self) -> bool:
        """Will not change unless the sweep is run again."""
        return self not in (TrailState.PENDING, TrailState.RUNNING)

    @property
    def exit_code(self) -> int:
        """The worker process's exit status for a trail that ended in this state (130: interrupted, as for SIGINT)."""
        return {TrailState.DONE: 0, TrailState.DIVERGED: 3, TrailState.CANCELLED: 130}.get(self, 1)

    @property
    def mlflow_status(self) -> str:
        """The MLflow run status of a trail in this state (a diverged trail ran to its end: FINISHED)."""
        return {TrailState.DONE: "FINISHED", TrailState.DIVERGED: "FINISHED", TrailState.FAILED: "FAILED",
                TrailState.CANCELLED: "KILLED", TrailState.INTERRUPTED: "KILLED", TrailState.RUNNING: "RUNNING",
                TrailState.PENDING: "SCHEDULED"}[self]


STATES: Tuple[str, ...] = tuple(s.value for s in TrailState)
TERMINAL: Tuple[TrailState, ...] = tuple(s for s in TrailState if s.terminal)
FINISHED: Tuple[TrailState, ...] = tuple(s for s in TrailState if s.finished)
ACTIVE: Tuple[TrailState, ...] = (TrailState.PENDING, TrailState.RUNNING)
