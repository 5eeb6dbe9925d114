"""A trail's identity: the fields that name it, stored once in trail.json and rendered, never parsed back.

Every rendering of a trail comes from here: its name (progress lines, trail.json, `harness status`), its run dir's
slug, its MLflow run name and cell, and the axes logged as MLflow params. Which optional axes a rendering shows is
fixed when the sweep is composed and stored with the fields (`shown`):
- stale and the algorithm always;
- dx+dy (`alloc`) and the rollout cap where they act (AReaL's asynchronous rule and the AReaL engine; not the
  embedded engine's `fixed` mode, where the lag is the only acting axis), or where the sweep's trails differ in them,
  so that two trails of one sweep never share a name;
- the seed where the sweep has several.

The algorithm has one spelling, `name/variant` ('m2po/areal'); a name leaves out the default variant ('m2po').
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Collection, Dict, Mapping, Optional, Tuple

from harness.spec.axes import ALGO_VARIANTS, ALL_AXES_ACT, staleness_mode

OPTIONAL_AXES = ("alloc", "rollout", "seed")
ACTING_WHERE_ALL_ACT = ("alloc", "rollout")  # the systems axes: they act in the modes of ALL_AXES_ACT only


def default_variant(algo: str) -> str:
    """An algorithm's default variant (conf/algo/<algo>.yaml), '' for an algorithm the harness does not list."""
    variants = ALGO_VARIANTS.get(algo)
    return variants[0] if variants else ""


def algo_path(algo: str, variant: str) -> str:
    """'m2po/paper': the algorithm and its variant, as the report spells them."""
    return f"{algo}/{variant}" if variant else algo


def algo_label(algo: str, variant: str) -> str:
    """'m2po' for an algorithm's default variant, 'm2po/areal' otherwise: the `algo` axis in names and params."""
    return algo if not variant or variant == default_variant(algo) else f"{algo}/{variant}"


def slug(name: str) -> str:
    """A directory-safe form of a trail name: 'stale 256 d2+d1 rollout 96 m2po' -> 'stale256-d2+d1-rollout96-m2po'."""
    text = re.sub(r"(stale|rollout|seed) (\d+)", r"\1\2", name)
    return re.sub(r"[^A-Za-z0-9+._-]+", "-", text).strip("-")


def shown_axes(mode: str, varied: Collection[str] = ()) -> Tuple[str, ...]:
    """The optional axes a trail's renderings show: those acting in `mode`, and those the sweep's trails differ in."""
    acting = ACTING_WHERE_ALL_ACT if mode in ALL_AXES_ACT else ()
    return tuple(axis for axis in OPTIONAL_AXES if axis in acting or axis in varied)


@dataclass(frozen=True)
class TrailIdentity:
    """Who a trail is, as fields: its axes, its algorithm and variant apart, its staleness mode (which axes act) and
    which optional axes its renderings show."""

    stale: int
    alloc: str
    rollout: int
    algo: str
    variant: str
    seed: int
    mode: str = "unknown"
    shown: Tuple[str, ...] = OPTIONAL_AXES

    @classmethod
    def of(cls, cfg: Any, varied: Collection[str] = ()) -> TrailIdentity:
        """From a composed trail config; `varied`: the optional axes in which the sweep's trails differ."""
        mode = staleness_mode(cfg.engine)
        return cls(int(cfg.stale), str(cfg.alloc), int(cfg.rollout), str(cfg.algo.name), str(cfg.algo.variant),
                   int(cfg.seed), mode, shown_axes(mode, varied))

    # ------------------------------------------------------------ renderings
    @property
    def algo_label(self) -> str:
        return algo_label(self.algo, self.variant)

    @property
    def algo_path(self) -> str:
        return algo_path(self.algo, self.variant)

    def setting(self) -> str:
        """The shown systems axes: 'd2+d1 rollout 96', or '' where neither is shown."""
        parts = [str(self.alloc)] if "alloc" in self.shown else []
        return " ".join(parts + ([f"rollout {self.rollout}"] if "rollout" in self.shown else []))

    def name(self) -> str:
        """AReaL's rule on the shown axes: 'stale 256 d2+d1 rollout 96 m2po seed 3', 'stale 256 m2po' in fixed mode."""
        parts = [f"stale {self.stale}", self.setting(), self.algo_label]
        if "seed" in self.shown:
            parts.append(f"seed {self.seed}")
        return " ".join(p for p in parts if p)

    def slug(self) -> str:
        return slug(self.name())

    def run_name(self, with_seed: bool = True) -> str:
        """The MLflow run name, led by what differs between runs (MLflow's runs table cuts names at ~30 characters):
        'm2po · stale 256 · d2+d1 · rollout 96 · seed 1'; without the seed, the trail's cell."""
        parts = [self.algo_label, f"stale {self.stale}"]
        parts += [str(self.alloc)] if "alloc" in self.shown else []
        parts += [f"rollout {self.rollout}"] if "rollout" in self.shown else []
        if with_seed and "seed" in self.shown:
            parts.append(f"seed {self.seed}")
        return " · ".join(parts)

    def axes(self) -> Dict[str, Any]:
        """The five axes, as trail.json and MLflow params hold them."""
        return {"stale": self.stale, "alloc": self.alloc, "rollout": self.rollout, "algo": self.algo_label,
                "seed": self.seed}

    # ------------------------------------------------------------ storage
    def record(self) -> Dict[str, Any]:
        """trail.json's `identity`."""
        return {"stale": self.stale, "alloc": self.alloc, "rollout": self.rollout, "algo": self.algo,
                "variant": self.variant, "seed": self.seed, "mode": self.mode, "shown": list(self.shown)}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> TrailIdentity:
        """The inverse of `record`; raises KeyError, TypeError or ValueError on a record that is not one."""
        shown = data.get("shown", OPTIONAL_AXES)
        if not isinstance(shown, (list, tuple)) or not set(shown) <= set(OPTIONAL_AXES):
            raise ValueError(f"'shown' is {shown!r:.60}, not a list of {', '.join(OPTIONAL_AXES)}")
        return cls(int(data["stale"]), str(data["alloc"]), int(data["rollout"]), str(data["algo"]),
                   str(data.get("variant") or ""), int(data["seed"]), str(data.get("mode") or "unknown"),
                   tuple(a for a in OPTIONAL_AXES if a in shown))

    @classmethod
    def from_fields(cls, axes: Mapping[str, Any], cfg: Mapping[str, Any],
                    engine: Optional[str] = None) -> TrailIdentity:
        """For a trail recorded before trail.json held its identity (or known only from its MLflow params): the axes
        it recorded, with the algorithm and the staleness mode from its config (where there is none, the `algo` axis
        with its default variant); shown: the axes acting in its mode, and the seed where it recorded one."""
        raw_algo, raw_engine = cfg.get("algo"), cfg.get("engine")
        algo: Mapping[str, Any] = raw_algo if isinstance(raw_algo, Mapping) else {}
        eng: Dict[str, Any] = dict(raw_engine) if isinstance(raw_engine, Mapping) else {}
        name = str(algo.get("name") or axes.get("algo") or "")
        variant = str(algo.get("variant") or "") if algo.get("name") else default_variant(name)
        mode = staleness_mode({**eng, "name": eng.get("name") or engine} if (eng or engine) else None)
        seeded = axes.get("seed") is not None
        return cls(int(axes["stale"]), str(axes["alloc"]), int(axes["rollout"]), name, variant,
                   int(axes["seed"]) if seeded else 0, mode, shown_axes(mode, ("seed",) if seeded else ()))
