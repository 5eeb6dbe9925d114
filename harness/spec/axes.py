"""The study's axes and the facts about them that trails, validation, engines and the report share.

A leaf module (it imports only harness.errors): alloc's syntax, the algorithms with their variants, and which axes
act in which staleness mode (harness/spec/identity.py renders a trail's names from them). The variant list mirrors
the embedded engine's loss registry (`harness.engines.embedded.losses.LOSSES`, keys "<algo>/<variant>") without
importing it — that module imports torch, and composing a sweep must not; tests/test_axes.py holds the two equal.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Tuple

from harness.errors import ConfigError

AXES = ("stale", "alloc", "rollout", "algo", "seed")

ALLOC_RE = re.compile(r"^d([1-9][0-9]*)\+d([1-9][0-9]*)$")

# algorithm -> its variants; the first is the default (conf/algo/<algo>.yaml) and is left out of trail names
ALGO_VARIANTS: Dict[str, Tuple[str, ...]] = {
    "grpo": ("clip", "decoupled"),
    "m2po": ("paper", "official", "areal"),
    "is": ("plain",),
}


def parse_alloc(alloc: str) -> Tuple[int, int]:
    """'d2+d1' -> (2 rollout workers, 1 training worker)."""
    match = ALLOC_RE.match(str(alloc))
    if not match:
        raise ConfigError("alloc", alloc, "'d<x>+d<y>' with x, y ≥ 1 rollout / training workers, e.g. d2+d1")
    return int(match.group(1)), int(match.group(2))


# staleness modes in which every axis acts: AReaL's rule (async), the AReaL engine, and a trail whose config is not at
# hand; in the embedded engine's `fixed` mode the lag is the only acting axis (dx+dy and the rollout cap do nothing)
ALL_AXES_ACT = ("async", "areal", "unknown")


def staleness_mode(engine: Optional[Mapping[str, Any]]) -> str:
    """'areal' for the AReaL engine, else the embedded engine's `staleness_mode`; 'unknown' without an engine."""
    engine = engine or {}
    if engine.get("name") == "areal":
        return "areal"
    return str(engine.get("staleness_mode") or "unknown")
