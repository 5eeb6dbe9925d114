"""Sweep directories: <root>/<sweep name>/ with sweep.json (name, spec, trail list) and one run dir per trail."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from harness.errors import HarnessError
from harness.locks import FileLock
from harness.rundir import read_json, write_json_atomic
from harness.trails import Trail

SWEEP_META = "sweep.json"
META_LOCK = ".sweep.json.lock"  # flocked around each change of sweep.json; never deleted (see harness/locks.py)
TRAIL_META = "trail.json"


def resolve_sweep_dir(arg: str, root: str | Path = "runs") -> Path:
    """A sweep given by path or by name under root."""
    for candidate in (Path(arg), Path(root) / arg):
        if (candidate / SWEEP_META).is_file():
            return candidate
    known = sorted(p.parent.name for p in Path(root).glob(f"*/{SWEEP_META}")) if Path(root).is_dir() else []
    raise HarnessError(f"sweep '{arg}' not found under {root}/ (known sweeps: {', '.join(known) or 'none'})")


def write_trail_meta(run_dir: Path, trail: Trail, sweep: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / TRAIL_META, {
        "id": trail.id, "name": trail.name, "sweep": sweep, "dirname": trail.dirname,
        "overrides": trail.overrides, "axes": trail.axes(), "engine": trail.cfg.engine.name,
        "backend": trail.cfg.backend.name,
    })


def read_trail_meta(run_dir: Path) -> Dict[str, Any]:
    return read_json(Path(run_dir) / TRAIL_META) or {}


def write_sweep_meta(sweep_dir: Path, **fields: Any) -> Dict[str, Any]:
    """Merge fields into sweep.json (created on first write), under an exclusive flock.

    Why the lock: the sweep command and its MLflow tracker process both merge fields into sweep.json (the sweep its
    state, the tracker its summary run); two unlocked read-merge-writes at once would drop one side's fields."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(sweep_dir / META_LOCK, f"sweep.json of {sweep_dir.name!r}").acquire(wait=True):
        meta = read_json(sweep_dir / SWEEP_META) or {"created": time.time()}
        meta.update(fields)
        write_json_atomic(sweep_dir / SWEEP_META, meta)
    return meta


def read_sweep_meta(sweep_dir: Path) -> Dict[str, Any]:
    return read_json(Path(sweep_dir) / SWEEP_META) or {}


def trail_dirs(sweep_dir: Path, only: Optional[List[str]] = None) -> List[Path]:
    """Run dirs of a sweep, in sweep.json's order when known."""
    meta = read_sweep_meta(sweep_dir)
    names = only or meta.get("trails") or sorted(p.parent.name for p in Path(sweep_dir).glob(f"*/{TRAIL_META}"))
    return [Path(sweep_dir) / n for n in names if (Path(sweep_dir) / n).is_dir()]
