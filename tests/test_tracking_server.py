"""Against a real `mlflow server`: kill it (SIGKILL) in the middle of a sweep's sync — with one batch committed by the
server whose answer never arrived — keep training, restart it, `harness sync` → every metric exactly once."""

from __future__ import annotations

import json
import time

import pytest
from tracking_support import (
    MlflowServer,
    append_steps,
    assert_exactly_once,
    cache_dir_of,
    fresh_store,
    make_sweep,
    read_log,
    run_id_of,
)

from harness.commands import main_sync
from harness.store.rundir import write_status
from harness.tracking.config import TrackingConfig
from harness.tracking.live import LiveSync
from harness.tracking.sweep_run import ensure_sweep_run
from harness.tracking.sync import sync_trail

pytestmark = [pytest.mark.integration, pytest.mark.mlflow_server, pytest.mark.timeout(600)]


@pytest.fixture
def server(tmp_path, request):
    fresh_store(cache_dir_of(request), tmp_path / "store")
    srv = MlflowServer(tmp_path / "store" / "mlflow.db", tmp_path / "server").start()
    yield srv
    srv.stop()


def test_server_killed_mid_sweep_then_restarted_sync_logs_every_metric_exactly_once(tmp_path, server, monkeypatch):
    from mlflow.tracking import MlflowClient

    names = ["a", "b", "c"]
    root = tmp_path / "runs"
    sweep_dir = make_sweep(root, trails=names)
    cfg = TrackingConfig(uri=server.url, sync_every_s=0.2, http_timeout_s=5, http_retries=0)
    summary = ensure_sweep_run(sweep_dir, cfg)
    assert summary
    for i, name in enumerate(names):
        write_status(sweep_dir / name, "running")
        append_steps(sweep_dir / name, range(1, 121), seed=i)
    live = LiveSync(sweep_dir / "c", cfg)  # trail c syncs live all along, from its sidecar process
    live.start()
    sync_trail(sweep_dir / "a")

    # Trail b: the server commits the first batch, then dies before its answer reaches us.
    client_cls = MlflowClient
    real_log_batch = client_cls.log_batch

    def dies_after_commit(self, run_id, metrics=(), **kw):
        out = real_log_batch(self, run_id, metrics=metrics, **kw)
        if metrics:
            server.kill()
            raise ConnectionError("server vanished before answering")
        return out

    monkeypatch.setattr(client_cls, "log_batch", dies_after_commit)
    with pytest.raises(ConnectionError):
        sync_trail(sweep_dir / "b")
    monkeypatch.undo()
    assert json.loads((sweep_dir / "b" / "mlflow.json").read_text())[server.url]["inflight"]

    # Training goes on while MLflow is down; then trails end.
    for i, name in enumerate(names):
        append_steps(sweep_dir / name, range(121, 201), seed=i)
        write_status(sweep_dir / name, "done", ended=time.time())
    time.sleep(1.0)
    assert main_sync("demo", root=str(root)) == 1  # still down: reported, nothing raised

    server.start()
    assert main_sync("demo", root=str(root)) == 0
    live.stop()
    assert "failed" in read_log(sweep_dir / "c")

    client = MlflowClient(tracking_uri=server.url)
    for i, name in enumerate(names):
        run_id = run_id_of(sweep_dir / name, server.url)
        assert_exactly_once(client, run_id, 200, seed=i)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.info.experiment_id == client.get_run(summary).info.experiment_id
    assert client.get_run(summary).info.status == "FINISHED"
    assert main_sync("demo", root=str(root)) == 0  # and again: idempotent
    for i, name in enumerate(names):
        assert_exactly_once(client, run_id_of(sweep_dir / name, server.url), 200, seed=i)
