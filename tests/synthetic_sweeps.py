"""Write sweep directories from given curves, without training: for the report's tests and benchmark.

The files are the ones a real sweep writes (sweep.json, trail.json, status.json, journal.jsonl, config.yaml),
through the same writers, so the report reads them exactly as it reads a real sweep.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
from omegaconf import OmegaConf

from harness.spec.axes import ALL_AXES_ACT, staleness_mode
from harness.spec.identity import TrailIdentity, default_variant
from harness.store.journal import JOURNAL_NAME, Journal
from harness.store.rundir import TrailMeta, write_json_atomic, write_status
from harness.store.states import TrailState
from harness.store.sweepdir import TRAIL_META, write_sweep_meta


def engine_config(mode: str = "fixed", eval_size: int = 512, algo: Optional[str] = None) -> Dict[str, Any]:
    """The part of a trail's config.yaml the report reads: engine name, staleness mode, eval-set size, algo."""
    cfg: Dict[str, Any] = {"engine": {"name": "areal"} if mode == "areal" else
                           {"name": "embedded", "staleness_mode": mode, "eval_size": eval_size}}
    if algo:
        name, _, variant = algo.partition("/")
        cfg["algo"] = {"name": name, "variant": variant}
    return cfg




def synthetic_identity(axes: Mapping[str, Any], mode: str) -> TrailIdentity:
    """The identity a composed trail of these axes would store: `axes["algo"]` is 'm2po', 'm2po/areal' or
    'm2po-areal' (the algorithm, with its variant when not the default); the systems axes acting in `mode` and
    the seed shown."""
    name, _, variant = str(axes["algo"]).replace("-", "/").partition("/")
    shown = ("alloc", "rollout", "seed") if mode in ALL_AXES_ACT else ("seed",)
    return TrailIdentity(int(axes["stale"]), str(axes["alloc"]), int(axes["rollout"]), name,
                         variant or default_variant(name), int(axes.get("seed") or 0), mode, shown)


def write_trail(sweep_dir: Path, axes: Mapping[str, Any], records: Iterable[Mapping[str, Any]],
                state: str = TrailState.DONE.value, reason: str = "", started: float = 1000.0,
                ended: Optional[float] = None,
                tracking: Optional[Mapping[str, Any]] = None, name: Optional[str] = None,
                dirname: Optional[str] = None, config: Optional[Mapping[str, Any]] = None,
                journal_lines: Optional[List[str]] = None) -> Path:
    """One run dir: records are {"step": k, "time": t, <metric>: value, ...}; returns the run dir. `config` (e.g.
    engine_config()) and `tracking` go into config.yaml; without either there is none (mode `unknown`).
    `journal_lines`: the journal's JSON lines written at once instead of `records` one by one (for large sweeps)."""
    engine = dict((config or {}).get("engine") or {})
    identity = synthetic_identity(axes, staleness_mode(engine) if engine else "unknown")
    name = name or identity.name()
    run_dir = Path(sweep_dir) / (dirname or identity.slug())
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = TrailMeta.of(hashlib.sha1(run_dir.name.encode()).hexdigest()[:10], identity, Path(sweep_dir).name,
                        run_dir.name, [], str(engine.get("name") or "embedded"), "local")
    write_json_atomic(run_dir / TRAIL_META, meta.record() | {"name": name})
    last = 0
    if journal_lines is not None:
        (run_dir / JOURNAL_NAME).write_text("".join(line + "\n" for line in journal_lines), encoding="utf-8")
        last = json.loads(journal_lines[-1])["step"] if journal_lines else 0
    else:
        with Journal(run_dir) as journal:
            for record in records:
                metrics = {k: v for k, v in record.items() if k not in ("step", "time")}
                journal.append(record["step"], metrics, time=record.get("time"))
                last = record["step"]
    fields: Dict[str, Any] = {"step": last, "reason": reason, "started": started}
    if ended is not None:
        fields["ended"] = ended
    write_status(run_dir, state, **fields)
    if tracking is not None or config is not None:
        cfg = {"stale": axes["stale"], **dict(config or {})}
        if tracking is not None:
            cfg["tracking"] = dict(tracking)
        OmegaConf.save(OmegaConf.create(cfg), run_dir / "config.yaml")
    return run_dir


def finish_sweep(sweep_dir: Path, run_dirs: List[Path], seeds: Optional[Mapping[str, List[int]]] = None) -> Path:
    """sweep.json; `seeds`: the seed roles a sweep file declared ({"exploratory": [...], "confirmatory": [...]})."""
    extra = {"seeds": dict(seeds)} if seeds else {}
    write_sweep_meta(Path(sweep_dir), name=Path(sweep_dir).name, trails=[d.name for d in run_dirs], **extra)
    return Path(sweep_dir)


def random_sweep(sweep_dir: Path, trails: int = 100, steps: int = 1000, eval_every: int = 10,
                 seed: int = 0, tracking: Optional[Mapping[str, Any]] = None) -> Path:
    """A GRPO-vs-M2PO sweep: `trails` trails of `steps` steps, 10 metrics every step plus eval/reward every
    `eval_every` steps; M2PO gets the lower grad_norm and keeps its eval reward under staleness, as in the paper.

    Each journal is written in one go (the Journal's JSON records, drawn with numpy a trail at a time), so a sweep
    of 1,000 trails × 1,000 steps for the scale benchmark takes seconds rather than minutes. `tracking` goes into
    each config.yaml (the MLflow store a report from MLflow reads)."""
    rng = np.random.default_rng(seed)
    configs = [(s, a, r) for s in (1, 8, 64, 256, 512) for a in ("d2+d1", "d1+d2") for r in (48, 96)]
    seeds = max(1, trails // (len(configs) * 2))
    dirs: List[Path] = []
    step_idx = np.arange(1, steps + 1)
    evals = step_idx % eval_every == 0
    for i in range(trails):
        stale, alloc, rollout = configs[(i // (2 * seeds)) % len(configs)]
        algo = ("grpo", "m2po")[(i // seeds) % 2]
        trail_seed = i % seeds + 1 + seeds * (i // (2 * seeds * len(configs)))
        m2po = algo == "m2po"
        reward = np.clip(0.5 + 0.3 * (1 - np.exp(-step_idx / 300)) - (0 if m2po else 1e-4 * stale)
                         + rng.normal(0, 0.02, steps), 0, 1)
        columns = {
            "step": step_idx, "time": 1000.0 + 0.1 * (step_idx - 1), "train/loss": rng.normal(size=steps),
            "train/grad_norm": rng.gamma(4.0, (0.08 if m2po else 0.11), steps),
            "train/clip_frac": np.zeros(steps) if m2po else rng.uniform(0, 0.02, steps),
            "train/entropy": rng.uniform(0.5, 1.5, steps), "train/approx_kl": rng.uniform(0, 0.01, steps),
            "rollout/reward": reward,
            "m2po/masked_frac": rng.uniform(0, 0.01, steps) if m2po else np.zeros(steps),
            "staleness/mean": np.minimum(stale, step_idx - 1) * 0.5,
            "staleness/max": np.minimum(stale, step_idx - 1).astype(float), "perf/sec_per_step": np.full(steps, 0.1),
        }
        names = list(columns)
        rows = zip(*(columns[n].tolist() for n in names), strict=False)
        lines = []
        for k, row in enumerate(rows):
            record = dict(zip(names, row, strict=False))
            if evals[k]:
                record["eval/reward"] = record["rollout/reward"]
            lines.append(json.dumps(record))
        dirs.append(write_trail(sweep_dir, {"stale": stale, "alloc": alloc, "rollout": rollout, "algo": algo,
                                            "seed": trail_seed}, [], ended=1000.0 + 0.1 * steps,
                                config=engine_config("async"), journal_lines=lines, tracking=tracking))
    return finish_sweep(sweep_dir, dirs)


# (algo, stale) -> final eval reward the study sweep's curves rise to: the paper's shape (GRPO degrades with lag,
# M2PO keeps its on-policy level)
STUDY_FINAL = {("grpo/clip", 1): 0.56, ("grpo/clip", 64): 0.47, ("grpo/clip", 256): 0.39,
               ("m2po/paper", 1): 0.54, ("m2po/paper", 64): 0.53, ("m2po/paper", 256): 0.52}


def study_sweep(sweep_dir: Path, seeds: int = 5, stales: Iterable[int] = (1, 256),
                algos: Iterable[str] = ("grpo/clip", "m2po/paper"), steps: int = 400, eval_every: int = 50,
                mode: str = "fixed", eval_size: int = 512, seed_sd: float = 0.03, noise_sd: float = 0.01,
                final: Optional[Mapping[tuple, float]] = None, seed: int = 0, final_eval_size: Optional[int] = None,
                seeds_list: Optional[List[int]] = None, roles: Optional[Mapping[str, List[int]]] = None) -> Path:
    """A paired-seed study: each seed shifts every algorithm's and staleness's curve by the same amount (same
    problem stream and base model), so paired differences are far tighter than the seed spread; eval rewards are
    multiples of 1/eval_size, as a real eval's are. `final_eval_size`: the last step also logs the large final eval
    (`final/reward`, `final/reward_sampled`, `final/eval_size`), a binomial draw of that many problems at the curve's
    level. `seeds_list` names the seeds (default 1 … seeds); `roles` is written to sweep.json as declared roles."""
    rng = np.random.default_rng(seed)
    final = dict(STUDY_FINAL if final is None else final)
    seed_ids = list(seeds_list) if seeds_list is not None else list(range(1, seeds + 1))
    shift = {s: float(rng.normal(0, seed_sd)) for s in seed_ids}
    dirs: List[Path] = []
    for stale in stales:
        for algo in algos:
            target = final.get((algo, stale), 0.5)
            m2po = algo.startswith("m2po")
            for s in seed_ids:
                records = []
                for k in range(1, steps + 1):
                    grad = float(rng.gamma(4.0, 0.12 if m2po else 0.15 + 0.001 * stale))
                    rec: Dict[str, Any] = {
                        "step": k, "time": 1030.0 + 0.2 * k, "perf/sec_per_step": 0.2,
                        "train/grad_norm": grad * (30 if rng.random() < 0.005 else 1),
                        "train/clip_frac": 0.0 if m2po else 0.005 + 0.0005 * stale ** 0.8,
                        "staleness/mean": float(min(stale, k - 1)), "staleness/max": float(min(stale, k - 1)),
                    }
                    if m2po:
                        rec["m2po/masked_frac"] = 0.0005 + 0.0002 * stale
                    if k % eval_every == 0 or k == steps:
                        level = 0.2 + (target - 0.2) * (1 - np.exp(-k / (steps / 4))) + shift[s]
                        level += float(rng.normal(0, noise_sd))
                        rec["eval/reward"] = round(min(max(level, 0.0), 1.0) * eval_size) / eval_size
                        if k == steps and final_eval_size:
                            p = min(max(level, 0.0), 1.0)
                            rec["final/reward"] = float(rng.binomial(final_eval_size, p)) / final_eval_size
                            rec["final/reward_sampled"] = float(rng.binomial(final_eval_size, 0.8 * p)) / \
                                final_eval_size
                            rec["final/eval_size"] = final_eval_size
                    records.append(rec)
                axes = {"stale": stale, "alloc": "d2+d1", "rollout": 96, "algo": algo.replace("/paper", "")
                        .replace("/clip", "").replace("/", "-"), "seed": s}
                dirs.append(write_trail(sweep_dir, axes, records, started=1000.0, ended=1030.0 + 0.2 * steps,
                                        config=engine_config(mode, eval_size, algo)))
    return finish_sweep(sweep_dir, dirs, roles)
