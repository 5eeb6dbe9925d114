"""Journal → MLflow catch-up: exactly once per (metric, step), across restarts, resumes, crashes and dead servers.

The journal is the source of truth; MLflow is a view of it. Each trail keeps a cursor in `<run_dir>/mlflow.json`,
one entry per tracking URI: the run id, the last step known to be in MLflow, and an *in-flight* range written just
before a `log_batch`. A crash (or a timeout whose outcome is unknown) between the batch and the cursor update leaves
the range marked; the next sync reads that range's history back from MLflow and logs only what is missing.
Resume truncates the journal to its checkpoint and recomputes the same steps: steps at or below the cursor are never
sent again. Batches hold whole steps and at most 1000 metrics (MLflow's limit per call).
"""

from __future__ import annotations

import fcntl
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from omegaconf import OmegaConf

from harness.errors import HarnessError
from harness.journal import iter_records
from harness.rundir import read_json, read_status, write_json_atomic
from harness.sweepdir import read_sweep_meta, read_trail_meta, resolve_sweep_dir, trail_dirs
from harness.states import TERMINAL, TrailState
from harness.tracking.client import (RUN_STATUS, code_version, get_experiment_id, make_client,
                                     resolve_uri, retry_locked)
from harness.tracking.config import TrackingConfig

log = logging.getLogger("harness.tracking")

CURSOR_NAME = "mlflow.json"
LOCK_NAME = ".mlflow.lock"
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
NON_METRIC_KEYS = ("step", "time")


@dataclass
class SyncResult:
    run_dir: Path
    run_id: Optional[str] = None
    logged: int = 0                 # metric values sent by this call
    synced_step: int = -1
    status: str = ""
    error: Optional[str] = None


@dataclass
class Target:
    """Where a trail's run lives: tracking URI, experiment and client settings."""
    uri: str
    experiment: str = "harness"
    timeout_s: float = 10.0
    retries: int = 1
    extra: Dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- where a trail syncs to

def tracking_config(run_dir: Path) -> TrackingConfig:
    """The trail's tracking settings from its config.yaml (defaults when the file or the group is absent)."""
    path = Path(run_dir) / "config.yaml"
    tc = TrackingConfig()
    if path.is_file():
        cfg = OmegaConf.load(path)
        for key, value in (cfg.get("tracking") or {}).items():
            if hasattr(tc, key):
                setattr(tc, key, value)
    return tc


def trail_target(run_dir: Path, uri: Optional[str] = None, tracking: Any = None) -> Target:
    """Explicit uri > the sweep's resolved uri (sweep.json, set at launch) > the trail config's uri against cwd."""
    tc = tracking if tracking is not None else tracking_config(run_dir)
    if uri:
        resolved = resolve_uri(uri)
    else:
        resolved = read_sweep_meta(Path(run_dir).parent).get("mlflow_uri") or resolve_uri(tc.uri)
    return Target(resolved, tc.experiment, float(tc.http_timeout_s), int(tc.http_retries))


# ---------------------------------------------------------------- cursor and lock

def read_cursor(run_dir: Path, uri: str) -> Dict[str, Any]:
    return dict((read_json(Path(run_dir) / CURSOR_NAME) or {}).get(uri) or {})


def write_cursor(run_dir: Path, uri: str, cursor: Dict[str, Any]) -> None:
    """Atomic rewrite of this URI's entry (the caller holds the trail's sync lock)."""
    path = Path(run_dir) / CURSOR_NAME
    data = read_json(path) or {}
    data[uri] = cursor
    write_json_atomic(path, data)


@contextmanager
def trail_lock(run_dir: Path) -> Iterator[None]:
    """One syncer per trail at a time (live sync inside the trail vs `harness sync` from a shell)."""
    with open(Path(run_dir) / LOCK_NAME, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------- run identity, params, tags

def _flatten(prefix: str, node: Any, out: Dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), value, out)
    else:
        out[prefix] = str(node)[:6000]


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
    meta = read_trail_meta(run_dir)
    sweep = meta.get("sweep") or read_sweep_meta(Path(run_dir).parent).get("name") or Path(run_dir).parent.name
    tags = {
        "harness.sweep": str(sweep),
        "harness.trail_id": str(meta.get("id") or Path(run_dir).name),
        "harness.engine": str(meta.get("engine", "")),
        "harness.backend": str(meta.get("backend", "")),
        "harness.code_version": code_version(),
        "harness.run_dir": str(Path(run_dir).resolve()),
    }
    return tags


def trail_run_name(run_dir: Path) -> str:
    return str(read_trail_meta(run_dir).get("name") or Path(run_dir).name)


def sweep_parent(run_dir: Path, uri: str) -> Optional[str]:
    return (read_sweep_meta(Path(run_dir).parent).get("mlflow_parents") or {}).get(uri)


def _find_run(client: Any, experiment_id: str, tags: Dict[str, str]) -> Optional[str]:
    """A run created earlier for this trail whose id never reached the cursor (crash right after create_run)."""
    flt = (f"tags.`harness.trail_id` = '{tags['harness.trail_id']}' and "
           f"tags.`harness.sweep` = '{tags['harness.sweep']}'")
    runs = retry_locked(lambda: client.search_runs([experiment_id], filter_string=flt, max_results=5,
                                                   order_by=["attributes.start_time ASC"]))
    return runs[0].info.run_id if runs else None


def _ensure_run(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> str:
    if cursor.get("run_id"):
        return cursor["run_id"]
    experiment_id = get_experiment_id(client, target.experiment)
    tags = trail_tags(run_dir)
    run_id = _find_run(client, experiment_id, tags)
    if run_id is not None:
        # Its cursor was lost: treat all of its history as unknown and verify it before logging.
        cursor.update(inflight=[-1, 2**62])
    else:
        parent = sweep_parent(run_dir, target.uri)
        if parent:
            tags["mlflow.parentRunId"] = parent
        tags["harness.status"] = read_status(run_dir)["state"]
        run = retry_locked(lambda: client.create_run(experiment_id, run_name=trail_run_name(run_dir), tags=tags))
        run_id = run.info.run_id
        cursor["parent"] = parent
        cursor["status"] = None  # a new run is RUNNING whatever the trail's state: _sync_status settles it
    cursor.update(run_id=run_id, experiment_id=experiment_id, synced_step=cursor.get("synced_step", -1))
    write_cursor(run_dir, target.uri, cursor)
    return run_id


def _sync_params(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> None:
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in sorted(trail_params(run_dir).items())]
    for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
        chunk = params[i:i + MAX_PARAMS_PER_BATCH]
        retry_locked(lambda: client.log_batch(cursor["run_id"], params=chunk, synchronous=True))
    cursor["params"] = True
    write_cursor(run_dir, target.uri, cursor)


def _sync_parent(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> None:
    """Attach the trail to its sweep's parent run when that was created after the trail (MLflow was down)."""
    parent = sweep_parent(run_dir, target.uri)
    if parent and cursor.get("parent") != parent:
        retry_locked(lambda: client.set_tag(cursor["run_id"], "mlflow.parentRunId", parent))
        cursor["parent"] = parent
        write_cursor(run_dir, target.uri, cursor)


def _sync_status(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> str:
    """harness.status tag and the run's lifecycle follow status.json; terminal states end the run."""
    status = read_status(run_dir)
    state = status.get("state", TrailState.PENDING.value)
    if state == cursor.get("status"):
        return state
    run_id = cursor["run_id"]
    retry_locked(lambda: client.set_tag(run_id, "harness.status", state))
    if state in TERMINAL:
        ended = status.get("ended")
        end_ms = int(float(ended) * 1000) if ended else None
        retry_locked(lambda: client.set_terminated(run_id, status=RUN_STATUS[state], end_time=end_ms))
    elif state == TrailState.RUNNING and cursor.get("status") in TERMINAL:
        retry_locked(lambda: client.update_run(run_id, status="RUNNING"))  # a resumed trail
    cursor["status"] = state
    write_cursor(run_dir, target.uri, cursor)
    return state


# ---------------------------------------------------------------- metrics

def _metric_value(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def pending_steps(run_dir: Path, after: int) -> List[Tuple[int, int, Dict[str, float]]]:
    """(step, timestamp ms, metrics) of journal records past the cursor, in order, one per step."""
    out: List[Tuple[int, int, Dict[str, float]]] = []
    seen: Set[int] = set()
    now_ms = int(time.time() * 1000)
    for record in iter_records(run_dir):
        step = int(record["step"])
        if step <= after or step in seen:
            continue
        seen.add(step)
        ts = record.get("time")
        ts_ms = int(float(ts) * 1000) if isinstance(ts, (int, float)) and math.isfinite(ts) else now_ms
        metrics = {k: v for k, v in ((k, _metric_value(v)) for k, v in record.items() if k not in NON_METRIC_KEYS)
                   if v is not None}
        out.append((step, ts_ms, metrics))
    return out


def step_batches(steps: List[Tuple[int, int, Dict[str, float]]],
                 limit: int = MAX_METRICS_PER_BATCH) -> Iterator[List[Tuple[int, int, Dict[str, float]]]]:
    """Whole steps per batch, at most `limit` metric values each (a step larger than the limit is split alone)."""
    batch: List[Tuple[int, int, Dict[str, float]]] = []
    size = 0
    for item in steps:
        n = len(item[2])
        if batch and size + n > limit:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += n
    if batch:
        yield batch


def logged_pairs(client: Any, run_id: str, keys: Set[str], lo: int, hi: int) -> Tuple[Set[Tuple[str, int]], int]:
    """(metric, step) pairs already in MLflow within [lo, hi] — the outcome of an unconfirmed batch — and the
    highest step MLflow holds for these keys."""
    found: Set[Tuple[str, int]] = set()
    top = -1
    for key in sorted(keys):
        for m in retry_locked(lambda: client.get_metric_history(run_id, key)):
            top = max(top, int(m.step))
            if lo <= m.step <= hi:
                found.add((key, int(m.step)))
    return found, top


def _sync_metrics(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> int:
    from mlflow.entities import Metric

    run_id = cursor["run_id"]
    steps = pending_steps(run_dir, int(cursor.get("synced_step", -1)))
    already: Set[Tuple[str, int]] = set()
    if cursor.get("inflight") and steps:
        lo, hi = cursor["inflight"]
        keys = {k for s, _, m in steps if lo <= s <= hi for k in m}
        already, top = logged_pairs(client, run_id, keys, lo, hi)
        cursor["inflight"] = [lo, min(hi, max(top, lo))]  # nothing beyond `top` can be a duplicate
    logged = 0
    for batch in step_batches(steps):
        metrics = [Metric(key, value, ts, step) for step, ts, values in batch for key, value in values.items()
                   if (key, step) not in already]
        first, last = batch[0][0], batch[-1][0]
        if metrics:
            # Mark the range before sending: if we never hear back, the next sync verifies it against MLflow.
            lo, hi = cursor.get("inflight") or (first, last)
            cursor["inflight"] = [min(lo, first), max(hi, last)]
            write_cursor(run_dir, target.uri, cursor)
            for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):  # only a single oversized step splits
                chunk = metrics[i:i + MAX_METRICS_PER_BATCH]
                retry_locked(lambda: client.log_batch(run_id, metrics=chunk, synchronous=True))
            logged += len(metrics)
        cursor["synced_step"] = last
        if cursor.get("inflight") and last >= cursor["inflight"][1]:
            cursor["inflight"] = None
        write_cursor(run_dir, target.uri, cursor)
    return logged


# ---------------------------------------------------------------- public API

def sync_trail(run_dir: Path | str, uri: Optional[str] = None, client: Any = None,
               tracking: Any = None) -> SyncResult:
    """Bring MLflow up to date with one trail's journal and status; raises when MLflow cannot be reached."""
    run_dir = Path(run_dir)
    target = trail_target(run_dir, uri, tracking)
    result = SyncResult(run_dir)
    with trail_lock(run_dir):
        client = client or make_client(target.uri, target.timeout_s, target.retries)
        for attempt in (1, 2):
            cursor = read_cursor(run_dir, target.uri)
            try:
                result.run_id = _ensure_run(client, run_dir, target, cursor)
                if not cursor.get("params"):
                    _sync_params(client, run_dir, target, cursor)
                _sync_parent(client, run_dir, target, cursor)
                result.logged = _sync_metrics(client, run_dir, target, cursor)
                result.status = _sync_status(client, run_dir, target, cursor)
                break
            except Exception as exc:  # noqa: BLE001 - only a vanished run is handled here
                if attempt == 2 or not cursor.get("run_id") or not _run_is_gone(client, cursor["run_id"], exc):
                    raise
                # The store was wiped or the run deleted: the journal is the truth, so log it again from scratch.
                log.warning("MLflow run %s of %s is gone; recreating it from the journal", cursor["run_id"], run_dir)
                write_cursor(run_dir, target.uri, {})
        result.synced_step = int(cursor.get("synced_step", -1))
    return result


def _run_is_gone(client: Any, run_id: str, exc: BaseException) -> bool:
    if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")) and "not found" not in str(exc).lower():
        return False
    try:
        return client.get_run(run_id).info.lifecycle_stage == "deleted"
    except Exception as again:  # noqa: BLE001
        return "RESOURCE_DOES_NOT_EXIST" in str(getattr(again, "error_code", ""))


def sync_sweep(sweep_dir: Path | str, uri: Optional[str] = None) -> List[SyncResult]:
    """Sync every trail of a sweep (parent run first); one trail's failure does not stop the others."""
    from harness.tracking.sweep_run import ensure_sweep_run

    sweep_dir = Path(sweep_dir)
    dirs = trail_dirs(sweep_dir)
    if dirs:
        ensure_sweep_run(sweep_dir, tracking_config(dirs[0]), uri=uri or read_sweep_meta(sweep_dir).get("mlflow_uri"),
                         primary=uri is None)
    results = []
    for run_dir in dirs:
        try:
            results.append(sync_trail(run_dir, uri=uri))
        except Exception as exc:  # noqa: BLE001 - reported per trail; the next sync retries
            log.warning("sync of %s failed: %s", run_dir, exc)
            results.append(SyncResult(run_dir, error=f"{type(exc).__name__}: {exc}"))
    return results


def main_sync(sweep: str, root: str = "runs", uri: Optional[str] = None) -> int:
    """`harness sync <sweep>`: catch MLflow up with the journals; ends the parent run once every trail has ended."""
    from harness.tracking.sweep_run import finish_sweep_run

    sweep_dir = resolve_sweep_dir(sweep, root)
    results = sync_sweep(sweep_dir, uri=uri)
    if not results:
        raise HarnessError(f"sweep {sweep_dir} has no trails to sync")
    target = resolve_uri(uri) if uri else read_sweep_meta(sweep_dir).get("mlflow_uri")
    for r in results:
        line = f"error: {r.error}" if r.error else f"{r.logged} new values, step {r.synced_step}, {r.status}"
        print(f"{r.run_dir.name}: {line}")
    failed = [r for r in results if r.error]
    if not failed and all(r.status in TERMINAL for r in results):
        overall = TrailState.FAILED if any(r.status == TrailState.FAILED for r in results) else TrailState.DONE
        finish_sweep_run(sweep_dir, overall, uri=target)
    print(f"synced {len(results) - len(failed)}/{len(results)} trails to {target or 'each trail config uri'}")
    return 1 if failed else 0
