"""The launch-backend protocol: submit trails, poll their states, cancel them. Backends are thin layers over the library
that does the work (subprocess, Ray, submitit); the trail itself always runs `harness.backends.runner.run_trail_dir`,
which writes status.json — so `poll` may read the run dir, and the backend adds only what it alone knows (queued, lost,
killed). Each backend registers a `BackendPlugin` (harness.plugins) naming its class."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Protocol, Sequence

from omegaconf import DictConfig

from harness.store.states import TrailState

if TYPE_CHECKING:
    from harness.spec.trails import Trail


class Backend(Protocol):
    def submit(self, run_dirs: List[Path]) -> List[Any]:
        """Start (or queue) one job per run dir; return opaque handles in the same order."""

    def poll(self, handle: Any) -> TrailState:
        """The trail's state now: pending | running | done | diverged | failed | cancelled | interrupted."""

    def cancel(self, handle: Any) -> None:
        """Stop one trail and record it cancelled."""

    def cancel_all(self) -> None:
        """Stop every trail this backend submitted that has not ended."""

    def close(self) -> None:
        """Release what this process holds (a process pool, a local Ray head). Trails that cannot outlive this
        process end with it; jobs of a detachable backend (a scheduler's) keep running."""

    # Optional, called through wait_for_change and warm_up below where a backend has them:
    #   wait(timeout)    block until a trail may have changed state, at most `timeout` s
    #   warm_up(trails)  start what the trails will need, before their run dirs are written


def wait_for_change(backend: Backend, timeout: float) -> None:
    """Block until a trail of `backend` may have changed state, at most `timeout` s. A backend that can tell when a
    trail ends has `wait(timeout)` (the local one: its workers' reply pipes; Ray: its object refs), so the sweep
    learns of an ending at once; for one that cannot, this sleeps `timeout`."""
    wait = getattr(backend, "wait", None)
    if wait is None:
        time.sleep(timeout)
    else:
        wait(timeout)


def warm_up(backend: Backend, trails: Sequence[Trail]) -> None:
    """Let a backend start what `trails` will need before the sweep hands them over (its `warm_up`, if it has one:
    the local backend's warm workers), so that its start-up overlaps the sweep's own."""
    start = getattr(backend, "warm_up", None)
    if start is not None and trails:
        start(trails)


def get_backend(cfg: DictConfig) -> Backend:
    """The backend named by cfg.backend.name, made with its config section (its module imported only now)."""
    from harness import plugins

    return plugins.backend(cfg.backend.name).create(cfg.backend)
