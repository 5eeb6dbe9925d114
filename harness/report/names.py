"""Display names for the report: a trail or a configuration shows only the axes that act in its staleness mode.

Why here and not harness/spec/trails.py: the trail's own name (its run dir, its MLflow run) is fixed when the sweep is
composed and must stay stable; the report only chooses what to *show*. In `fixed` mode the lag is the only acting
axis (dx+dy and the rollout cap have no effect), so `stale 256 m2po/paper seed 3`; in `async` mode and on the AReaL
engine every axis acts, so AReaL's rule `stale 256 d2+d1 rollout 96 m2po/paper seed 3`. A trail whose config is not
at hand (mode `unknown`) shows every axis.
"""

from __future__ import annotations

from typing import Any, Optional

import pandas as pd

from harness.spec.axes import ALGO_VARIANTS, ALL_AXES_ACT


def algo_variant(label: Any, name: Optional[str] = None, variant: Optional[str] = None) -> str:
    """'m2po/paper' from the config's algo.name and algo.variant, else from the trail axis label ('m2po-areal',
    or 'm2po' for the default variant)."""
    if name and variant:
        return f"{name}/{variant}"
    head, _, tail = str(label).partition("-")
    if tail:
        return f"{head}/{tail}"
    default = ALGO_VARIANTS.get(head)
    return f"{head}/{default[0]}" if default else head


def setting_label(mode: str, alloc: Any, rollout: Any) -> str:
    """The acting axes other than staleness: '' in fixed mode, 'd2+d1 rollout 96' otherwise."""
    if mode not in ALL_AXES_ACT:  # the one rule of which axes act, shared with MLflow's run names
        return ""
    parts = []
    if alloc is not None and not (isinstance(alloc, float) and pd.isna(alloc)):
        parts.append(str(alloc))
    if rollout is not None and not pd.isna(rollout):
        parts.append(f"rollout {rollout}")
    return " ".join(parts)


def group_label(stale: Any, setting: str) -> str:
    """'stale 256' or 'stale 256 d2+d1 rollout 96'."""
    return f"stale {stale}" + (f" {setting}" if setting else "")


def display_name(stale: Any, setting: str, algo: str, seed: Any) -> str:
    """'stale 256 m2po/paper seed 3' (fixed) or 'stale 256 d2+d1 rollout 96 m2po/paper seed 3'."""
    name = f"{group_label(stale, setting)} {algo}"
    return name if seed is None or pd.isna(seed) else f"{name} seed {seed}"


def algo_title(algo: str) -> str:
    """'m2po/paper' -> 'M2PO/paper'."""
    head, sep, tail = str(algo).partition("/")
    return head.upper() + sep + tail
