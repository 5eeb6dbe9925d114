"""Journal → MLflow, exactly once per (metric, step), across restarts, resumes, crashes and dead servers.

The journal is the source of truth; MLflow is a view of it. Each trail's cursor (harness.tracking.cursor) holds per
tracking URI the run id, the last step known to be in MLflow, and an *in-flight* range written just before a
batch is sent. A crash (or a timeout whose outcome is unknown) between the batch and the cursor update leaves the range
marked; the next sync reads that range's history back from MLflow and logs only what is missing. Resume truncates the
journal to its checkpoint and recomputes the same steps: steps at or below the cursor are never sent again. Batches
hold whole steps and at most the writer's limit of values (harness.tracking.writer: 1000 for log_batch, MLflow's
limit per call; more for a database store, whose batch is one transaction).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from harness.errors import HarnessError
from harness.store.journal import iter_records
from harness.store.sweepdir import read_sweep_meta, trail_dirs
from harness.tracking.client import make_client, retry_locked, unreachable
from harness.tracking.cursor import read_cursor, sync_lock, write_cursor
from harness.tracking.run import check_run, ensure_run, run_is_gone, sync_cell, sync_params, sync_status
from harness.tracking.target import Target, tracking_config, trail_target
from harness.tracking.writer import LOG_BATCH_LIMIT, metric_writer

log = logging.getLogger("harness.tracking")

NON_METRIC_KEYS = ("step", "time")

Step = Tuple[int, int, Dict[str, float]]  # (step, timestamp in ms, metric values)


@dataclass
class SyncResult:
    run_dir: Path
    run_id: Optional[str] = None
    logged: int = 0                 # metric values sent by this call
    synced_step: int = -1
    status: str = ""
    error: Optional[str] = None


def _metrics(record: Dict[str, Any]) -> Dict[str, float]:
    """A record's numeric values as floats (a text value is no metric)."""
    out: Dict[str, float] = {}
    for key, value in record.items():
        if type(value) is float:  # the common case, without a conversion
            out[key] = value
        elif isinstance(value, (int, float)):  # bool is an int
            out[key] = float(value)
    for key in NON_METRIC_KEYS:
        out.pop(key, None)
    return out


def pending_steps(run_dir: Path, after: int) -> List[Step]:
    """(step, timestamp ms, metrics) of journal records past the cursor, in order, one per step."""
    out: List[Step] = []
    seen: Set[int] = set()
    now_ms = int(time.time() * 1000)
    for record in iter_records(run_dir, after=after):
        step = int(record["step"])
        if step <= after or step in seen:
            continue
        seen.add(step)
        ts = record.get("time")
        ts_ms = int(float(ts) * 1000) if isinstance(ts, (int, float)) and math.isfinite(ts) else now_ms
        out.append((step, ts_ms, _metrics(record)))
    return out


def step_batches(steps: List[Step], limit: int = LOG_BATCH_LIMIT) -> Iterator[List[Step]]:
    """Whole steps per batch, at most `limit` metric values each (a step larger than the limit is split alone)."""
    batch: List[Step] = []
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
        for m in retry_locked(partial(client.get_metric_history, run_id, key)):
            top = max(top, int(m.step))
            if lo <= m.step <= hi:
                found.add((key, int(m.step)))
    return found, top


def sync_metrics(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> int:
    """Send the journal's steps past the cursor; returns how many metric values were sent."""
    run_id = cursor["run_id"]
    steps = pending_steps(run_dir, int(cursor.get("synced_step", -1)))
    already: Set[Tuple[str, int]] = set()
    if cursor.get("inflight") and steps:
        lo, hi = cursor["inflight"]
        keys = {k for s, _, m in steps if lo <= s <= hi for k in m}
        already, top = logged_pairs(client, run_id, keys, lo, hi)
        cursor["inflight"] = [lo, min(hi, max(top, lo))]  # nothing beyond `top` can be a duplicate
    writer = metric_writer(client, target.uri)
    logged = 0
    for batch in step_batches(steps, writer.batch_limit):
        values = [(key, value, ts, step) for step, ts, metrics in batch for key, value in metrics.items()
                  if (key, step) not in already]
        first, last = batch[0][0], batch[-1][0]
        if values:
            # Mark the range before sending: if we never hear back, the next sync verifies it against MLflow.
            lo, hi = cursor.get("inflight") or (first, last)
            cursor["inflight"] = [min(lo, first), max(hi, last)]
            write_cursor(run_dir, target.uri, cursor)
            writer.write(run_id, values)
            logged += len(values)
        cursor["synced_step"] = last
        if cursor.get("inflight") and last >= cursor["inflight"][1]:
            cursor["inflight"] = None
        write_cursor(run_dir, target.uri, cursor)
    return logged


def sync_trail(run_dir: Path | str, uri: Optional[str] = None, client: Any = None,
               tracking: Any = None) -> SyncResult:
    """Bring MLflow up to date with one trail's journal and status; raises when MLflow cannot be reached."""
    run_dir = Path(run_dir)
    target = trail_target(run_dir, uri, tracking)
    result = SyncResult(run_dir)
    with sync_lock(run_dir):
        client = client or make_client(target.uri, target.timeout_s, target.retries)
        for attempt in (1, 2):
            cursor = read_cursor(run_dir, target.uri)
            try:
                result.run_id = ensure_run(client, run_dir, target, cursor)
                if not cursor.get("params"):
                    sync_params(client, run_dir, target, cursor)
                if not cursor.get("cell"):
                    sync_cell(client, run_dir, target, cursor)
                check_run(client, run_dir, target, cursor)
                result.logged = sync_metrics(client, run_dir, target, cursor)
                result.status = sync_status(client, run_dir, target, cursor)
                break
            except Exception as exc:  # noqa: BLE001 - only a vanished run is handled here
                if attempt == 2 or not cursor.get("run_id") or not run_is_gone(client, cursor["run_id"], exc):
                    raise
                # The store was wiped or the run deleted: the journal is the truth, so log it again from scratch.
                log.warning("MLflow run %s of %s is gone; recreating it from the journal", cursor["run_id"], run_dir)
                write_cursor(run_dir, target.uri, {})
        result.synced_step = int(cursor.get("synced_step", -1))
    return result


def sync_sweep(sweep_dir: Path | str, uri: Optional[str] = None,
               deadline: Optional[float] = None) -> List[SyncResult]:
    """Sync every trail of a sweep (its summary run first); one trail's failure does not stop the others, but a
    server found unreachable is not asked again for each trail, and trails not reached by `deadline`
    (time.monotonic()) are left, with the reason, for the next sync."""
    from harness.tracking.sweep_run import ensure_sweep_run

    sweep_dir = Path(sweep_dir)
    dirs = trail_dirs(sweep_dir)
    if dirs:
        ensure_sweep_run(sweep_dir, tracking_config(dirs[0]), uri=uri or read_sweep_meta(sweep_dir).get("mlflow_uri"),
                         primary=uri is None)
    results = []
    skip = ""
    for run_dir in dirs:
        if not skip and deadline is not None and time.monotonic() > deadline:
            skip = "not tried: MLflow's deadline for this sweep passed"
        if skip:
            results.append(SyncResult(run_dir, error=skip))
            continue
        try:
            results.append(sync_trail(run_dir, uri=uri))
        except Exception as exc:  # noqa: BLE001 - reported per trail; the next sync retries
            log.warning("sync of %s failed: %s", run_dir, exc)
            results.append(SyncResult(run_dir, error=f"{type(exc).__name__}: {exc}"))
            if unreachable(exc):
                skip = f"not tried: the server was unreachable for {run_dir.name}"
            elif isinstance(exc, HarnessError):  # a store MLflow cannot use: the same for every trail
                skip = f"not tried: {exc}"
    return results
