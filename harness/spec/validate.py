"""Semantic checks of a composed trail config that types alone cannot express (alloc syntax, ranges, registries).

The axes and the algorithm are checked here; engine and backend settings by their plug-ins' own `check`.
"""

from __future__ import annotations

import math

from omegaconf import DictConfig

from harness import plugins
from harness.errors import ConfigError
from harness.spec.axes import ALGO_VARIANTS, parse_alloc  # noqa: F401 - parse_alloc re-exported for engines
from harness.tracking.config import LIVE, LIVE_MODES


def _check(cond: bool, key: str, value: object, allowed: str) -> None:
    if not cond:
        raise ConfigError(key, value, allowed)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first invalid setting of a composed trail config."""
    _check(_is_int(cfg.stale) and cfg.stale >= 0, "stale", cfg.stale, "an integer ≥ 0 (max_head_offpolicyness)")
    parse_alloc(cfg.alloc)
    _check(_is_int(cfg.rollout) and cfg.rollout >= 1, "rollout", cfg.rollout,
           "an integer ≥ 1 (max_concurrent_rollouts)")
    _check(_is_int(cfg.seed) and cfg.seed >= 0, "seed", cfg.seed, "an integer ≥ 0")
    _check(cfg.algo.name in ALGO_VARIANTS, "algo.name", cfg.algo.name, " | ".join(ALGO_VARIANTS))
    variants = ALGO_VARIANTS[cfg.algo.name]
    _check(cfg.algo.variant in variants, "algo.variant", cfg.algo.variant,
           f"{' | '.join(variants)} for algo={cfg.algo.name}")
    _check(cfg.algo.eps_clip >= 0, "algo.eps_clip", cfg.algo.eps_clip, "a number ≥ 0")
    _check(cfg.algo.m2_threshold > 0, "algo.m2_threshold", cfg.algo.m2_threshold, "a number > 0 (inf disables)")
    _check(cfg.algo.behav_imp_weight_cap > 0, "algo.behav_imp_weight_cap", cfg.algo.behav_imp_weight_cap,
           "a number > 0")
    # checked with tracking off too: a bad value is a typo whichever tracking group it sits beside
    _check(cfg.tracking.live in LIVE, "tracking.live", cfg.tracking.live, " | ".join(LIVE))
    _check(cfg.tracking.live_mode in LIVE_MODES, "tracking.live_mode", cfg.tracking.live_mode, " | ".join(LIVE_MODES))
    for key in ("deadline_s", "heartbeat_timeout_s"):
        value = cfg.tracking.get(key)
        _check(value is not None and math.isfinite(value) and value > 0, f"tracking.{key}", value,
               "a number of seconds > 0")
    engines, backends = plugins.engines(), plugins.backends()
    _check(cfg.engine.name in engines, "engine", cfg.engine.name, " | ".join(engines))
    _check(cfg.backend.name in backends, "backend", cfg.backend.name, " | ".join(backends))
    # then the selected components' own checks (each plug-in knows its settings)
    for plugin in (engines[cfg.engine.name], backends[cfg.backend.name]):
        if plugin.check is not None:
            plugin.check(cfg)
