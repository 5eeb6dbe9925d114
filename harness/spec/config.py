"""The harness's structured config: one schema registered with Hydra's ConfigStore, composed from conf/.

Engine and backend sections take their schemas from the plug-in registry (harness.plugins).

Why a schema: a misspelt key or a wrongly typed value must fail at composition, before anything launches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

from harness import plugins
from harness.internals import store_lazily
from harness.spec.resources import CONF_DIR
from harness.tracking.config import TrackingConfig


@dataclass
class AlgoConfig:
    name: str = "grpo"                 # an algorithm of harness.spec.axes.ALGO_VARIANTS
    variant: str = "clip"              # one of ALGO_VARIANTS[name]; the first is the default
    eps_clip: float = 0.2              # PPO clip ε (grpo)
    m2_threshold: float = 0.04         # M2PO τ
    behav_imp_weight_cap: float = 5.0  # AReaL's rejection-sampling cap on π_prox/π_behav (decoupled losses)


@dataclass
class SweepConfig:
    """Settings of the sweep as a whole (not of a trail: they do not change a trail's id)."""
    max_trails: int = 1000             # a larger sweep runs only with --yes (a typo like range(0,5000) is caught)
    progress_every_s: float = 30.0     # off a terminal, a line of counts this often while trails run


@dataclass
class HarnessConfig:
    # the axes
    stale: int = 1                     # AReaL rollout.max_head_offpolicyness
    alloc: str = "d2+d1"               # x rollout workers + y training workers
    rollout: int = 96                  # AReaL rollout.max_concurrent_rollouts
    seed: int = 1
    algo: AlgoConfig = MISSING
    engine: Any = MISSING
    backend: Any = MISSING
    tracking: TrackingConfig = MISSING
    # where sweeps and trail directories live
    root: str = "runs"
    sweep: SweepConfig = field(default_factory=SweepConfig)
    # free-form tags carried into tracking
    tags: List[str] = field(default_factory=list)
    note: Optional[str] = None


def register_configs() -> None:
    """Register the schema nodes that conf/*.yaml extend (idempotent). Each is built when a composition first reads
    it (harness.internals.store_lazily): a sweep reads those of the options its trails select."""
    store_lazily(None, "harness_schema", HarnessConfig)
    store_lazily("algo", "algo_schema", AlgoConfig)
    store_lazily("tracking", "tracking_schema", TrackingConfig)
    for group, registered in (("engine", plugins.engines()), ("backend", plugins.backends())):
        for name, plugin in registered.items():
            store_lazily(group, f"{name}_schema", plugin.schema)
            if not (CONF_DIR / group / f"{name}.yaml").is_file():
                # a plug-in without a yaml in conf/ is selectable by name with its schema's defaults
                store_lazily(group, name, plugin.schema)


def schemas() -> List[type]:
    """Every schema dataclass a composed config can hold (for error messages that list allowed keys)."""
    return [HarnessConfig, AlgoConfig, TrackingConfig, *(p.schema for p in plugins.engines().values()),
            *(p.schema for p in plugins.backends().values())]
