"""Trails: one composed config each, with a stable id derived from it and an identity that names it.

The name is AReaL's rule on the axes that act, "stale 256 d2+d1 rollout 96" + algo (+ variant when not the default)
(+ "seed N" where a sweep has several): harness/spec/identity.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from harness.errors import HarnessError
from harness.spec.identity import OPTIONAL_AXES, TrailIdentity

# Keys that say where or how a trail runs, not what it computes: they do not change its identity.
NON_IDENTITY_KEYS = ("backend", "tracking", "root", "sweep", "tags", "note", "engine.cache_dir")


ID_DIGITS = 16   # of the SHA-1: two of a million trails share an id with odds of about 3e-8
DIR_DIGITS = 12  # of the id in a run dir's name: a 1,000-trail sweep has odds of about 1e-9 of two sharing one
LEGACY_ID_DIGITS = 10  # ids before ID_DIGITS (a prefix of today's): their run dirs are found again (sweepdir)


def trail_id(cfg: DictConfig) -> str:
    """ID_DIGITS hex digits of the SHA-1 of the resolved config, minus where/how-it-runs keys."""
    data: Dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    for key in NON_IDENTITY_KEYS:
        *parents, leaf = key.split(".")
        node = data
        for parent in parents:
            node = node.get(parent, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:ID_DIGITS]


@dataclass
class Trail:
    id: str
    identity: TrailIdentity
    overrides: List[str]
    cfg: DictConfig = field(repr=False)
    dirname_override: Optional[str] = field(default=None, repr=False)  # the trail's run dir made under another name

    @property
    def name(self) -> str:
        return self.identity.name()

    @property
    def dirname(self) -> str:
        return self.dirname_override or f"{self.identity.slug()}-{self.id[:DIR_DIGITS]}"

    def run_dir(self, sweep_dir: Path) -> Path:
        return Path(sweep_dir) / self.dirname

    def axes(self) -> Dict[str, Any]:
        return self.identity.axes()


def varied_axes(configs: Sequence[DictConfig]) -> List[str]:
    """The optional axes (dx+dy, rollout cap, seed) in which a sweep's trails differ: each trail's name shows them."""
    return [axis for axis in OPTIONAL_AXES if len({str(cfg[axis]) for cfg in configs}) > 1]


def make_trails(configs: Sequence[tuple[DictConfig, List[str]]]) -> List[Trail]:
    """Name and id a sweep's composed configs; trails with the same id collapse into one. Two different trails whose
    run dirs would have the same name are refused (odds of about 1e-9 in a 1,000-trail sweep, but never silent)."""
    varied = varied_axes([cfg for cfg, _ in configs])
    trails: Dict[str, Trail] = {}
    dirs: Dict[str, Trail] = {}
    for cfg, overrides in configs:
        tid = trail_id(cfg)
        if tid in trails:
            continue
        trail = Trail(tid, TrailIdentity.of(cfg, varied), list(overrides), cfg)
        other = dirs.get(trail.dirname)
        if other is not None:
            raise HarnessError(f"trails {other.id} ({' '.join(other.overrides)}) and {tid} "
                               f"({' '.join(trail.overrides)}) would share the run directory {trail.dirname} "
                               f"(allowed: trails whose ids differ in their first {DIR_DIGITS} hex digits; change "
                               f"either trail's config, e.g. its seed, by the smallest amount)")
        trails[tid] = dirs[trail.dirname] = trail
    return list(trails.values())
