"""MLflow stores holding a synthetic sweep as tracking writes it: for the report's MLflow tests and the scale benchmark.

Why a template: migrating a fresh sqlite store takes seconds, so one is kept per MLflow version and copied (a copy of
a fresh store is a fresh store; tracking_support builds it). Metrics go in through MLflow's own batch API (log_batch,
1000 values a call), so the store holds exactly what MLflow writes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional

from harness.store.journal import read_records
from harness.store.rundir import read_status
from harness.store.sweepdir import read_sweep_meta, read_trail_meta, trail_dirs

BATCH = 1000  # MLflow's limit of metrics per log_batch


def empty_store(db: Path) -> str:
    """A migrated, empty sqlite store at `db` (a copy of tracking_support's template); returns its URI."""
    from tracking_support import template_db

    shutil.copyfile(template_db(Path(os.environ.get("HARNESS_CACHE_DIR", tempfile.gettempdir()))), db)
    return f"sqlite:///{db}"


def _metrics(run_dir: Path) -> Iterator[tuple[str, float, int, int]]:
    for rec in read_records(run_dir):
        for key, value in rec.items():
            if key not in ("step", "time"):
                yield key, float(value), int(round(rec["time"] * 1000)), int(rec["step"])


def fill_store(sweep_dir: Path, uri: str, experiment: str, skip: Optional[List[Path]] = None,
               neighbours: bool = True) -> int:
    """What tracking writes into the sweep's experiment: one run per trail (run name led by the algorithm, the trail
    name as a tag, axes as params, harness.* tags with the sweep's own id, no failure reason, created after the
    trail started), metrics via log_batch, and the sweep's summary run (sweep tag, but no trail); with `neighbours`,
    another sweep's experiment beside it. Trails in `skip` never reached MLflow. Returns the number of metric values
    logged."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    sweep, sweep_id = sweep_dir.name, read_sweep_meta(sweep_dir)["sweep_id"]
    exp_id = client.create_experiment(f"{experiment}/{sweep}")
    client.create_run(exp_id, run_name=f"{sweep} · summary", tags={"harness.sweep": sweep, "harness.kind": "summary"})
    if neighbours:
        other_exp = client.create_experiment(f"{experiment}/another-sweep")
        other = client.create_run(other_exp, run_name="grpo · stale 1 · seed 1",
                                  tags={"harness.sweep": "another-sweep", "harness.trail_id": "x"})
        client.log_batch(other.info.run_id, metrics=[Metric("eval/reward", 0.0, 1, 1)])
    logged = 0
    for run_dir in trail_dirs(sweep_dir):
        if run_dir in (skip or []):
            continue
        meta, status = read_trail_meta(run_dir), read_status(run_dir)
        tags = {"harness.sweep": sweep, "harness.sweep_id": sweep_id, "harness.trail_id": meta["id"],
                "harness.status": status["state"], "harness.trail": meta["name"], "harness.kind": "trail"}
        # tracking creates the run when it first reaches the trail, after the trail's start-up
        late = int((status["started"] + 7.0) * 1000)
        run = client.create_run(exp_id, run_name=" · ".join(meta["name"].split()[::-1]), start_time=late, tags=tags)
        run_id = run.info.run_id
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in meta["axes"].items()])
        metrics = [Metric(*m) for m in _metrics(run_dir)]
        for i in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + BATCH])
        logged += len(metrics)
        if status.get("ended"):
            client.set_terminated(run_id, "FINISHED", end_time=int(status["ended"] * 1000))
    return logged
