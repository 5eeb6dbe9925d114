"""AReaL's own rollout counters, read from its log: how many rollouts were running when each one was submitted.

AReaL writes no TensorBoard stat for its StalenessManager's counters. With `rollout.enable_rollout_tracing=true` its
dispatcher logs them at every submission, after counting the new rollout as running (areal 1.0.4,
areal/infra/workflow_executor.py, BatchTaskDispatcher._commit_loop → _rollout_stats):
    Submit rollout. enqueued: 0, running: 2, accepted: 12, rejected: 0.
The largest `running` is the concurrency AReaL allowed, which `rollout.max_concurrent_rollouts` caps (the `rollout`
axis) and which the staleness bound (η + version + 1) · B − accepted can hold lower.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

_SUBMIT = re.compile(r"Submit rollout\. enqueued: (-?\d+), running: (-?\d+), accepted: (-?\d+), rejected: (-?\d+)")


@dataclass(frozen=True)
class Submission:
    enqueued: int
    running: int     # including the rollout just submitted
    accepted: int
    rejected: int


def read_submissions(log: Path | str) -> List[Submission]:
    """Every 'Submit rollout.' line of an AReaL log, in order (empty without rollout tracing)."""
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [Submission(*(int(g) for g in m.groups())) for m in _SUBMIT.finditer(text)]


def max_running(log: Path | str) -> Optional[int]:
    """The most rollouts AReaL had running at once, or None when the log holds no rollout trace."""
    submissions = read_submissions(log)
    return max(s.running for s in submissions) if submissions else None
