"""The launch-backend protocol: submit trails, poll their states, cancel them. Backends are thin layers over the
library that does the work (subprocess, Ray, submitit); the trail itself always runs `harness.runner.run_trail_dir`,
which writes status.json — so `poll` may read the run dir, and the backend adds only what it alone knows
(queued, lost, killed)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, List, Protocol

from omegaconf import DictConfig

BACKEND_MODULES = {
    "local": "harness.backends.local:LocalBackend",
    "ray": "harness.backends.ray_backend:RayBackend",
    "slurm": "harness.backends.slurm:SlurmBackend",
}


class Backend(Protocol):
    def submit(self, run_dirs: List[Path]) -> List[Any]:
        """Start (or queue) one job per run dir; return opaque handles in the same order."""

    def poll(self, handle: Any) -> str:
        """One of: pending | running | done | diverged | failed | cancelled."""

    def cancel(self, handle: Any) -> None: ...

    def close(self) -> None:
        """Release what the backend started (pools, a local Ray head); jobs on a cluster keep running if detached."""


def get_backend(cfg: DictConfig) -> Backend:
    """Instantiate the backend named by cfg.backend.name with its config section (imported lazily)."""
    module_name, cls_name = BACKEND_MODULES[cfg.backend.name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(cfg.backend)
