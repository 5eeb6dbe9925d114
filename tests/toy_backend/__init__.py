"""A toy scheduler backend outside the harness package: jobs that outlive the command (detachable), so the sweep's
Ctrl-C and `harness status` paths can be shown without a cluster. Nothing runs; `poll` stands for the user's Ctrl-C."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

from harness.plugins import BackendPlugin
from harness.store.rundir import record_outcome
from harness.store.states import TrailState

CANCELLED: List[Path] = []


@dataclass
class ToyQueueConfig:
    name: str = "toyq"


class ToyQueue:
    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def submit(self, run_dirs: List[Path]) -> List[Path]:
        for run_dir in run_dirs:
            record_outcome(run_dir, TrailState.PENDING, "queued (toyq)")
        return list(run_dirs)

    def poll(self, handle: Path) -> TrailState:
        raise KeyboardInterrupt  # the user presses Ctrl-C while the sweep watches

    def cancel(self, handle: Path) -> None:
        CANCELLED.append(handle)

    def cancel_all(self) -> None:
        raise AssertionError("a detachable backend's jobs are not cancelled on Ctrl-C")

    def close(self) -> None:
        pass


def poll_detached(run_dir: Path) -> TrailState:
    return TrailState.RUNNING


PLUGIN = BackendPlugin(name="toyq", schema=ToyQueueConfig, factory="toy_backend:ToyQueue", detachable=True,
                       poll_detached="toy_backend:poll_detached", cancel_hint="toyq-cancel <id>")
