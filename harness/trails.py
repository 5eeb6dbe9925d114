"""Trails: one composed config each, with a stable id derived from it and a name by the seed's rule.

The rule: "stale 256 d2+d1 rollout 96" + algo (+ variant when not the default) (+ "seed N" where a sweep has several).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence

from omegaconf import DictConfig, OmegaConf

from harness.validate import ALGO_VARIANTS

# Keys that say where or how a trail runs, not what it computes: they do not change its identity.
NON_IDENTITY_KEYS = ("backend", "tracking", "root", "tags", "note", "engine.cache_dir")


def trail_id(cfg: DictConfig) -> str:
    """10 hex digits of the SHA-1 of the resolved config, minus where/how-it-runs keys."""
    data: Dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    for key in NON_IDENTITY_KEYS:
        *parents, leaf = key.split(".")
        node = data
        for parent in parents:
            node = node.get(parent, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def algo_label(cfg: DictConfig) -> str:
    name, variant = cfg.algo.name, cfg.algo.variant
    default = ALGO_VARIANTS.get(name, (variant,))[0]
    return name if variant == default else f"{name}-{variant}"


def trail_name(cfg: DictConfig, with_seed: bool = False) -> str:
    """'stale 256 d2+d1 rollout 96 m2po' (+ ' seed 3')."""
    name = f"stale {cfg.stale} {cfg.alloc} rollout {cfg.rollout} {algo_label(cfg)}"
    return f"{name} seed {cfg.seed}" if with_seed else name


def slug(name: str) -> str:
    """A directory-safe form of a trail name: 'stale 256 d2+d1 rollout 96 m2po' -> 'stale256-d2+d1-rollout96-m2po'."""
    text = re.sub(r"(stale|rollout|seed) (\d+)", r"\1\2", name)
    return re.sub(r"[^A-Za-z0-9+._-]+", "-", text).strip("-")


@dataclass
class Trail:
    id: str
    name: str
    overrides: List[str]
    cfg: DictConfig = field(repr=False)

    @property
    def dirname(self) -> str:
        return f"{slug(self.name)}-{self.id[:6]}"

    def run_dir(self, sweep_dir: Path) -> Path:
        return Path(sweep_dir) / self.dirname

    def axes(self) -> Dict[str, Any]:
        return {"stale": self.cfg.stale, "alloc": self.cfg.alloc, "rollout": self.cfg.rollout,
                "algo": algo_label(self.cfg), "seed": self.cfg.seed}


def make_trails(configs: Sequence[tuple[DictConfig, List[str]]]) -> List[Trail]:
    """Name and id a sweep's composed configs; trails with the same id collapse into one."""
    seeds = {cfg.seed for cfg, _ in configs}
    trails: Dict[str, Trail] = {}
    for cfg, overrides in configs:
        tid = trail_id(cfg)
        if tid not in trails:
            trails[tid] = Trail(tid, trail_name(cfg, with_seed=len(seeds) > 1), list(overrides), cfg)
    return list(trails.values())
