"""What a trail's MLflow run says about it besides metrics: its name, params (axes and hyperparameters) and tags.

The run name leads with what differs between a sweep's runs (TrailIdentity.run_name, harness/spec/identity.py); the
trail's own name, which names its run dir and the report's rows, is kept as the tag harness.trail, and its cell — the
run name without the seed, the trails a mean is taken over — as the tag harness.cell, which the sweep's MLflow view
groups runs by.

Read from the run dir alone (trail.json, config.yaml, sweep.json), so any syncer on any machine labels a run alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from harness.store.rundir import RunDir, Tag
from harness.store.sweepdir import read_sweep_meta
from harness.tracking.client import code_version

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
CELL_TAG = Tag.CELL


def _flatten(prefix: str, node: Any, out: Dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), value, out)
    else:
        out[prefix] = str(node)[:MAX_PARAM_CHARS]


def _config(run_dir: Path) -> Dict[str, Any]:
    return {str(k): v for k, v in RunDir(run_dir).config().items()}


def sweep_of(run_dir: Path) -> str:
    """The name of the sweep a trail belongs to: trail.json's, else sweep.json's, else its parent dir's."""
    meta = RunDir(run_dir).meta()
    return str(meta.sweep or read_sweep_meta(Path(run_dir).parent).get("name") or Path(run_dir).parent.name)


def sweep_id_of(run_dir: Path) -> str:
    """The id of the sweep a trail belongs to ('' for a sweep made before sweeps had ids)."""
    return str(read_sweep_meta(Path(run_dir).parent).get("sweep_id") or "")


def trail_params(run_dir: Path) -> Dict[str, str]:
    """Axes (stale, alloc, rollout, algo, seed) plus the algorithm's and engine's hyperparameters."""
    meta = RunDir(run_dir).meta()
    params: Dict[str, str] = {k: str(v) for k, v in meta.axes.items()}
    cfg = _config(run_dir)
    if cfg:
        for axis in ("stale", "alloc", "rollout", "seed"):
            if axis in cfg:
                params.setdefault(axis, str(cfg[axis]))
        for group in ("algo", "engine"):
            if isinstance(cfg.get(group), dict):
                _flatten(group, cfg[group], params)
    return params


def trail_tags(run_dir: Path) -> Dict[str, str]:
    """The harness.* tags: kind, sweep name and id, trail name and id, engine, backend, code version, run dir and
    cell."""
    meta = RunDir(run_dir).meta()
    return {
        Tag.KIND: "trail",
        Tag.SWEEP: sweep_of(run_dir),
        Tag.SWEEP_ID: sweep_id_of(run_dir),
        Tag.TRAIL: meta.name,
        Tag.TRAIL_ID: meta.id,
        Tag.ENGINE: meta.engine,
        Tag.BACKEND: meta.backend,
        Tag.CODE_VERSION: code_version(),
        Tag.RUN_DIR: str(Path(run_dir).resolve()),
        CELL_TAG: trail_run_name(run_dir, with_seed=False),
    }


def trail_run_name(run_dir: Path, with_seed: bool = True) -> str:
    """'m2po · stale 256 · seed 1', rendered from the trail's identity: the axes it shows (those acting in its
    staleness mode or differing in its sweep), the seed only `with_seed` (without it, the trail's cell:
    'm2po · stale 256'); the trail name itself for a run dir without axes."""
    record = RunDir(run_dir)
    meta = record.meta()
    identity = record.identity(meta)
    return identity.run_name(with_seed) if identity else meta.name


def sweep_summary(run_dir: Path, uri: str) -> Optional[str]:
    """The id of the sweep's summary run in this store, once the sweep has one there."""
    return (read_sweep_meta(Path(run_dir).parent).get("mlflow_summaries") or {}).get(uri)
