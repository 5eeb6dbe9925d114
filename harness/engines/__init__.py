"""Engines run one trail. Each registers an `EnginePlugin` (harness.plugins) whose `run` has the `RunFn` shape.

The record lives in the engine's torch-free config module; its run module is imported only when a trail runs, so
composing configs never pulls in torch (embedded) or subprocess plumbing (areal).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Tuple

from omegaconf import DictConfig

from harness.store.journal import Journal
from harness.store.states import TrailState

# on_step(step, total_steps, metrics_of_that_step)
StepCallback = Callable[[int, int, dict], None]


@dataclass
class EngineResult:
    state: TrailState     # done | diverged
    step: int             # last step completed (diverged: the step at which it diverged)
    reason: str = ""
    # Steps up to `step` that ran but whose metrics the engine could not get and never will (AReaL: stopped after a
    # recover checkpoint and before the step's stats were written; its recover resumes after the checkpoint). The
    # trail is complete without them, and its status names them.
    unlogged: Tuple[int, ...] = ()


# run(cfg, run_dir, journal, on_step) -> EngineResult
RunFn = Callable[[DictConfig, Path, Journal, StepCallback], EngineResult]


def get_engine(name: str) -> RunFn:
    """The run function of the engine registered under `name` (imports its run module)."""
    from harness import plugins

    return plugins.engine(name).load_run()
