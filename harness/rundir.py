"""A trail's run directory: resolved config, overrides, status and identity, each written atomically.

Layout:  <run_dir>/config.yaml  overrides.yaml  trail.json  status.json  journal.jsonl  log.txt  checkpoint/
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from harness.atomic import atomic_write
from harness.errors import naming
from harness.states import FINISHED, STATES, TrailState  # noqa: F401 - FINISHED re-exported for callers


def write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    """Write through a temp file and rename: readers see the old or the new file, never a torn one. The temp file
    is removed when the write fails (a full disk)."""
    with atomic_write(path) as fh:
        json.dump(data, fh, indent=1, sort_keys=True, default=str)


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_status(run_dir: Path | str, state: str, **fields: Any) -> Dict[str, Any]:
    """Merge `fields` into status.json and set its state; keeps earlier fields (e.g. started) unless overwritten."""
    if str(state) not in STATES:
        raise ValueError(f"unknown trail state {state!r}; allowed: {', '.join(STATES)}")
    path = Path(run_dir) / "status.json"
    status = read_json(path) or {}
    status.update(fields)
    status["state"] = str(state)
    status["updated"] = time.time()
    write_json_atomic(path, status)
    return status


def record_outcome(run_dir: Path | str, state: TrailState | str, reason: Optional[str] = None,
                   **fields: Any) -> Dict[str, Any]:
    """Record a trail's state in status.json: the one call every writer (runner, sweep, backends) makes.

    A terminal state gets `ended` (now, unless given); `reason` replaces the recorded one when given.
    """
    state = TrailState(state)
    if reason is not None:
        fields["reason"] = reason
    if state.terminal:
        fields.setdefault("ended", time.time())
    return write_status(run_dir, state, **fields)


def read_status(run_dir: Path | str) -> Dict[str, Any]:
    return read_json(Path(run_dir) / "status.json") or {"state": TrailState.PENDING.value}


def lost_steps(run_dir: Path | str) -> List[int]:
    """For a finished trail, the steps up to its recorded final step that its journal lacks (empty: complete).
    A trail counts as finished only when this is empty."""
    from harness.journal import missing_steps

    status = read_status(run_dir)
    if status.get("state") not in FINISHED or status.get("step") is None:
        return []
    return missing_steps(run_dir, int(status["step"]))


def describe_lost(steps: List[int], last: object) -> str:
    shown = ", ".join(str(s) for s in steps[:5]) + (", …" if len(steps) > 5 else "")
    return f"incomplete: its journal lacks step{'s' if len(steps) > 1 else ''} {shown} of {last}; a rerun repairs it"


def save_config(run_dir: Path | str, cfg: DictConfig, overrides: list[str]) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with naming(run_dir / "config.yaml"):
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    with naming(run_dir / "overrides.yaml"):
        (run_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))


def load_overrides(run_dir: Path | str) -> List[str]:
    """The trail's own Hydra overrides, as the sweep composed it (empty when none were saved)."""
    path = Path(run_dir) / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def load_config(run_dir: Path | str) -> DictConfig:
    from harness.yamlfile import load_dict_config  # libyaml: what OmegaConf.load reads, a fraction of the time

    return load_dict_config(Path(run_dir) / "config.yaml")
