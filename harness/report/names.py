"""Display names for the report's configurations, cells and trails, from the fields of each trail's identity.

The axes shown are the trail identity's (harness.spec.identity: those acting in its staleness mode, or differing in
its sweep), so `stale 256 m2po/paper seed 3` in `fixed` mode and AReaL's rule `stale 256 d2+d1 rollout 96
m2po/paper seed 3` in `async` mode and on the AReaL engine; the report spells the algorithm with its variant always.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


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
