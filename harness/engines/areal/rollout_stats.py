"""AReaL's own rollout counters, read from its log: how many rollouts were running when each one was submitted.

AReaL writes no TensorBoard stat for its StalenessManager's counters. With `rollout.enable_rollout_tracing=true` its
dispatcher logs them at every submission, after counting the new rollout as running (areal 1.0.4,
areal/infra/workflow_executor.py, BatchTaskDispatcher._commit_loop → _rollout_stats):
    (AReaL) 20261207-04:16:35.838 RolloutController INFO: Submit rollout. enqueued: 17, running: 8, accepted: 3, ...
The source before the message says whose counters they are: `RolloutController` is the controller in AReaL's main
process that admits rollouts for the whole run (the training rollouts and, at evaluation steps, the evaluation
ones, each with a StalenessManager of its own); `[RemoteInfEngine Rank N]` is the executor inside a rollout worker,
which sees what the controller sends it. The largest `running` of the controller is the concurrency AReaL allowed,
which `rollout.max_concurrent_rollouts` caps (the `rollout` axis) and the staleness bound
(η + version + 1) · B − accepted can hold lower.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

_SUBMIT = re.compile(r"(RolloutController|\[RemoteInfEngine Rank \d+\]) INFO: Submit rollout\. enqueued: (-?\d+), "
                     r"running: (-?\d+), accepted: (-?\d+), rejected: (-?\d+)")
CONTROLLER = "RolloutController"


@dataclass(frozen=True)
class Submission:
    source: str      # RolloutController, or the rollout worker's executor ([RemoteInfEngine Rank N])
    enqueued: int
    running: int     # including the rollout just submitted
    accepted: int
    rejected: int


def read_submissions(log: Path | str, source: Optional[str] = CONTROLLER) -> List[Submission]:
    """The 'Submit rollout.' lines of an AReaL log from `source` (None: every source), in order; empty without
    rollout tracing."""
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = [Submission(m.group(1), *(int(g) for g in m.groups()[1:])) for m in _SUBMIT.finditer(text)]
    return [s for s in found if source is None or s.source == source]


def max_running(log: Path | str) -> Optional[int]:
    """The most rollouts AReaL's controller had running at once, or None when the log holds no rollout trace."""
    submissions = read_submissions(log)
    return max(s.running for s in submissions) if submissions else None
