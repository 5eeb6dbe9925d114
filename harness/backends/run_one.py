"""One trail in the foreground (`harness run`), in <root>/single/<trail dir>: laid out as a sweep lays out its
trails, so that `harness status`, `report` and `sync` read it as they read any sweep. What the command shows while
it runs is harness/commands.py's (`main_run`); this module returns data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from omegaconf import DictConfig

from harness.backends.runner import run_trail_dir
from harness.engines import StepCallback
from harness.errors import HarnessError
from harness.spec.compose import compose_trail
from harness.spec.trails import Trail, make_trails
from harness.store.rundir import save_config
from harness.store.states import TrailState
from harness.store.sweepdir import write_sweep_meta, write_trail_meta

SINGLE_SWEEP = "single"


@dataclass
class SingleTrail:
    """A composed trail and where `harness run` runs it."""

    trail: Trail
    run_dir: Path
    overrides: List[str] = field(default_factory=list)

    @property
    def cfg(self) -> DictConfig:
        return self.trail.cfg


def single_trail(overrides: List[str], root: Optional[str] = None) -> SingleTrail:
    """Compose the one trail `overrides` name; comma-separated values (a sweep) are refused."""
    if any(("," in o.split("=", 1)[-1] and not o.split("=", 1)[-1].startswith("[")) for o in overrides if "=" in o):
        raise HarnessError("`harness run` runs one trail; use `harness sweep` for comma-separated values")
    cfg = compose_trail(overrides)
    (trail,) = make_trails([(cfg, list(overrides))])
    return SingleTrail(trail, trail.run_dir(Path(root or cfg.root) / SINGLE_SWEEP), list(overrides))


def run_single(single: SingleTrail, on_step: Optional[StepCallback] = None) -> TrailState:
    """Write the trail's run dir (and its sweep's record) and run it in this process; its final state."""
    save_config(single.run_dir, single.cfg, single.overrides)
    write_trail_meta(single.run_dir, single.trail, SINGLE_SWEEP)
    write_sweep_meta(single.run_dir.parent, name=SINGLE_SWEEP,
                     description="trails run one at a time with `harness run`")
    return run_trail_dir(single.run_dir, on_step=on_step)
