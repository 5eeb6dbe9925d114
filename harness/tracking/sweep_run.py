"""The sweep's summary run: one run (tag harness.kind=summary) beside the trails in the sweep's own experiment,
holding what belongs to the sweep rather than to a trail — its description, status, and at the end the report
(REPORT.md, plots, CSVs) as artifacts. Trails are not nested under it: a parent run folds them into one collapsed
row of MLflow's runs view. Its id and the resolved tracking URI go into sweep.json, so every trail — wherever a
backend starts it — syncs to the same store. Tracking is never allowed to stop a sweep: failures warn and return.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Any, Optional

from harness.errors import HarnessError
from harness.store.rundir import Tag
from harness.store.safe_files import open_regular
from harness.store.states import TrailState
from harness.store.sweepdir import is_original, read_sweep_meta, write_sweep_meta
from harness.tracking.client import RUN_STATUS, code_version, get_experiment_id, make_client, resolve_uri, retry_locked
from harness.tracking.config import sweep_experiment
from harness.tracking.view import set_view, view_path

SUMMARY = "summary"
REPORT_ARTIFACTS = ("*.md", "*.png", "*.csv")

log = logging.getLogger("harness.tracking")


def _warn(sweep_dir: Path, message: str) -> None:
    log.warning(message)
    try:
        with open_regular(Path(sweep_dir) / "tracking.log", "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
    except (OSError, HarnessError):
        pass


def _find_summary(client: Any, experiment_id: str, sweep: str, sweep_id: str) -> Optional[str]:
    flt = f"tags.`{Tag.SWEEP}` = '{sweep}' and tags.`{Tag.KIND}` = '{SUMMARY}'"
    if sweep_id:  # the summary run of a deleted sweep of the same name is not this sweep's
        flt += f" and tags.`{Tag.SWEEP_ID}` = '{sweep_id}'"
    runs = retry_locked(lambda: client.search_runs([experiment_id], filter_string=flt, max_results=1,
                                                   order_by=["attributes.start_time ASC"]))
    return runs[0].info.run_id if runs else None


def _exists(client: Any, run_id: str) -> bool:
    try:
        return retry_locked(lambda: client.get_run(run_id)).info.lifecycle_stage != "deleted"
    except Exception as exc:  # noqa: BLE001
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")):
            return False
        raise


def ensure_sweep_run(sweep_dir: Path | str, tracking_cfg: Any, uri: Optional[str] = None,
                     primary: bool = True) -> Optional[str]:
    """Create or reuse the sweep's summary run and record it in sweep.json; None when tracking is off or down.

    `primary`: this store becomes the one the sweep's trails sync to live (False for a one-off `sync --uri`)."""
    sweep_dir = Path(sweep_dir)
    if tracking_cfg is None or not tracking_cfg.enabled:
        return None
    target = resolve_uri(uri or tracking_cfg.uri)
    meta = read_sweep_meta(sweep_dir)
    name = meta.get("name") or sweep_dir.name
    try:
        client = make_client(target, float(tracking_cfg.http_timeout_s), int(tracking_cfg.http_retries))
        experiment_id = get_experiment_id(client, sweep_experiment(tracking_cfg.experiment, name), target)
        summaries = dict(meta.get("mlflow_summaries") or {})
        run_id = summaries.get(target)
        if run_id is not None and not _exists(client, run_id):
            run_id = None  # the store was wiped or the run deleted
        sweep_id = str(meta.get("sweep_id") or "")
        run_id = run_id or _find_summary(client, experiment_id, name, sweep_id)
        if run_id is None:
            tags = {Tag.SWEEP: name, Tag.SWEEP_ID: sweep_id, Tag.KIND: SUMMARY, Tag.STATUS: TrailState.RUNNING.value,
                    Tag.CODE_VERSION: code_version()}
            if meta.get("description"):
                tags["mlflow.note.content"] = str(meta["description"])
            run = retry_locked(lambda: client.create_run(experiment_id, run_name=f"{name} · summary", tags=tags))
            run_id = run.info.run_id
        elif retry_locked(lambda: client.get_run(run_id)).info.status != "RUNNING":
            retry_locked(lambda: client.update_run(run_id, status="RUNNING"))  # the sweep was launched again
            retry_locked(lambda: client.set_tag(run_id, Tag.STATUS, TrailState.RUNNING.value))
        retry_locked(lambda: set_view(client, experiment_id))  # every launch and sync: a sweep gets today's view
        summaries[target] = run_id
        if primary or not meta.get("mlflow_uri"):
            write_sweep_meta(sweep_dir, mlflow_uri=target, mlflow_summary_run_id=run_id,
                             mlflow_experiment_id=experiment_id, mlflow_summaries=summaries,
                             mlflow_view=view_path(experiment_id))
        else:
            write_sweep_meta(sweep_dir, mlflow_summaries=summaries)
        return run_id
    except Exception as exc:  # noqa: BLE001 - tracking down must not stop a sweep
        _warn(sweep_dir, f"MLflow at {target} unavailable, sweep runs without its summary run for now "
                         f"(`harness sync {name}` catches up): {type(exc).__name__}: {exc}")
        return None


def _summary_of(sweep_dir: Path, uri: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """(store, summary run id) of the sweep: in `uri`, else in the store its trails sync to."""
    meta = read_sweep_meta(sweep_dir)
    target = resolve_uri(uri) if uri else meta.get("mlflow_uri")
    return target, ((meta.get("mlflow_summaries") or {}).get(target) if target else None)


COPY_NOT_ATTACHED = ("{sweep_dir} is a copy of the sweep's directory, not the sweep itself: its report is not "
                     "attached to the sweep's MLflow summary run (a report of the sweep's own directory replaces that "
                     "one)")


def attach_report(sweep_dir: Path | str, report_dir: Path | str, uri: Optional[str] = None) -> int:
    """Attach the report's REPORT.md, plots and CSVs to the summary run (under `report/`); how many files were."""
    sweep_dir, report_dir = Path(sweep_dir), Path(report_dir)
    if not is_original(sweep_dir):
        _warn(sweep_dir, COPY_NOT_ATTACHED.format(sweep_dir=sweep_dir))
        return 0
    target, run_id = _summary_of(sweep_dir, uri)
    files = sorted({f for pattern in REPORT_ARTIFACTS for f in report_dir.glob(pattern) if f.is_file()})
    if not target or not run_id or not files:
        return 0
    try:
        client = make_client(target)
        for path in files:
            retry_locked(partial(client.log_artifact, run_id, str(path), artifact_path="report"))
        return len(files)
    except Exception as exc:  # noqa: BLE001
        _warn(sweep_dir, f"could not attach the report to the sweep's MLflow run {run_id}: {type(exc).__name__}: "
                         f"{exc}")
        return 0


def finish_sweep_run(sweep_dir: Path | str, status: str, uri: Optional[str] = None) -> bool:
    """End the summary run: `status` is a harness state (done/failed/cancelled/...) or an MLflow run status."""
    sweep_dir = Path(sweep_dir)
    target, run_id = _summary_of(sweep_dir, uri)
    if not target or not run_id:
        return False
    mlflow_status = RUN_STATUS.get(status, status.upper())
    try:
        client = make_client(target)
        retry_locked(lambda: client.set_tag(run_id, Tag.STATUS, status.lower()))
        if mlflow_status == "RUNNING":
            retry_locked(lambda: client.update_run(run_id, status="RUNNING"))
        else:
            retry_locked(lambda: client.set_terminated(run_id, status=mlflow_status))
        return True
    except Exception as exc:  # noqa: BLE001
        _warn(sweep_dir, f"could not end the sweep's MLflow run {run_id}: {type(exc).__name__}: {exc}")
        return False
