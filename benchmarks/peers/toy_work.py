"""The trial every tool runs in benchmarks/peer_bench.py: the toy engine's work (tests/toy_engine), without the
harness. Three steps, each a metric computed from the trial's parameters and one JSON line appended and flushed to
the trial's own metrics file, as the harness's journal does. Standard library only."""

from __future__ import annotations

import json
from pathlib import Path

STEPS = 3


def toy_work(stale: int, seed: int, out_dir: str | Path) -> float:
    """Run the trial into `out_dir`; its last metric."""
    path = Path(out_dir) / "metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    reward = 0.0
    with open(path, "a", encoding="utf-8") as fh:
        for step in range(1, STEPS + 1):
            reward = 1.0 / (1 + stale) + step / 100
            fh.write(json.dumps({"step": step, "seed": seed, "eval/reward": reward}) + "\n")
            fh.flush()
    return reward
