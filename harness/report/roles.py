"""Exploratory and confirmatory seeds, kept apart.

A sweep file may declare which seeds are exploratory (used to choose the regime and the contrasts) and which are
confirmatory (run only once both are fixed; docs/STUDY.md). A finding is stated on the confirmatory seeds only: an
effect measured on the seeds it was chosen on is biased toward the choice. Exploratory results are reported apart
and labelled so. A seed the declaration does not name counts as exploratory (it is not confirmatory), and a sweep
with no declaration has nothing confirmatory: its findings say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import pandas as pd

from harness.report.tables import SEED_ROLE, counted
from harness.spec.sweepspec import seeds_text

CONFIRMATORY, EXPLORATORY = "confirmatory", "exploratory"


@dataclass
class SeedSets:
    """The trails the findings rest on (`primary`) and the exploratory ones reported apart."""

    declared: bool              # the sweep file declared seed roles
    primary: pd.DataFrame       # declared: the confirmatory trails; else every trail
    exploratory: pd.DataFrame   # declared: every other trail; else empty

    def seeds(self, frame: pd.DataFrame) -> List[int]:
        return sorted(int(s) for s in frame["seed"].dropna().unique())


def split_by_role(trails: pd.DataFrame) -> SeedSets:
    """Split the trail table by its seed_role column (empty everywhere when no roles were declared)."""
    roles = trails[SEED_ROLE].fillna("")
    if not (roles != "").any():
        return SeedSets(False, trails, trails.iloc[0:0])
    confirmatory = roles == CONFIRMATORY
    return SeedSets(True, trails[confirmatory], trails[~confirmatory])


def role_notes(sets: SeedSets) -> List[str]:
    """The findings' opening lines: what the findings rest on, and what they do not."""
    if not sets.declared:
        return ["These findings are not confirmatory: the sweep file declares no confirmatory seeds (`seeds:`), so "
                "nothing shows that the regime and the contrasts were fixed before these seeds ran "
                "(docs/STUDY.md). Read them as exploratory."]
    done = sets.primary[counted(sets.primary)]
    explored = sets.seeds(sets.exploratory)
    apart = (f" Exploratory seeds ({seeds_text(explored)}: the regime and the contrasts may have been chosen on "
             "them) are reported apart, under \"Exploratory seeds\", and in no finding here.") if explored else ""
    if done.empty:
        return [f"No confirmatory trail has finished, so this sweep has no confirmatory finding yet.{apart}"]
    return [f"Findings rest on the confirmatory seeds only ({seeds_text(sets.seeds(done))}; "
            f"{len(done)} finished trails).{apart}"]


__all__ = ["CONFIRMATORY", "EXPLORATORY", "SeedSets", "role_notes", "seeds_text", "split_by_role"]
