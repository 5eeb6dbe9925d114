"""Sweep directories: <root>/<sweep name>/ with sweep.json (name, id, spec, trail list) and one run dir per trail.

A sweep is more than its name: sweep.json gets an id when the sweep is first made (`sweep_id`), which tags its MLflow
runs, so a sweep deleted and run again under the same name, or another sweep of that name on the same store, is never
read as this one; and it records the directory it was made in (device and inode), so a copy of the directory is
told from the sweep itself.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

from harness.errors import HarnessError
from harness.spec.trails import Trail
from harness.store.locks import FileLock
from harness.store.rundir import CorruptRecord, RunDir, TrailMeta, read_json_object, write_json_atomic
from harness.store.safe_files import check_directory, check_regular
from harness.store.states import STATES

SWEEP_META = "sweep.json"
META_LOCK = ".sweep.json.lock"  # flocked around each change of sweep.json; never deleted (see harness/store/locks.py)
TRAIL_META = "trail.json"
SWEEP_FILES = (SWEEP_META, META_LOCK, "sweep.lock", "tracker.lock", "tracking.log", ".journal-index.json")
_REMEDY = "restore it from a copy, or remove the sweep directory to run the sweep anew"


def resolve_sweep_dir(arg: str, root: str | Path = "runs") -> Path:
    """A sweep given by path or by name under root."""
    for candidate in (Path(arg), Path(root) / arg):
        if os.path.lexists(candidate / SWEEP_META):
            return candidate
    known = sorted(p.parent.name for p in Path(root).glob(f"*/{SWEEP_META}")) if Path(root).is_dir() else []
    raise HarnessError(f"sweep '{arg}' not found under {root}/ (known sweeps: {', '.join(known) or 'none'})")


def check_sweep_files(sweep_dir: Path) -> None:
    """Every file the harness keeps in the sweep dir is a regular file (no link, no FIFO): one line naming the
    first that is not."""
    for name in SWEEP_FILES:
        check_regular(Path(sweep_dir) / name)
    check_directory(Path(sweep_dir) / "report")


def write_trail_meta(run_dir: Path, trail: Trail, sweep: str) -> None:
    RunDir(run_dir).write_meta(TrailMeta.of(trail.id, trail.identity, sweep, trail.dirname, trail.overrides,
                                            str(trail.cfg.engine.name), str(trail.cfg.backend.name)))


def read_trail_meta(run_dir: Path) -> Dict[str, Any]:
    """trail.json as a dict (for scripts; the harness reads RunDir(run_dir).meta())."""
    return RunDir(run_dir).meta().record()


def _validate(meta: Dict[str, Any], path: Path) -> Dict[str, Any]:
    trails = meta.get("trails")
    if trails is not None and not (isinstance(trails, list) and all(isinstance(t, str) for t in trails)):
        raise CorruptRecord(path, "sweep record", f"'trails' is {trails!r:.60}, not a list of run directory names",
                            _REMEDY)
    bad = [t for t in trails or [] if not t or t in (".", "..") or "/" in t or "\0" in t]
    if bad:
        raise CorruptRecord(path, "sweep record", f"trail {bad[0]!r} is not a run directory's name", _REMEDY)
    state = meta.get("state")
    if state is not None and state not in STATES:
        raise CorruptRecord(path, "sweep record", f"state {state!r} is none of {', '.join(STATES)}", _REMEDY)
    return meta


def read_sweep_meta(sweep_dir: Path) -> Dict[str, Any]:
    """sweep.json ({} before the sweep has one); one line naming the file when it is not a sweep record."""
    path = Path(sweep_dir) / SWEEP_META
    return _validate(read_json_object(path, "sweep record", _REMEDY) or {}, path)


def _home(sweep_dir: Path) -> Dict[str, Any]:
    st = os.stat(sweep_dir)
    return {"dev": st.st_dev, "ino": st.st_ino}


def write_sweep_meta(sweep_dir: Path, **fields: Any) -> Dict[str, Any]:
    """Merge fields into sweep.json (created on first write, with the sweep's id and home), under an exclusive flock.

    Why the lock: the sweep command and its MLflow tracker process both merge fields into sweep.json (the sweep its
    state, the tracker its summary run); two unlocked read-merge-writes at once would drop one side's fields."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(sweep_dir / META_LOCK, f"sweep.json of {sweep_dir.name!r}").acquire(wait=True):
        meta = read_sweep_meta(sweep_dir) or {"created": time.time()}
        meta.setdefault("sweep_id", uuid.uuid4().hex)
        meta.setdefault("home", _home(sweep_dir))
        meta.update(fields)
        write_json_atomic(sweep_dir / SWEEP_META, _validate(meta, sweep_dir / SWEEP_META))
    return meta


def sweep_id(sweep_dir: Path) -> Optional[str]:
    """The sweep's own id (None for a sweep made before sweeps had one)."""
    value = read_sweep_meta(sweep_dir).get("sweep_id")
    return str(value) if value else None


def is_original(sweep_dir: Path) -> bool:
    """Whether `sweep_dir` is the directory the sweep was made in (or moved, on one file system), not a copy of it:
    a copy has another inode. A sweep made before sweeps recorded their home counts as original."""
    home = read_sweep_meta(sweep_dir).get("home")
    if not isinstance(home, dict):
        return True
    try:
        return _home(sweep_dir) == {"dev": home.get("dev"), "ino": home.get("ino")}
    except OSError:
        return False


def trail_dirs(sweep_dir: Path, only: Optional[List[str]] = None) -> List[Path]:
    """Run dirs of a sweep, in sweep.json's order when known; a run dir that is a link is refused."""
    meta = read_sweep_meta(sweep_dir)
    names = only or meta.get("trails") or sorted(p.parent.name for p in Path(sweep_dir).glob(f"*/{TRAIL_META}"))
    return [Path(sweep_dir) / n for n in names if check_directory(Path(sweep_dir) / n)]


def run_dirs(sweep_dir: Path) -> List[RunDir]:
    return [RunDir(d) for d in trail_dirs(sweep_dir)]
