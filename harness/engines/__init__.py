"""Engines run one trail. Each is a module with `run(cfg, run_dir, journal, on_step) -> EngineResult`.

Imported lazily by name so that composing configs never pulls in torch (embedded) or subprocess plumbing (areal).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from omegaconf import DictConfig

from harness.journal import Journal

# on_step(step, total_steps, metrics_of_that_step)
StepCallback = Callable[[int, int, dict], None]


@dataclass
class EngineResult:
    state: str            # "done" | "diverged"
    step: int             # last step completed (diverged: the step at which it diverged)
    reason: str = ""


class Engine(Protocol):
    def run(self, cfg: DictConfig, run_dir: Path, journal: Journal, on_step: StepCallback) -> EngineResult: ...


ENGINE_MODULES = {
    "embedded": "harness.engines.embedded.engine",
    "areal": "harness.engines.areal.engine",
}


def get_engine(name: str) -> Engine:
    if name not in ENGINE_MODULES:
        raise KeyError(f"unknown engine {name!r}; allowed: {', '.join(ENGINE_MODULES)}")
    return importlib.import_module(ENGINE_MODULES[name])  # type: ignore[return-value]
