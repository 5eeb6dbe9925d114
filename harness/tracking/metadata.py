"""What a trail's MLflow run says about it besides metrics: its name, params (axes and hyperparameters) and tags.

Read from the run dir alone (trail.json, config.yaml, sweep.json), so any syncer on any machine labels a run alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import OmegaConf

from harness.sweepdir import read_sweep_meta, read_trail_meta
from harness.tracking.client import code_version

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


def _flatten(prefix: str, node: Any, out: Dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), value, out)
    else:
        out[prefix] = str(node)[:MAX_PARAM_CHARS]


def trail_params(run_dir: Path) -> Dict[str, str]:
    """Axes (stale, alloc, rollout, algo, seed) plus the algorithm's and engine's hyperparameters."""
    meta = read_trail_meta(run_dir)
    params: Dict[str, str] = {k: str(v) for k, v in (meta.get("axes") or {}).items()}
    path = Path(run_dir) / "config.yaml"
    if path.is_file():
        cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        assert isinstance(cfg, dict)
        for axis in ("stale", "alloc", "rollout", "seed"):
            if axis in cfg:
                params.setdefault(axis, str(cfg[axis]))
        for group in ("algo", "engine"):
            if isinstance(cfg.get(group), dict):
                _flatten(group, cfg[group], params)
    return params


def trail_tags(run_dir: Path) -> Dict[str, str]:
    """The harness.* tags: sweep, trail id, engine, backend, code version and run dir."""
    meta = read_trail_meta(run_dir)
    sweep = meta.get("sweep") or read_sweep_meta(Path(run_dir).parent).get("name") or Path(run_dir).parent.name
    return {
        "harness.sweep": str(sweep),
        "harness.trail_id": str(meta.get("id") or Path(run_dir).name),
        "harness.engine": str(meta.get("engine", "")),
        "harness.backend": str(meta.get("backend", "")),
        "harness.code_version": code_version(),
        "harness.run_dir": str(Path(run_dir).resolve()),
    }


def trail_run_name(run_dir: Path) -> str:
    return str(read_trail_meta(run_dir).get("name") or Path(run_dir).name)


def sweep_parent(run_dir: Path, uri: str) -> Optional[str]:
    """The id of the sweep's parent run in this store, once the sweep has one there."""
    return (read_sweep_meta(Path(run_dir).parent).get("mlflow_parents") or {}).get(uri)
