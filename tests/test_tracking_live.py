"""LiveSync inside a trail: pushes while training runs, never raises or slows the loop when MLflow is unreachable,
and a later `sync` catches up exactly once."""

from __future__ import annotations

import time

import pytest
from tracking_support import (
    append_steps,
    assert_exactly_once,
    cache_dir_of,
    closed_port_uri,
    fresh_store,
    make_sweep,
    read_log,
    run_id_of,
)

from harness.store.rundir import write_status
from harness.tracking.config import TrackingConfig
from harness.tracking.live import LiveSync
from harness.tracking.sync import sync_trail


@pytest.fixture
def store(tmp_path, request) -> str:
    return fresh_store(cache_dir_of(request), tmp_path / "store")


def _train(run_dir, steps, step_s: float) -> float:
    """A stand-in training loop: busy CPU for step_s, then one journal record per step. Returns its wall time."""
    started = time.perf_counter()
    for step in steps:
        until = time.perf_counter() + step_s
        while time.perf_counter() < until:
            pass
        append_steps(run_dir, [step])
    return time.perf_counter() - started


def test_live_sync_pushes_while_the_trail_runs_and_finishes_on_stop(tmp_path, store):
    from mlflow.tracking import MlflowClient

    run_dir = make_sweep(tmp_path / "runs") / "t1"
    write_status(run_dir, "running")
    live = LiveSync(run_dir, TrackingConfig(uri=store, sync_every_s=0.2, live_mode="thread"))
    live.start()
    _train(run_dir, range(1, 41), 0.005)
    deadline = time.monotonic() + 30
    while run_id_of(run_dir, store) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    client = MlflowClient(tracking_uri=store)
    time.sleep(1.0)
    mid = len(client.get_metric_history(run_id_of(run_dir, store), "train/loss"))
    assert mid > 0, "nothing reached MLflow while the trail was running"
    _train(run_dir, range(41, 61), 0.001)
    write_status(run_dir, "done", ended=time.time())  # the runner writes the final state before stop()
    live.stop()
    run = client.get_run(run_id_of(run_dir, store))
    assert_exactly_once(client, run.info.run_id, 60)
    assert run.info.status == "FINISHED" and run.data.tags["harness.status"] == "done"
    assert live.errors == 0 and "[tracking]" not in read_log(run_dir)


@pytest.mark.e2e
def test_unreachable_mlflow_never_stops_or_slows_training_and_sync_catches_up(tmp_path, store):
    from mlflow.tracking import MlflowClient

    run_dir = make_sweep(tmp_path / "runs") / "t1"
    steps, step_s = range(1, 51), 0.02
    baseline = _train(tmp_path / "baseline", steps, step_s)

    dead = closed_port_uri()
    live = LiveSync(run_dir, TrackingConfig(uri=dead, sync_every_s=0.05, http_timeout_s=2, http_retries=0,
                                                live_mode="thread"))
    live.start()
    with_dead_sync = _train(run_dir, steps, step_s)
    write_status(run_dir, "done", ended=time.time())
    stopping = time.monotonic()
    live.stop()

    assert time.monotonic() - stopping < 15
    assert with_dead_sync < baseline * 1.5 + 0.5, (baseline, with_dead_sync)
    assert live.errors >= 2
    log = read_log(run_dir)
    assert log.count("[tracking] MLflow sync") == 1 and "failed" in log  # logged once, not once per tick

    result = sync_trail(run_dir, uri=store)  # later: `harness sync` against a live store
    assert result.logged > 0 and result.status == "done"
    assert_exactly_once(MlflowClient(tracking_uri=store), result.run_id, 50)


def test_recovery_after_failures_is_logged_once(tmp_path, store):
    run_dir = make_sweep(tmp_path / "runs") / "t1"
    append_steps(run_dir, range(1, 4))
    live = LiveSync(run_dir, TrackingConfig(uri=closed_port_uri(), http_timeout_s=2, http_retries=0,
                                                live_mode="thread"))
    assert live.tick() is False and live.tick() is False
    live.target.uri = store  # the server is back (same cursor key is irrelevant to this check)
    live._client = None
    assert live.tick() is True
    log = read_log(run_dir)
    lines = [line for line in log.splitlines() if "[tracking]" in line]
    assert len(lines) == 2 and "failed" in lines[0] and "recovered" in lines[1]


FAKE_TRAIL = """
import os, sys, time
sys.path.insert(0, {tests!r})
from harness.store.rundir import write_status
from harness.tracking.config import TrackingConfig
from harness.tracking.live import LiveSync
from tracking_support import append_steps
run_dir = {run_dir!r}
write_status(run_dir, "running")
live = LiveSync(run_dir, TrackingConfig(uri={uri!r}, sync_every_s=0.2))
assert live.mode == "process"
live.start()
print(live._proc.pid, flush=True)
append_steps(run_dir, range(1, 31))
write_status(run_dir, "failed", ended=time.time())
os.kill(os.getpid(), 9)  # killed: no stop(), no final sync from this process
"""


@pytest.mark.e2e
def test_sidecar_process_does_the_final_sync_even_when_the_trail_process_is_killed(tmp_path, store, request):
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    run_dir = make_sweep(tmp_path / "runs") / "t1"
    code = FAKE_TRAIL.format(tests=str(request.path.parent), run_dir=str(run_dir), uri=store)
    trail = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert trail.returncode == -9, trail.stderr
    sidecar = int(trail.stdout.split()[0])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # its stdin pipe closed with the trail: final sync, then exit
        try:
            os.kill(sidecar, 0)
            time.sleep(0.2)
        except ProcessLookupError:
            break
    else:
        os.kill(sidecar, 9)
        raise AssertionError("the sync sidecar outlived its trail")
    client = MlflowClient(tracking_uri=store)
    run = client.get_run(run_id_of(run_dir, store))
    assert_exactly_once(client, run.info.run_id, 30)
    assert run.info.status == "FAILED" and run.data.tags["harness.status"] == "failed"
