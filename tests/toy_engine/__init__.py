"""A toy engine that lives outside the harness package: the whole of what a new engine needs.

It is registered by pointing HARNESS_PLUGINS at `toy_engine:PLUGIN` (or an entry point in the `harness.plugins`
group); with that, `engine=toy` composes, validates, runs on any backend and is journalled like a built-in engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from harness.engines import EngineResult, StepCallback
from harness.errors import ConfigError
from harness.plugins import EnginePlugin
from harness.store.journal import Journal


@dataclass
class ToyEngineConfig:
    name: str = "toy"
    steps: int = 3
    diverge_at: int = 0      # > 0: report divergence at this step


def check(cfg) -> None:
    if cfg.engine.steps < 1:
        raise ConfigError("engine.steps", cfg.engine.steps, "an integer ≥ 1")


def preflight(trails: Sequence, sweep_dir: Optional[Path] = None) -> List[str]:
    return [f"{t.name}: toy refuses stale=99" for t in trails if t.cfg.stale == 99]


PREPARED: List[List[str]] = []  # the trails of each call of `prepare`, in this process


def prepare(trails: Sequence, say: Callable[[str, str], None]) -> None:
    """Work every trail needs once (here: nothing but saying so), done by the sweep before launch."""
    PREPARED.append(sorted(t.name for t in trails))
    say("toy setup", f"ready for {len(trails)} trails")


def run(cfg, run_dir: Path, journal: Journal, on_step: StepCallback) -> EngineResult:
    steps = int(cfg.engine.steps)
    for step in range(1, steps + 1):
        if step == cfg.engine.diverge_at:
            return EngineResult("diverged", step, "toy divergence")
        metrics = {"eval/reward": 1.0 / (1 + cfg.stale) + step / 100}
        journal.append(step, metrics)
        on_step(step, steps, metrics)
    return EngineResult("done", steps)


PLUGIN = EnginePlugin(name="toy", schema=ToyEngineConfig, run="toy_engine:run", check=check,
                      preflight="toy_engine:preflight", prepare="toy_engine:prepare")
