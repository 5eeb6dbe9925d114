"""The launch-backend protocol: submit trails, poll their states, cancel them. Backends are thin layers over the
library that does the work (subprocess, Ray, submitit); the trail itself always runs `harness.runner.run_trail_dir`,
which writes status.json — so `poll` may read the run dir, and the backend adds only what it alone knows
(queued, lost, killed). Each backend registers a `BackendPlugin` (harness.plugins) naming its class."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Protocol

from omegaconf import DictConfig

from harness.states import TrailState


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


def get_backend(cfg: DictConfig) -> Backend:
    """The backend named by cfg.backend.name, made with its config section (its module imported only now)."""
    from harness import plugins

    return plugins.backend(cfg.backend.name).create(cfg.backend)
