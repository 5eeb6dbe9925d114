"""A trail's run directory as one typed record, in the spirit of submitit's JobPaths: its paths, its status, its
identity (trail.json), its config, whether it is complete, and the MLflow tag names a trail's run carries. Every
reader and writer of a run directory goes through `RunDir`.

Layout:  <run_dir>/config.yaml  overrides.yaml  trail.json  status.json  journal.jsonl  log.txt  checkpoint/
                   trail.lock  mlflow.json  .mlflow.lock

Why one record: the rules of a run dir — which state a status.json may hold, when a finished trail is complete,
what a config.yaml means — are each written once, and every file is opened only if it is a regular file, never
through a link (harness.store.safe_files). A status.json or trail.json that is not a record of its kind (not UTF-8,
not a JSON object, a state outside TrailState) is named in one line with what to do, never read as "pending".
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from omegaconf import DictConfig, OmegaConf

from harness.errors import HarnessError
from harness.spec.identity import TrailIdentity
from harness.store.atomic import atomic_write
from harness.store.safe_files import check_directory, check_regular, open_regular
from harness.store.states import FINISHED, STATES, TrailState  # noqa: F401 - FINISHED re-exported for callers
from harness.store.yamlfile import load_plain

CONFIG = "config.yaml"
OVERRIDES = "overrides.yaml"
TRAIL_META = "trail.json"
STATUS = "status.json"
JOURNAL = "journal.jsonl"       # harness.store.journal.JOURNAL_NAME
LOG = "log.txt"
CHECKPOINT_DIR = "checkpoint"  # an engine's resume state
TRAIL_LOCK = "trail.lock"       # harness.store.locks
CURSOR = "mlflow.json"          # harness.tracking.cursor
SYNC_LOCK = ".mlflow.lock"
FILES = (CONFIG, OVERRIDES, TRAIL_META, STATUS, JOURNAL, LOG, TRAIL_LOCK, CURSOR, SYNC_LOCK)


class Tag:
    """The MLflow tags of the harness's runs (a trail's run and the sweep's summary run)."""

    KIND = "harness.kind"               # "trail" | "summary"
    SWEEP = "harness.sweep"             # the sweep's name
    SWEEP_ID = "harness.sweep_id"       # the sweep's own id (sweep.json): a sweep of the same name is another one
    TRAIL = "harness.trail"             # the trail's name
    TRAIL_ID = "harness.trail_id"
    STATUS = "harness.status"           # a TrailState value
    REASON = "harness.reason"
    STARTED = "harness.started"
    ENGINE = "harness.engine"
    BACKEND = "harness.backend"
    NODE = "harness.node"
    CODE_VERSION = "harness.code_version"
    RUN_DIR = "harness.run_dir"
    CELL = "harness.cell"               # the trail's cell: its run name without the seed (tracking.metadata)


class CorruptRecord(HarnessError):
    """A run-directory file that is not what the harness wrote there."""

    def __init__(self, path: Path, what: str, problem: str, remedy: str):
        self.path = path
        super().__init__(f"{path}: not a {what} ({problem}): {remedy}")


def read_json(path: Path | str) -> Optional[Any]:
    """A JSON file's value, or None when the file is absent or holds no complete JSON value (a file is written by
    rename, so a torn one is not the harness's). Refuses a link or a non-regular file (NotRegularFile); a file that
    is not UTF-8 is CorruptRecord."""
    path = Path(path)
    try:
        with open_regular(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptRecord(path, "JSON file", f"byte {exc.start} is not UTF-8",
                            "remove it, or restore it from a copy") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


def read_json_object(path: Path | str, what: str, remedy: str) -> Optional[Dict[str, Any]]:
    """read_json for a file that must hold a JSON object: None when absent or empty, CorruptRecord otherwise."""
    value = read_json(path)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CorruptRecord(Path(path), what, f"a JSON {type(value).__name__}, not an object", remedy)
    return value


def write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    """Write through a temp file and rename: readers see the old or the new file, never a torn one. The temp file
    is removed when the write fails (a full disk)."""
    with atomic_write(path) as fh:
        json.dump(data, fh, indent=1, sort_keys=True, default=str)


_STATUS_REMEDY = "remove it (the trail then counts as pending and a rerun runs it again)"
_META_REMEDY = "remove the run directory and rerun the sweep, which writes it again"


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) else None


def _integer(value: Any) -> Optional[int]:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _steps(value: Any) -> Tuple[int, ...]:
    """A list of step numbers; anything else reads as none."""
    if not isinstance(value, list):
        return ()
    return tuple(sorted({v for v in value if isinstance(v, int) and not isinstance(v, bool) and v > 0}))


@dataclass(frozen=True)
class Status:
    """A trail's status.json, typed."""

    state: TrailState = TrailState.PENDING
    step: Optional[int] = None
    total_steps: Optional[int] = None
    reason: str = ""
    submitted: Optional[float] = None
    started: Optional[float] = None
    ended: Optional[float] = None
    updated: Optional[float] = None
    host: Optional[str] = None
    node: Optional[str] = None
    pid: Optional[int] = None
    attempts: int = 0
    unlogged: Tuple[int, ...] = ()    # steps the engine ran without metrics it can ever get (EngineResult.unlogged)

    @classmethod
    def parse(cls, data: Dict[str, Any], path: Path) -> Status:
        state = data.get("state", TrailState.PENDING.value)
        if str(state) not in STATES:
            raise CorruptRecord(path, "trail status", f"state {state!r} is none of {', '.join(STATES)}",
                                _STATUS_REMEDY)
        text = {k: str(data[k]) if data.get(k) is not None else None for k in ("host", "node")}
        return cls(TrailState(str(state)), _integer(data.get("step")), _integer(data.get("total_steps")),
                   str(data.get("reason") or ""), _number(data.get("submitted")), _number(data.get("started")),
                   _number(data.get("ended")), _number(data.get("updated")), text["host"], text["node"],
                   _integer(data.get("pid")), _integer(data.get("attempts")) or 0, _steps(data.get("unlogged")))

    def as_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return {k: v for k, v in out.items() if v is not None and v != "" and v != ()} | {"state": self.state.value}


STATUS_FIELDS = tuple(f.name for f in fields(Status))


@dataclass(frozen=True)
class TrailMeta:
    """A trail's trail.json: who it is (id, name, sweep), how it was composed, which engine and backend run it."""

    id: str
    name: str
    sweep: str = ""
    dirname: str = ""
    overrides: List[str] = field(default_factory=list)
    axes: Dict[str, Any] = field(default_factory=dict)
    engine: str = ""
    backend: str = ""
    identity: Optional[TrailIdentity] = None  # None in a trail.json written before it held one

    @classmethod
    def of(cls, trail_id: str, identity: TrailIdentity, sweep: str, dirname: str, overrides: Sequence[str],
           engine: str, backend: str) -> TrailMeta:
        """A trail's record, its name and axes rendered from its identity."""
        return cls(trail_id, identity.name(), sweep, dirname, list(overrides), identity.axes(), engine, backend,
                   identity)

    @classmethod
    def parse(cls, data: Dict[str, Any], path: Path) -> TrailMeta:
        bad = [k for k, kind in (("id", str), ("name", str), ("overrides", list), ("axes", dict), ("identity", dict))
               if k in data and not isinstance(data[k], kind)]
        if bad:
            raise CorruptRecord(path, "trail record", f"'{bad[0]}' is a {type(data[bad[0]]).__name__}",
                                _META_REMEDY)
        identity = None
        if "identity" in data:
            try:
                identity = TrailIdentity.from_record(data["identity"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptRecord(path, "trail record", f"'identity' is not a trail's identity ({exc})",
                                    _META_REMEDY) from None
        run_dir = path.parent.name
        return cls(str(data.get("id") or run_dir), str(data.get("name") or run_dir), str(data.get("sweep") or ""),
                   str(data.get("dirname") or run_dir), [str(o) for o in data.get("overrides") or []],
                   dict(data.get("axes") or {}), str(data.get("engine") or ""), str(data.get("backend") or ""),
                   identity)

    def record(self) -> Dict[str, Any]:
        """trail.json as written."""
        out = asdict(self)
        out["identity"] = self.identity.record() if self.identity else None
        return {k: v for k, v in out.items() if v is not None}


class RunDir:
    """One trail's run directory. Cheap to make: nothing is read until asked for."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------ paths
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sweep_dir(self) -> Path:
        return self.path.parent

    config_path = property(lambda self: self.path / CONFIG)
    overrides_path = property(lambda self: self.path / OVERRIDES)
    meta_path = property(lambda self: self.path / TRAIL_META)
    status_path = property(lambda self: self.path / STATUS)
    journal_path = property(lambda self: self.path / JOURNAL)
    log_path = property(lambda self: self.path / LOG)
    checkpoint_dir = property(lambda self: self.path / CHECKPOINT_DIR)
    lock_path = property(lambda self: self.path / TRAIL_LOCK)
    cursor_path = property(lambda self: self.path / CURSOR)

    def check(self) -> None:
        """The run dir is a real directory and each of its files a regular one (none a link, a FIFO, …); raises
        with one line naming the first that is not."""
        if not check_directory(self.path):
            return
        for name in FILES:
            check_regular(self.path / name)
        check_directory(self.checkpoint_dir)

    # ------------------------------------------------------------ status.json
    def status(self) -> Status:
        data = read_json_object(self.status_path, "trail status", _STATUS_REMEDY)
        return Status() if data is None else Status.parse(data, self.status_path)

    def status_record(self) -> Dict[str, Any]:
        """status.json as it is stored (for scripts and tests), {'state': 'pending'} when absent."""
        return read_json_object(self.status_path, "trail status", _STATUS_REMEDY) or \
            {"state": TrailState.PENDING.value}

    def write_status(self, state: TrailState | str, **changes: Any) -> Status:
        """Merge `changes` into status.json and set its state; earlier fields (e.g. started) stay unless changed
        (None removes one). Fields beyond Status's (a plug-in's own) are kept in the file, unread by the harness."""
        if str(state) not in STATES:
            raise ValueError(f"unknown trail state {state!r}; allowed: {', '.join(STATES)}")
        record = self.status_record()
        record.update(changes)
        record["state"] = str(state)
        record["updated"] = time.time()
        status = Status.parse(record, self.status_path)
        write_json_atomic(self.status_path, {k: v for k, v in record.items() if v is not None})
        return status

    def record_outcome(self, state: TrailState | str, reason: Optional[str] = None, **changes: Any) -> Status:
        """Record a trail's state: the one call every writer (runner, sweep, backends) makes. A terminal state gets
        `ended` (now, unless given); `reason` replaces the recorded one when given."""
        state = TrailState(state)
        if reason is not None:
            changes["reason"] = reason
        if state.terminal:
            changes.setdefault("ended", time.time())
        return self.write_status(state, **changes)

    # ------------------------------------------------------------ trail.json
    def meta(self) -> TrailMeta:
        """trail.json (an id and name from the directory's name when it is absent)."""
        data = read_json_object(self.meta_path, "trail record", _META_REMEDY)
        return TrailMeta.parse(data or {}, self.meta_path)

    def has_meta(self) -> bool:
        return check_regular(self.meta_path)

    def write_meta(self, meta: TrailMeta) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.meta_path, meta.record())

    def identity(self, meta: Optional[TrailMeta] = None) -> Optional[TrailIdentity]:
        """Who the trail is (harness.spec.identity): trail.json's; for a trail recorded before trail.json held it,
        built from its recorded axes and its config; None for a run dir that recorded no axes."""
        meta = meta or self.meta()
        if meta.identity is not None:
            return meta.identity
        if not {"stale", "alloc", "rollout", "algo"} <= set(meta.axes):
            return None
        try:
            return TrailIdentity.from_fields(meta.axes, self.config(), meta.engine)
        except (TypeError, ValueError):
            return None

    # ------------------------------------------------------------ config.yaml, overrides.yaml
    def config(self) -> Dict[str, Any]:
        """config.yaml as plain data ({} without one). It is saved resolved, so a plain YAML parser reads it
        (harness.store.yamlfile: libyaml under OmegaConf's rules), ~50× cheaper than OmegaConf."""
        try:
            cfg = load_plain(self.config_path) or {}
        except (FileNotFoundError, yaml.YAMLError, UnicodeDecodeError):
            return {}
        return cfg if isinstance(cfg, dict) else {}

    def omega_config(self) -> DictConfig:
        """config.yaml as the DictConfig the engine runs (raises when it is absent or not a mapping)."""
        data = load_plain(self.config_path)
        cfg = OmegaConf.create(data if data is not None else {})
        if not isinstance(cfg, DictConfig):
            raise CorruptRecord(self.config_path, "trail config", "not a mapping", _META_REMEDY)
        return cfg

    def save_config(self, cfg: DictConfig, overrides: Sequence[str]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.config_path) as fh:
            fh.write(OmegaConf.to_yaml(cfg, resolve=True))
        with atomic_write(self.overrides_path) as fh:
            fh.write(OmegaConf.to_yaml(OmegaConf.create([str(o) for o in overrides])))

    def overrides(self) -> List[str]:
        """The trail's own Hydra overrides, as the sweep composed it (empty when none were saved)."""
        try:
            with open_regular(self.overrides_path, "r") as fh:
                return [str(o) for o in OmegaConf.load(fh)]
        except FileNotFoundError:
            return []

    # ------------------------------------------------------------ completeness
    def lost_steps(self, ranges: Optional[List[Tuple[int, int]]] = None,
                   status: Optional[Status] = None) -> List[int]:
        """For a finished trail, the steps up to its recorded final step that its journal lacks (empty: complete;
        always empty for a trail that has not finished). `ranges`: the steps the journal holds, where already read
        (harness.store.journal_index)."""
        status = self.status() if status is None else status
        if not status.state.finished or status.step is None:
            return []
        if ranges is None:
            from harness.store.journal import missing_steps

            missing = missing_steps(self.path, status.step)
        else:
            from harness.store.journal_index import missing_in

            missing = missing_in(ranges, status.step)
        return [s for s in missing if s not in status.unlogged]

    def is_complete(self, ranges: Optional[List[Tuple[int, int]]] = None) -> bool:
        """Finished (done or diverged) with every step up to its last in the journal: a rerun skips it."""
        status = self.status()
        return status.state.finished and not self.lost_steps(ranges, status)


def name_steps(steps: Sequence[int]) -> str:
    """'step 4' or 'steps 4, 5, 6, 7, 8, …' (the first five), for a reason line."""
    shown = ", ".join(str(s) for s in steps[:5]) + (", …" if len(steps) > 5 else "")
    return f"step{'s' if len(steps) > 1 else ''} {shown}"


def describe_lost(steps: List[int], last: object) -> str:
    return f"its journal lacks {name_steps(steps)} of {last}; a rerun repairs it"


# The run dir's record as functions of a path, for scripts and tests (the harness itself uses RunDir).
def read_status(run_dir: Path | str) -> Dict[str, Any]:
    return RunDir(run_dir).status_record()


def write_status(run_dir: Path | str, state: TrailState | str, **changes: Any) -> Dict[str, Any]:
    return RunDir(run_dir).write_status(state, **changes).as_dict()


def record_outcome(run_dir: Path | str, state: TrailState | str, reason: Optional[str] = None,
                   **changes: Any) -> Dict[str, Any]:
    return RunDir(run_dir).record_outcome(state, reason, **changes).as_dict()


def lost_steps(run_dir: Path | str) -> List[int]:
    return RunDir(run_dir).lost_steps()


def save_config(run_dir: Path | str, cfg: DictConfig, overrides: Sequence[str]) -> None:
    RunDir(run_dir).save_config(cfg, overrides)


def load_config(run_dir: Path | str) -> DictConfig:
    return RunDir(run_dir).omega_config()


def load_overrides(run_dir: Path | str) -> List[str]:
    return RunDir(run_dir).overrides()
