"""Semantic checks of a composed trail config that types alone cannot express (alloc syntax, ranges, registries)."""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Tuple

from omegaconf import DictConfig

from harness.errors import ConfigError

ALLOC_RE = re.compile(r"^d([1-9][0-9]*)\+d([1-9][0-9]*)$")
ALGO_VARIANTS: Dict[str, Tuple[str, ...]] = {
    "grpo": ("clip", "decoupled"),
    "m2po": ("paper", "official", "areal"),
    "is": ("plain",),
}
ENGINES = ("embedded", "areal")
BACKENDS = ("local", "ray", "slurm")
STALENESS_MODES = ("fixed", "async")


def parse_alloc(alloc: str) -> Tuple[int, int]:
    """'d2+d1' -> (2 rollout workers, 1 training worker)."""
    match = ALLOC_RE.match(str(alloc))
    if not match:
        raise ConfigError("alloc", alloc, "'d<x>+d<y>' with x, y ≥ 1 rollout / training workers, e.g. d2+d1")
    return int(match.group(1)), int(match.group(2))


def _check(cond: bool, key: str, value: object, allowed: str) -> None:
    if not cond:
        raise ConfigError(key, value, allowed)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Extra checks registered by components (engines, backends) so this module stays the single entry point.
EXTRA_CHECKS: List[Callable[[DictConfig], None]] = []


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
    _check(cfg.engine.name in ENGINES, "engine", cfg.engine.name, " | ".join(ENGINES))
    _check(cfg.backend.name in BACKENDS, "backend", cfg.backend.name, " | ".join(BACKENDS))
    if cfg.engine.name == "embedded":
        eng = cfg.engine
        _check(eng.staleness_mode in STALENESS_MODES, "engine.staleness_mode", eng.staleness_mode,
               " | ".join(STALENESS_MODES))
        for key in ("steps", "batch_prompts", "group_size", "ppo_n_minibatches", "max_new_tokens",
                    "eval_every", "eval_size", "checkpoint_every", "threads"):
            _check(_is_int(eng[key]) and eng[key] >= 1, f"engine.{key}", eng[key], "an integer ≥ 1")
        _check(eng.lr > 0, "engine.lr", eng.lr, "a number > 0")
        _check(eng.batch_prompts % eng.ppo_n_minibatches == 0, "engine.ppo_n_minibatches", eng.ppo_n_minibatches,
               f"a divisor of engine.batch_prompts={eng.batch_prompts}")
    for check in EXTRA_CHECKS:
        check(cfg)
