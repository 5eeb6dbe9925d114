"""The embedded engine's async clock against AReaL's own StalenessManager (areal 1.0.4, in its own venv).

AsyncSim (harness/engines/embedded/staleness.py) claims AReaL's admission rule: a group is admitted while
running < rollout and accepted + running < (η + version + 1) · B. Here every admission decision AsyncSim makes is
replayed, in order, on AReaL's real StalenessManager (areal/infra/staleness_manager.py): the same completions
(on_rollout_accepted), the same policy versions, the same admissions (on_rollout_enqueued + on_rollout_submitted,
one at a time, as AReaL's BatchTaskDispatcher._commit_loop submits while get_capacity() > 0). At each decision,
AReaL's counters must equal AsyncSim's, AsyncSim must admit exactly max(0, AReaL's capacity), and AReaL's capacity
after the admissions must be ≤ 0: AsyncSim admits neither more nor fewer groups than AReaL would at that moment.

Only the admission rule is compared: when groups finish is AsyncSim's simulated clock, taken here as given.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any, Dict, List

import pytest
import torch
from areal_cpu import areal_cpu_venv

from harness.engines.embedded.rollout import Batch
from harness.engines.embedded.staleness import AsyncSim

pytestmark = [pytest.mark.integration, pytest.mark.areal_real]

# Runs in AReaL's Python: the decisions in, AReaL's counters and capacities out.
REPLAY = r'''
import json, sys
import areal
from areal.infra import staleness_manager
from areal.infra.staleness_manager import StalenessManager

class Version:
    value = 0
    def get_version(self):
        return self.value

def replay(spec):
    version = Version()
    manager = StalenessManager(version, spec["cap"], spec["batch"], spec["eta"])
    accepted = 0
    out = []
    for d in spec["decisions"]:
        for _ in range(d["accepted"] - accepted):
            manager.on_rollout_accepted()
        accepted = d["accepted"]
        version.value = d["version"]
        stats = manager.get_stats()
        before = manager.get_capacity()
        for _ in range(d["admitted"]):
            manager.on_rollout_enqueued()
            manager.on_rollout_submitted()
        out.append({"running": stats.running, "accepted": stats.accepted, "capacity_before": before,
                    "capacity_after": manager.get_capacity()})
    return out

specs = json.load(sys.stdin)
print(json.dumps({"areal": areal.__version__, "source": staleness_manager.__file__,
                  "cases": [replay(spec) for spec in specs]}))
'''


class RecordingAsyncSim(AsyncSim):
    """AsyncSim that notes, at every admission decision, the state it decided on and how many groups it admitted."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.decisions: List[Dict[str, int]] = []

    def _admit(self, version: int, generate: Any) -> None:
        before = {"version": version, "running": len(self.running), "accepted": self.accepted}
        cursor = self.cursor
        super()._admit(version, generate)
        self.decisions.append({**before, "admitted": self.cursor - cursor})


def _generate(group: int):
    """Placeholder groups of varied lengths (prompt index i answers in 1 + (7919 i mod 8) tokens), so that groups
    finish out of admission order; their contents do not matter to the admission rule."""
    def generate(indices: List[int], version: int, use_base: bool) -> Batch:
        n, width = len(indices) * group, 8
        mask = torch.zeros(n, width, dtype=torch.bool)
        for j, i in enumerate(indices):
            mask[j * group:(j + 1) * group, :1 + (i * 7919) % 8] = True
        return Batch(list(indices), torch.zeros(n, width, dtype=torch.long), torch.zeros(n, width), mask,
                     torch.zeros(n), [version] * len(indices))
    return generate


# (η, rollout workers, trainers, rollout cap, B, rollout and train speed): the staleness bound binding (small η,
# large cap), the cap binding (large η, small cap), both in turn, one and several workers, slow and fast training.
CASES = [
    (0, 1, 1, 64, 4, 300.0, 500.0),
    (1, 2, 1, 64, 4, 300.0, 500.0),
    (4, 2, 1, 3, 4, 300.0, 500.0),
    (2, 3, 2, 6, 3, 200.0, 2000.0),
    (8, 2, 1, 10, 2, 500.0, 50.0),
]


STEPS = 20


def _decisions(case) -> List[Dict[str, int]]:
    eta, x, y, cap, b, rollout_speed, train_speed = case
    sim = RecordingAsyncSim(eta, x, y, cap, b, 2, rollout_speed, train_speed)
    sim.prompt_len = 5
    generate = _generate(2)
    for version in range(STEPS):
        sim.next_batch(version, generate)
    return sim.decisions


@pytest.fixture(scope="module")
def replayed() -> Dict[str, Any]:
    """Every case's decisions, replayed on AReaL's StalenessManager in one AReaL process (its imports take a while)."""
    python = str(areal_cpu_venv() / "bin" / "python")
    specs = [{"eta": c[0], "cap": c[3], "batch": c[4], "decisions": _decisions(c)} for c in CASES]
    proc = subprocess.run([python, "-c", REPLAY], input=json.dumps(specs), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["areal"] == "1.0.4" and "site-packages/areal/infra/staleness_manager.py" in answer["source"]
    return answer


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("index", range(len(CASES)), ids=["eta{}-x{}-y{}-cap{}-B{}".format(*c[:5]) for c in CASES])
def test_asyncsim_admits_what_areals_staleness_manager_admits(index, replayed):
    b = CASES[index][4]
    decisions = _decisions(CASES[index])
    replay = replayed["cases"][index]
    assert len(replay) == len(decisions) > 40
    for i, (ours, areal) in enumerate(zip(decisions, replay, strict=True)):
        where = f"decision {i}: AsyncSim {ours}, AReaL {areal}"
        assert (areal["running"], areal["accepted"]) == (ours["running"], ours["accepted"]), where
        assert ours["admitted"] == max(0, areal["capacity_before"]), where
        assert areal["capacity_after"] <= 0, where
    # the decisions exercised the rule: groups were admitted and also refused, at more than one version
    assert sum(d["admitted"] for d in decisions) >= STEPS * b
    assert any(d["admitted"] == 0 for d in decisions)
    assert len({d["version"] for d in decisions if d["admitted"]}) > 5
