"""A trail's MLflow run over its life: found or created once in its sweep's experiment, params logged once, and its
status and end following status.json. Trails are top-level runs (no parent), so MLflow's default runs view lists
every trail of the sweep as a row.

Each step records what it did in the trail's cursor before returning, so a syncer that dies between two steps
repeats nothing but the step it was in (and each of these is idempotent in MLflow).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Dict, Optional

from harness.store.rundir import RunDir, Tag
from harness.store.states import TERMINAL, TrailState
from harness.tracking.client import RUN_STATUS, get_experiment_id, retry_locked
from harness.tracking.cursor import write_cursor
from harness.tracking.metadata import CELL_TAG, sweep_summary, trail_params, trail_run_name, trail_tags
from harness.tracking.target import Target

MAX_PARAMS_PER_BATCH = 100  # MLflow's limit of params per log_batch
UNKNOWN_HISTORY = [-1, 2**62]  # an in-flight range covering every step: verify it all against MLflow


def find_run(client: Any, experiment_id: str, tags: Dict[str, str]) -> Optional[str]:
    """A run created earlier for this trail whose id never reached the cursor (crash right after create_run)."""
    flt = f"tags.`{Tag.TRAIL_ID}` = '{tags[Tag.TRAIL_ID]}' and tags.`{Tag.SWEEP}` = '{tags[Tag.SWEEP]}'"
    if tags.get(Tag.SWEEP_ID):  # a deleted sweep's or another sweep's run of the same name is never this trail's
        flt += f" and tags.`{Tag.SWEEP_ID}` = '{tags[Tag.SWEEP_ID]}'"
    runs = retry_locked(lambda: client.search_runs([experiment_id], filter_string=flt, max_results=5,
                                                   order_by=["attributes.start_time ASC"]))
    return runs[0].info.run_id if runs else None


def ensure_run(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> str:
    """The trail's run id in this store: from the cursor, found by its tags, or created now."""
    if cursor.get("run_id") and cursor.get("experiment") == target.experiment:
        tags = trail_tags(run_dir)
        # a run made before sweeps had ids, or before trail ids had 16 digits: it gets today's identity tags
        for key, field in ((Tag.SWEEP_ID, "sweep_id"), (Tag.TRAIL_ID, "trail_id")):
            if tags[key] and cursor.get(field) != tags[key]:
                retry_locked(partial(client.set_tag, cursor["run_id"], key, tags[key]))
                cursor[field] = tags[key]
                write_cursor(run_dir, target.uri, cursor)
        return str(cursor["run_id"])
    if cursor.get("run_id"):
        # Its run lives in another experiment (one shared by all sweeps, before each sweep had its own): the journal
        # is the truth, so the trail is logged again, once, into its sweep's experiment.
        cursor.clear()
    experiment_id = get_experiment_id(client, target.experiment, target.uri)
    tags = trail_tags(run_dir)
    run_id = find_run(client, experiment_id, tags)
    if run_id is not None:
        # Its cursor was lost: treat all of its history as unknown and verify it before logging.
        cursor.update(inflight=list(UNKNOWN_HISTORY))
    else:
        status = RunDir(run_dir).status()
        tags[Tag.STATUS] = status.state.value
        # the trail's own start, not the sync's: MLflow's Duration column is end − start
        start_ms = int(status.started * 1000) if status.started else None
        name = trail_run_name(run_dir)
        run = retry_locked(lambda: client.create_run(experiment_id, start_time=start_ms, run_name=name, tags=tags))
        run_id = run.info.run_id
        cursor["status"] = None  # a new run is RUNNING whatever the trail's state: sync_status settles it
        cursor["cell"] = True  # its tags hold its cell
    cursor["summary"] = sweep_summary(run_dir, target.uri)
    cursor.update(run_id=run_id, experiment_id=experiment_id, experiment=target.experiment,
                  synced_step=cursor.get("synced_step", -1), sweep_id=tags[Tag.SWEEP_ID],
                  trail_id=tags[Tag.TRAIL_ID])
    write_cursor(run_dir, target.uri, cursor)
    return str(run_id)


def sync_params(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> None:
    """Log the trail's params once (MLflow refuses a param changed later, so they are never sent twice)."""
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in sorted(trail_params(run_dir).items())]
    for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
        chunk = params[i:i + MAX_PARAMS_PER_BATCH]
        retry_locked(partial(client.log_batch, cursor["run_id"], params=chunk, synchronous=True))
    cursor["params"] = True
    write_cursor(run_dir, target.uri, cursor)


def sync_cell(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> None:
    """Tag the run with its cell once (a run made before runs carried it, or found again after its cursor was lost):
    the sweep's MLflow view groups runs by that tag."""
    retry_locked(lambda: client.set_tag(cursor["run_id"], CELL_TAG, trail_run_name(run_dir, with_seed=False)))
    cursor["cell"] = True
    write_cursor(run_dir, target.uri, cursor)


def check_run(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> None:
    """When the sweep's summary run has changed since the trail's run was made (a wiped store gets a new one), read
    the trail's run back: a gone run raises here, and the sync logs the trail anew from its journal."""
    summary = sweep_summary(run_dir, target.uri)
    if summary and cursor.get("summary") != summary:
        retry_locked(lambda: client.get_run(cursor["run_id"]))
        cursor["summary"] = summary
        write_cursor(run_dir, target.uri, cursor)


def sync_status(client: Any, run_dir: Path, target: Target, cursor: Dict[str, Any]) -> str:
    """harness.status tag and the run's lifecycle follow status.json; terminal states end the run. harness.node says
    where the trail ran (the Ray node, the Slurm node, else the host: the runner records it in status.json)."""
    status = RunDir(run_dir).status()
    state = status.state.value
    if state == cursor.get("status"):
        return state
    run_id = cursor["run_id"]
    retry_locked(lambda: client.set_tag(run_id, Tag.STATUS, state))
    node = status.node
    if node and node != cursor.get("node"):
        retry_locked(lambda: client.set_tag(run_id, Tag.NODE, str(node)))
        cursor["node"] = node
    if status.state.terminal:
        end_ms = int(status.ended * 1000) if status.ended else None
        retry_locked(lambda: client.set_terminated(run_id, status=RUN_STATUS[state], end_time=end_ms))
    elif status.state == TrailState.RUNNING and cursor.get("status") in TERMINAL:
        retry_locked(lambda: client.update_run(run_id, status="RUNNING"))  # a resumed trail
    cursor["status"] = state
    write_cursor(run_dir, target.uri, cursor)
    return state


def run_is_gone(client: Any, run_id: str, exc: BaseException) -> bool:
    """Whether `exc` means the run no longer exists (a wiped store, a deleted run)."""
    if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")) and "not found" not in str(exc).lower():
        return False
    try:
        return bool(client.get_run(run_id).info.lifecycle_stage == "deleted")
    except Exception as again:  # noqa: BLE001
        return "RESOURCE_DOES_NOT_EXIST" in str(getattr(again, "error_code", ""))
