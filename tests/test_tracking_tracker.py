"""The sweep's tracker: one process follows every trail of a sweep, logs each metric exactly once while the trails
run, survives being killed and started again, keeps a crashed trail's journaled metrics, and ends the summary run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tiny_trail import ENGINE
from tracking_support import append_steps, assert_exactly_once, cache_dir_of, fresh_store, make_sweep, run_id_of

from harness.backends.runner import _default_live_sync
from harness.store.locks import FileLock
from harness.store.rundir import record_outcome
from harness.store.states import TrailState
from harness.tracking.config import TrackingConfig
from harness.tracking.live import LiveSync
from harness.tracking.sweep_tracking import SweepTracking
from harness.tracking.tracker import TRACKER_LOCK, Tracker, follow


@pytest.fixture
def store(tmp_path, request) -> str:
    return fresh_store(cache_dir_of(request), tmp_path / "store")


def _run_trail(run_dir: Path, steps: range, seed: int, end: TrailState, pause_s: float = 0.03) -> None:
    """A stand-in trail: running, one journal record per step, then its outcome (as runner and backend record)."""
    record_outcome(run_dir, TrailState.RUNNING, "", host="elsewhere", pid=0)
    for step in steps:
        append_steps(run_dir, [step], seed=seed)
        time.sleep(pause_s)
    record_outcome(run_dir, end, "worker killed by signal 9" if end == TrailState.FAILED else "")


@pytest.mark.e2e
def test_one_tracker_logs_several_trails_exactly_once_while_they_run(tmp_path, store):
    from mlflow.tracking import MlflowClient

    names = ["a", "b", "c", "d"]
    sweep_dir = make_sweep(tmp_path / "runs", trails=names)
    tracker = Tracker(sweep_dir, TrackingConfig(uri=store, sync_every_s=0.1, stop_timeout_s=5))
    tracker.client()  # the store's start-up, before the trails
    stop = threading.Event()
    follower = threading.Thread(target=follow, args=(tracker, stop))
    follower.start()
    # "c" crashes at step 25: what it journaled before dying must reach MLflow all the same
    ends = {"a": (60, TrailState.DONE), "b": (45, TrailState.DONE), "c": (25, TrailState.FAILED),
            "d": (60, TrailState.DIVERGED)}
    trails = [threading.Thread(target=_run_trail, args=(sweep_dir / n, range(1, ends[n][0] + 1), i, ends[n][1]))
              for i, n in enumerate(names)]
    for t in trails:
        t.start()
    for t in trails:
        t.join(120)
    time.sleep(0.5)
    mid_syncs = tracker.syncs
    stop.set()
    follower.join(120)

    assert mid_syncs > len(names), "the tracker did not sync while the trails ran"
    assert tracker.errors == 0
    client = MlflowClient(tracking_uri=store)
    for i, name in enumerate(names):
        run = client.get_run(run_id_of(sweep_dir / name, store))
        assert_exactly_once(client, run.info.run_id, ends[name][0], seed=i)
        assert run.data.tags["harness.status"] == ends[name][1].value
        assert run.info.status == ends[name][1].mlflow_status
    syncs = tracker.syncs
    assert tracker.tick() == 0 and tracker.syncs == syncs  # nothing changed since the final pass: nothing sent


def test_a_tracker_started_on_a_synced_sweep_sends_nothing_again(tmp_path, store):
    sweep_dir = make_sweep(tmp_path / "runs", trails=["a", "b"])
    for i, name in enumerate("ab"):
        _run_trail(sweep_dir / name, range(1, 21), i, TrailState.DONE, pause_s=0)
    first = Tracker(sweep_dir, TrackingConfig(uri=store))
    assert first.tick() == 0 and first.syncs == 2
    again = Tracker(sweep_dir, TrackingConfig(uri=store))
    assert again.tick() == 0 and again.syncs == 0  # settled trails are not even read past their cursors


@pytest.mark.e2e
def test_the_tracker_killed_mid_sweep_is_started_again_and_loses_or_repeats_nothing(tmp_path, store):
    from mlflow.tracking import MlflowClient

    names = ["a", "b", "c"]
    sweep_dir = make_sweep(tmp_path / "runs", trails=names)
    cfg = TrackingConfig(uri=store, sync_every_s=0.05, stop_timeout_s=10)
    tracking = SweepTracking(OmegaConf.structured(cfg), sweep_dir, same_host=True)
    tracking.start()
    first = tracking.tracker_pid
    assert first is not None
    for name in names:
        record_outcome(sweep_dir / name, TrailState.RUNNING, "", host="elsewhere", pid=0)
    for step in range(1, 121):
        for i, name in enumerate(names):
            append_steps(sweep_dir / name, [step], seed=i)
        if step in (40, 80):  # twice, at whatever point of a sync it happens to be
            os.kill(tracking.tracker_pid, signal.SIGKILL)
            deadline = time.monotonic() + 120
            while tracking.tracker_pid in (None, first) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert tracking.tracker_pid not in (None, first), "the tracker was not started again"
            first = tracking.tracker_pid
        time.sleep(0.005)
    for name in names:
        record_outcome(sweep_dir / name, TrailState.DONE)
    report = tmp_path / "the report"  # a space in the path: the pipe's `report` line keeps it whole
    report.mkdir()
    (report / "REPORT.md").write_text("# demo")
    tracking.finish(TrailState.DONE.value, report)

    assert tracking.restarts == 2
    client = MlflowClient(tracking_uri=store)
    for i, name in enumerate(names):
        run = client.get_run(run_id_of(sweep_dir / name, store))
        assert_exactly_once(client, run.info.run_id, 120, seed=i)
        assert run.info.status == "FINISHED"
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    summary = client.get_run(meta["mlflow_summary_run_id"])
    assert summary.info.status == "FINISHED" and summary.data.tags["harness.status"] == "done"
    assert [f.path for f in client.list_artifacts(summary.info.run_id, "report")] == ["report/REPORT.md"]
    assert "following 3 trails" in (sweep_dir / "tracking.log").read_text()


@pytest.mark.parametrize("live,tracker_running,syncs_itself", [
    ("sweep", True, False), ("sweep", False, True), ("trail", True, True), ("off", False, False)])
def test_a_trail_syncs_itself_only_when_no_sweep_tracker_follows_it(tmp_path, live, tracker_running, syncs_itself):
    run_dir = make_sweep(tmp_path / "runs") / "t1"
    cfg = OmegaConf.create({"tracking": {"enabled": True, "uri": "sqlite:///x.db", "live": live}})
    lock = FileLock(run_dir.parent / TRACKER_LOCK)
    if tracker_running:
        lock.acquire()
    try:
        sync = _default_live_sync(cfg, run_dir)
    finally:
        lock.release()
    assert isinstance(sync, LiveSync) if syncs_itself else sync is None


def test_no_tracker_for_backends_whose_trails_run_elsewhere(tmp_path):
    sweep_dir = make_sweep(tmp_path / "runs")
    tracking = SweepTracking(TrackingConfig(uri="sqlite:///x.db", enabled=False), sweep_dir, same_host=True)
    assert not tracking.use_tracker
    assert not SweepTracking(TrackingConfig(), sweep_dir, same_host=False).use_tracker
    assert not SweepTracking(TrackingConfig(live="trail"), sweep_dir, same_host=True).use_tracker
    assert SweepTracking(TrackingConfig(), sweep_dir, same_host=True).use_tracker


@pytest.mark.e2e
def test_a_sweep_on_the_local_backend_is_tracked_by_one_process(tmp_path, store, monkeypatch):
    from mlflow.tracking import MlflowClient

    from harness.cli import main
    from harness.store.journal import read_records
    from harness.store.sweepdir import trail_dirs

    monkeypatch.chdir(tmp_path)
    rc = main(["sweep", "stale=0,2", *ENGINE, "backend.max_parallel=1", f"tracking.uri={store}",
               "tracking.sync_every_s=0.2", "--name", "two", "--root", str(tmp_path / "runs"), "--no-report"])
    assert rc == 0
    sweep_dir = tmp_path / "runs" / "two"
    client = MlflowClient(tracking_uri=store)
    for run_dir in trail_dirs(sweep_dir):
        run = client.get_run(run_id_of(run_dir, store))
        assert run.info.status == "FINISHED" and run.data.tags["harness.status"] == "done"
        for record in read_records(run_dir):
            for key, value in record.items():
                if key in ("step", "time"):
                    continue
                got = [m for m in client.get_metric_history(run.info.run_id, key) if m.step == record["step"]]
                assert len(got) == 1 and got[0].value == pytest.approx(value), (key, record["step"])
        assert "[tracking]" not in (run_dir / "log.txt").read_text()
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert client.get_run(meta["mlflow_summary_run_id"]).info.status == "FINISHED"
    assert "following 2 trails" in (sweep_dir / "tracking.log").read_text()
