"""Write sweep directories from given curves, without training: for the report's tests and benchmark.

The files are the ones a real sweep writes (sweep.json, trail.json, status.json, journal.jsonl, config.yaml),
through the same writers, so the report reads them exactly as it reads a real sweep.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
from omegaconf import OmegaConf

from harness.journal import Journal
from harness.rundir import write_json_atomic, write_status
from harness.sweepdir import TRAIL_META, write_sweep_meta
from harness.trails import slug


def trail_name(stale: int, alloc: str, rollout: int, algo: str, seed: Optional[int] = None) -> str:
    name = f"stale {stale} {alloc} rollout {rollout} {algo}"
    return name if seed is None else f"{name} seed {seed}"


def write_trail(sweep_dir: Path, axes: Mapping[str, Any], records: Iterable[Mapping[str, Any]],
                state: str = "done", reason: str = "", started: float = 1000.0, ended: Optional[float] = None,
                tracking: Optional[Mapping[str, Any]] = None, name: Optional[str] = None,
                dirname: Optional[str] = None) -> Path:
    """One run dir: records are {"step": k, "time": t, <metric>: value, ...}; returns the run dir."""
    name = name or trail_name(axes["stale"], axes["alloc"], axes["rollout"], axes["algo"], axes.get("seed"))
    run_dir = Path(sweep_dir) / (dirname or slug(name))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / TRAIL_META, {
        "id": hashlib.sha1(run_dir.name.encode()).hexdigest()[:10], "name": name, "sweep": Path(sweep_dir).name,
        "dirname": run_dir.name, "overrides": [], "axes": dict(axes), "engine": "embedded", "backend": "local",
    })
    last = 0
    with Journal(run_dir) as journal:
        for record in records:
            metrics = {k: v for k, v in record.items() if k not in ("step", "time")}
            journal.append(record["step"], metrics, time=record.get("time"))
            last = record["step"]
    fields: Dict[str, Any] = {"step": last, "reason": reason, "started": started}
    if ended is not None:
        fields["ended"] = ended
    write_status(run_dir, state, **fields)
    if tracking is not None:
        OmegaConf.save(OmegaConf.create({"stale": axes["stale"], "tracking": dict(tracking)}), run_dir / "config.yaml")
    return run_dir


def finish_sweep(sweep_dir: Path, run_dirs: List[Path]) -> Path:
    write_sweep_meta(Path(sweep_dir), name=Path(sweep_dir).name, trails=[d.name for d in run_dirs])
    return Path(sweep_dir)


def random_sweep(sweep_dir: Path, trails: int = 100, steps: int = 1000, eval_every: int = 10,
                 seed: int = 0) -> Path:
    """A GRPO-vs-M2PO sweep: `trails` trails of `steps` steps, 10 metrics every step plus eval/reward every
    `eval_every` steps; M2PO gets the lower grad_norm and keeps its eval reward under staleness, as in the paper."""
    rng = np.random.default_rng(seed)
    configs = [(s, a, r) for s in (1, 8, 64, 256, 512) for a in ("d2+d1", "d1+d2") for r in (48, 96)]
    seeds = max(1, trails // (len(configs) * 2))
    dirs: List[Path] = []
    step_idx = np.arange(1, steps + 1)
    for i in range(trails):
        stale, alloc, rollout = configs[(i // (2 * seeds)) % len(configs)]
        algo = ("grpo", "m2po")[(i // seeds) % 2]
        trail_seed = i % seeds + 1 + seeds * (i // (2 * seeds * len(configs)))
        m2po = algo == "m2po"
        grad = rng.gamma(4.0, (0.08 if m2po else 0.11), steps)
        reward = np.clip(0.5 + 0.3 * (1 - np.exp(-step_idx / 300)) - (0 if m2po else 1e-4 * stale)
                         + rng.normal(0, 0.02, steps), 0, 1)
        records = []
        for k in range(steps):
            rec: Dict[str, Any] = {
                "step": int(step_idx[k]), "time": 1000.0 + 0.1 * k, "train/loss": float(rng.normal()),
                "train/grad_norm": float(grad[k]), "train/clip_frac": float(0.0 if m2po else rng.uniform(0, 0.02)),
                "train/entropy": float(rng.uniform(0.5, 1.5)), "train/approx_kl": float(rng.uniform(0, 0.01)),
                "rollout/reward": float(reward[k]),
                "m2po/masked_frac": float(rng.uniform(0, 0.01) if m2po else 0.0),
                "staleness/mean": float(min(stale, k) * 0.5), "staleness/max": float(min(stale, k)),
                "perf/sec_per_step": 0.1,
            }
            if (k + 1) % eval_every == 0:
                rec["eval/reward"] = float(reward[k])
            records.append(rec)
        dirs.append(write_trail(sweep_dir, {"stale": stale, "alloc": alloc, "rollout": rollout, "algo": algo,
                                            "seed": trail_seed}, records, ended=1000.0 + 0.1 * steps))
    return finish_sweep(sweep_dir, dirs)
