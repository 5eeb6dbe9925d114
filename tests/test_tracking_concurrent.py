"""Six trails, six processes, one sqlite store, all live-syncing at once: sqlite's writer lock must cost nothing.

The processes are forked from the test (mlflow already imported) so the test costs seconds, not six mlflow imports;
the test process itself opens the store only after they finish, so no database connection crosses a fork.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from tracking_support import append_steps, assert_exactly_once, cache_dir_of, fresh_store, make_sweep, run_id_of

from harness.store.rundir import write_status
from harness.tracking.config import TrackingConfig
from harness.tracking.live import LiveSync
from harness.tracking.sweep_run import ensure_sweep_run

STEPS = 80


def _make_summary(sweep_dir: Path, store: str) -> None:
    raise SystemExit(0 if ensure_sweep_run(sweep_dir, TrackingConfig(uri=store)) else 1)


def _trail(run_dir: Path, store: str, seed: int) -> None:
    write_status(run_dir, "running")
    live = LiveSync(run_dir, TrackingConfig(uri=store, sync_every_s=0.1, stop_timeout_s=180,
                                           live_mode="thread"))
    live.start()
    for step in range(1, STEPS + 1):
        append_steps(run_dir, [step], seed=seed)
        if step % 10 == 0:
            time.sleep(0.05)
    write_status(run_dir, "done", ended=time.time())
    live.stop()
    raise SystemExit(0 if live.errors == 0 and live.ticks > 1 else 2)


def test_six_processes_syncing_to_one_sqlite_store_lose_nothing(tmp_path, request):
    import mlflow.entities  # noqa: F401 - imported once here, inherited by the forked trails
    from mlflow.tracking import MlflowClient

    store = fresh_store(cache_dir_of(request), tmp_path / "store")
    names = [f"t{i}" for i in range(6)]
    sweep_dir = make_sweep(tmp_path / "runs", trails=names)
    ctx = multiprocessing.get_context("fork")
    parent = ctx.Process(target=_make_summary, args=(sweep_dir, store))
    parent.start()
    parent.join(120)
    assert parent.exitcode == 0
    procs = [ctx.Process(target=_trail, args=(sweep_dir / n, store, i)) for i, n in enumerate(names)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0] * 6, "a trail saw a sync error or never synced live"

    client = MlflowClient(tracking_uri=store)
    summary_id = (sweep_dir / "sweep.json").read_text().split('"mlflow_summary_run_id": "')[1].split('"')[0]
    experiment_id = client.get_run(summary_id).info.experiment_id
    for i, name in enumerate(names):
        run_id = run_id_of(sweep_dir / name, store)
        assert_exactly_once(client, run_id, STEPS, seed=i)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.info.experiment_id == experiment_id
