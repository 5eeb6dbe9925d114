"""Journal → MLflow sync against a real sqlite store: exactly once per (metric, step), across re-sync, resume,
a crash between a batch and the cursor write, a lost cursor, and trail status changes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tracking_support import (
    append_steps,
    assert_exactly_once,
    cache_dir_of,
    closed_port_uri,
    expected_count,
    fresh_store,
    make_sweep,
)

from harness.commands import main_report, main_sync
from harness.store.journal import truncate_after
from harness.store.rundir import write_status
from harness.tracking import sync as sync_mod
from harness.tracking.config import TrackingConfig
from harness.tracking.cursor import CURSOR_NAME
from harness.tracking.sweep_run import ensure_sweep_run, finish_sweep_run
from harness.tracking.sync import sync_sweep, sync_trail
from harness.tracking.writer import LogBatchWriter


@pytest.fixture
def store(tmp_path, request) -> str:
    return fresh_store(cache_dir_of(request), tmp_path / "store")


@pytest.fixture
def client(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store)


def test_sync_logs_every_metric_once_with_its_step_value_params_and_tags(tmp_path, store, client):
    sweep_dir = make_sweep(tmp_path / "runs", trails=["t1"])
    summary = ensure_sweep_run(sweep_dir, TrackingConfig(uri=store))
    assert summary and json.loads((sweep_dir / "sweep.json").read_text())["mlflow_summary_run_id"] == summary
    run_dir = sweep_dir / "t1"
    append_steps(run_dir, range(1, 131))  # 130 steps x 15-17 metrics: three batches of <= 1000

    result = sync_trail(run_dir)

    assert result.logged == expected_count(range(1, 131)) and result.synced_step == 130
    assert_exactly_once(client, result.run_id, 130)
    run = client.get_run(result.run_id)
    assert run.info.run_name == "m2po · stale 256 · d2+d1 · rollout 96 · seed 0"  # no identity, no config: all shown
    assert "mlflow.parentRunId" not in run.data.tags  # a top-level row of the sweep's experiment
    assert client.get_experiment(run.info.experiment_id).name == "harness/demo"
    assert client.get_run(summary).info.experiment_id == run.info.experiment_id
    assert run.data.tags["harness.sweep"] == "demo" and run.data.tags["harness.trail_id"] == "id0000t1"
    assert run.data.tags["harness.trail"] == "stale 256 d2+d1 rollout 96 t1"
    assert run.data.tags["harness.kind"] == "trail"
    assert run.data.tags["harness.engine"] == "embedded" and run.data.tags["harness.backend"] == "local"
    assert run.data.tags["harness.code_version"]
    assert run.data.params["stale"] == "256" and run.data.params["algo"] == "m2po"
    step = client.get_metric_history(result.run_id, "train/loss")[0]
    assert step.timestamp == int((1.7e9 + step.step) * 1000)  # the journal's time, not the sync's


def test_resync_is_idempotent(tmp_path, store, client):
    run_dir = make_sweep(tmp_path / "runs") / "t1"
    append_steps(run_dir, range(1, 61))
    first = sync_trail(run_dir, uri=store)
    again = sync_trail(run_dir, uri=store)
    assert first.logged == expected_count(range(1, 61)) and again.logged == 0
    append_steps(run_dir, range(61, 81))
    assert sync_trail(run_dir, uri=store).logged == expected_count(range(61, 81))
    assert_exactly_once(client, first.run_id, 80)


def test_step_0_is_logged_once_across_resume_and_a_lost_cursor(tmp_path, store, client):
    """Step 0 is where an engine logs the base model's eval, the first point of its eval curves."""
    run_dir = make_sweep(tmp_path / "runs") / "t1"
    append_steps(run_dir, range(0, 31))
    first = sync_trail(run_dir, uri=store)
    assert first.logged == expected_count(range(0, 31)) and first.synced_step == 30
    assert_exactly_once(client, first.run_id, 30, first_step=0)
    truncate_after(run_dir, 20)  # resumed from its checkpoint at 20, steps after it recomputed at later times
    append_steps(run_dir, range(21, 41), time_offset=500.0)
    sync_trail(run_dir, uri=store)
    (run_dir / CURSOR_NAME).unlink()  # a lost cursor: the run is found by its tags and its history verified
    assert sync_trail(run_dir, uri=store).logged == 0
    assert_exactly_once(client, first.run_id, 40, first_step=0)


def test_runs_carry_their_cell_and_older_runs_get_it_once(tmp_path, store, client, monkeypatch):
    from harness.tracking.cursor import read_cursor, write_cursor
    from harness.tracking.metadata import CELL_TAG

    run_dir = make_sweep(tmp_path / "runs") / "t1"
    append_steps(run_dir, range(1, 6))
    run_id = sync_trail(run_dir, uri=store).run_id
    assert client.get_run(run_id).data.tags[CELL_TAG] == "m2po · stale 256 · d2+d1 · rollout 96"  # no seed
    # a run synced before runs carried their cell: no tag, and a cursor that does not say it was set
    client.delete_tag(run_id, CELL_TAG)
    write_cursor(run_dir, store, {k: v for k, v in read_cursor(run_dir, store).items() if k != "cell"})
    set_tags, real = [], type(client).set_tag

    def counted(self, run_id_, key, *args, **kwargs):
        set_tags.append(key)
        return real(self, run_id_, key, *args, **kwargs)

    monkeypatch.setattr(type(client), "set_tag", counted)
    sync_trail(run_dir, uri=store)
    sync_trail(run_dir, uri=store)
    assert client.get_run(run_id).data.tags[CELL_TAG] == "m2po · stale 256 · d2+d1 · rollout 96"
    assert set_tags.count(CELL_TAG) == 1


def test_the_sweeps_view_is_stored_on_its_experiment_and_kept_current(tmp_path, store, client):
    from harness.tracking.view import VIEW_TAG, view_state

    sweep_dir = make_sweep(tmp_path / "runs")
    ensure_sweep_run(sweep_dir, TrackingConfig(uri=store))
    experiment_id = json.loads((sweep_dir / "sweep.json").read_text())["mlflow_experiment_id"]
    view = json.loads(client.get_experiment(experiment_id).tags[VIEW_TAG])
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "harness.cell"}]
    assert view["groupBy"]["aggregateFunction"] == "average" and view["useGroupedValuesInCharts"] is True
    assert view["runsHiddenMode"] == "SHOW_ALL"  # every cell drawn, not MLflow's first 10 rows
    assert {c["metricKey"]: c["scaleType"] for c in view["compareRunCharts"]} == {
        "eval/reward": "linear", "train/grad_norm": "log", "m2po/masked_frac": "linear", "train/clip_frac": "linear"}
    assert {c["metricSectionId"] for c in view["compareRunCharts"]} == {s["uuid"] for s in view["compareRunSections"]}
    client.set_experiment_tag(experiment_id, VIEW_TAG, "{}")  # a view stored by an earlier version
    sync_sweep(sweep_dir, uri=store)
    assert client.get_experiment(experiment_id).tags[VIEW_TAG] == view_state()


def test_resume_truncate_and_recompute_logs_no_duplicates(tmp_path, store, client):
    run_dir = make_sweep(tmp_path / "runs") / "t1"
    append_steps(run_dir, range(1, 101))
    run_id = sync_trail(run_dir, uri=store).run_id
    # the trail crashed at step 100; it resumes from its checkpoint at 60 and recomputes 61.. at later times
    truncate_after(run_dir, 60)
    append_steps(run_dir, range(61, 151), time_offset=5000.0)
    sync_trail(run_dir, uri=store)
    assert_exactly_once(client, run_id, 150)


@pytest.mark.parametrize("writer", ["database", "log_batch"])
@pytest.mark.parametrize("then_resume", [False, True])
def test_crash_between_log_batch_and_cursor_write_still_logs_exactly_once(tmp_path, store, client, monkeypatch,
                                                                          then_resume, writer):
    run_dir = make_sweep(tmp_path / "runs") / "t1"
    append_steps(run_dir, range(1, 41))
    run_id = sync_trail(run_dir, uri=store).run_id
    append_steps(run_dir, range(41, 121))

    real_write, real_writer, sent = sync_mod.write_cursor, sync_mod.metric_writer, []

    class Spy:
        """The store's writer (or MLflow's log_batch, 1,000 values a batch), counting what it sent."""

        def __init__(self, client_, uri):
            self.inner = LogBatchWriter(client_) if writer == "log_batch" else real_writer(client_, uri)
            self.batch_limit = self.inner.batch_limit

        def write(self, run_id_, values):
            self.inner.write(run_id_, values)
            sent.append(len(values))

    def crash_after_first_batch(run_dir_, uri, cursor):
        if any(sent) and cursor.get("inflight") is None:
            raise KeyboardInterrupt("killed between the batch and the cursor write")
        real_write(run_dir_, uri, cursor)

    monkeypatch.setattr(sync_mod, "metric_writer", Spy)
    monkeypatch.setattr(sync_mod, "write_cursor", crash_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        sync_trail(run_dir, uri=store)
    monkeypatch.undo()
    assert sum(sent) > 0 and json.loads((run_dir / CURSOR_NAME).read_text())[store]["synced_step"] == 40
    if then_resume:  # recomputed steps carry new timestamps: MLflow's own duplicate check cannot catch them
        truncate_after(run_dir, 50)
        append_steps(run_dir, range(51, 121), time_offset=777.0)

    sync_trail(run_dir, uri=store)

    assert_exactly_once(client, run_id, 120)
    assert json.loads((run_dir / CURSOR_NAME).read_text())[store]["inflight"] is None


def test_lost_cursor_reuses_the_run_and_logs_only_what_is_missing(tmp_path, store, client):
    run_dir = make_sweep(tmp_path / "runs") / "t1"
    append_steps(run_dir, range(1, 51))
    run_id = sync_trail(run_dir, uri=store).run_id
    (run_dir / CURSOR_NAME).unlink()
    append_steps(run_dir, range(51, 71))
    assert sync_trail(run_dir, uri=store).run_id == run_id
    assert_exactly_once(client, run_id, 70)
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


@pytest.mark.parametrize("state,mlflow_status", [("done", "FINISHED"), ("diverged", "FINISHED"),
                                                 ("failed", "FAILED")])
def test_status_tag_and_run_end_follow_the_trail(tmp_path, store, client, state, mlflow_status):
    run_dir = make_sweep(tmp_path / "runs") / "t1"
    write_status(run_dir, "running", node="node-a")
    append_steps(run_dir, range(1, 6))
    run_id = sync_trail(run_dir, uri=store).run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    assert client.get_run(run_id).data.tags["harness.status"] == "running"
    assert client.get_run(run_id).data.tags["harness.node"] == "node-a"  # where it ran, as the backend names it
    write_status(run_dir, state, ended=time.time())
    sync_trail(run_dir, uri=store)
    run = client.get_run(run_id)
    assert run.info.status == mlflow_status and run.data.tags["harness.status"] == state
    write_status(run_dir, "running")  # resumed
    sync_trail(run_dir, uri=store)
    assert client.get_run(run_id).info.status == "RUNNING"


def test_sweep_sync_puts_trails_and_summary_in_the_sweeps_experiment(tmp_path, store, client, capsys):
    root = tmp_path / "runs"
    sweep_dir = make_sweep(root, trails=["a", "b", "c"])
    for i, name in enumerate("abc"):
        append_steps(sweep_dir / name, range(1, 31), seed=i)
        write_status(sweep_dir / name, "done")
    assert main_sync("demo", root=str(root), uri=store) == 0
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    summary = client.get_run(meta["mlflow_summary_run_id"])
    assert summary.info.status == "FINISHED" and summary.data.tags["harness.kind"] == "summary"
    assert client.get_experiment(meta["mlflow_experiment_id"]).name == "harness/demo"
    trails = client.search_runs([meta["mlflow_experiment_id"]], "tags.`harness.kind` = 'trail'")
    assert sorted(r.data.tags["harness.trail"] for r in trails) == [f"stale 256 d2+d1 rollout 96 {n}" for n in "abc"]
    assert all("mlflow.parentRunId" not in r.data.tags for r in trails)
    for run in trails:
        assert_exactly_once(client, run.info.run_id, 30, seed="abc".index(run.data.tags["harness.trail"][-1]))
    assert all(r.logged == 0 for r in sync_sweep(sweep_dir, uri=store))
    assert "synced 3/3 trails" in capsys.readouterr().out


def test_each_sweep_has_its_own_experiment(tmp_path, store, client):
    for name in ("first", "second"):
        sweep_dir = make_sweep(tmp_path / "runs", name=name)
        append_steps(sweep_dir / "t1", range(1, 4))
        sync_sweep(sweep_dir, uri=store)
    for name in ("first", "second"):
        exp = client.get_experiment_by_name(f"harness/{name}")
        runs = client.search_runs([exp.experiment_id])
        assert sorted(r.data.tags["harness.kind"] for r in runs) == ["summary", "trail"]
        assert {r.data.tags["harness.sweep"] for r in runs} == {name}


def test_a_run_in_an_older_shared_experiment_is_logged_again_into_the_sweeps_own(tmp_path, store, client):
    from harness.tracking.cursor import write_cursor

    run_dir = make_sweep(tmp_path / "runs") / "t1"
    append_steps(run_dir, range(1, 11))
    # synced when every sweep shared the experiment "harness": its cursor names that run and no experiment
    shared = client.create_experiment("harness")
    old = client.create_run(shared, run_name="stale 256 d2+d1 rollout 96 t1").info.run_id
    write_cursor(run_dir, store, {"run_id": old, "experiment_id": shared, "synced_step": 10, "params": True})
    new = sync_trail(run_dir, uri=store).run_id
    assert new != old and client.get_experiment(client.get_run(new).info.experiment_id).name == "harness/demo"
    assert_exactly_once(client, new, 10)
    assert sync_trail(run_dir, uri=store).logged == 0
    assert client.get_run(new).data.params["algo"] == "m2po"


def test_the_report_is_attached_to_the_summary_run(tmp_path, store, client):
    from harness.tracking.sweep_run import attach_report

    sweep_dir = make_sweep(tmp_path / "runs")
    summary = ensure_sweep_run(sweep_dir, TrackingConfig(uri=store))
    report = tmp_path / "report"
    report.mkdir()
    for name in ("REPORT.md", "reward.png", "cells.csv", "notes.txt"):
        (report / name).write_text(name)
    assert attach_report(sweep_dir, report) == 3
    listed = sorted(f.path for f in client.list_artifacts(summary, "report"))
    assert listed == ["report/REPORT.md", "report/cells.csv", "report/reward.png"]


def test_sweep_run_calls_are_safe_when_mlflow_is_down(tmp_path):
    sweep_dir = make_sweep(tmp_path / "runs")
    started = time.monotonic()
    cfg = TrackingConfig(uri=closed_port_uri(), http_timeout_s=2, http_retries=0)
    assert ensure_sweep_run(sweep_dir, cfg) is None
    assert finish_sweep_run(sweep_dir, "done") is False
    assert time.monotonic() - started < 30
    assert "unavailable" in (sweep_dir / "tracking.log").read_text()
    assert ensure_sweep_run(sweep_dir, TrackingConfig(enabled=False)) is None


def test_nan_and_inf_values_are_logged(tmp_path, store, client):
    from harness.store.journal import Journal

    run_dir = make_sweep(tmp_path / "runs") / "t1"
    with Journal(run_dir) as journal:
        journal.append(1, {"train/loss": float("nan"), "train/grad_norm": float("inf")}, time=1.7e9)
    run_id = sync_trail(run_dir, uri=store).run_id
    loss, = client.get_metric_history(run_id, "train/loss")
    grad, = client.get_metric_history(run_id, "train/grad_norm")
    assert loss.value != loss.value and grad.value > 1e300


def test_a_wiped_store_is_refilled_from_the_journals(tmp_path, store, client, request):
    sweep_dir = make_sweep(tmp_path / "runs")
    ensure_sweep_run(sweep_dir, TrackingConfig(uri=store))
    append_steps(sweep_dir / "t1", range(1, 21))
    old = sync_trail(sweep_dir / "t1").run_id
    fresh_store(cache_dir_of(request), tmp_path / "store")  # the same file, empty again
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    summary = ensure_sweep_run(sweep_dir, TrackingConfig(uri=store))
    new = sync_trail(sweep_dir / "t1").run_id
    assert new != old and client.get_run(new).info.experiment_id == client.get_run(summary).info.experiment_id
    assert_exactly_once(client, new, 20)


def test_sync_to_a_second_store_keeps_the_sweeps_own_store(tmp_path, store, request):
    from mlflow.tracking import MlflowClient

    sweep_dir = make_sweep(tmp_path / "runs")
    ensure_sweep_run(sweep_dir, TrackingConfig(uri=store))
    append_steps(sweep_dir / "t1", range(1, 11))
    sync_trail(sweep_dir / "t1")
    other = fresh_store(cache_dir_of(request), tmp_path / "other")
    results = sync_sweep(sweep_dir, uri=other)
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["mlflow_uri"] == store and set(meta["mlflow_summaries"]) == {store, other}
    other_client = MlflowClient(tracking_uri=other)
    copy = other_client.get_run(results[0].run_id)
    assert copy.info.experiment_id == other_client.get_run(meta["mlflow_summaries"][other]).info.experiment_id
    assert_exactly_once(MlflowClient(tracking_uri=other), results[0].run_id, 10)


def test_sync_attaches_a_report_written_while_mlflow_was_away_and_a_later_report_replaces_it(tmp_path, store, client,
                                                                                              capsys):
    root = tmp_path / "runs"
    sweep_dir = make_sweep(root, trails=["a", "b"])
    for i, name in enumerate("ab"):
        append_steps(sweep_dir / name, range(1, 11), seed=i)
        write_status(sweep_dir / name, "done")
    (sweep_dir / "report").mkdir()
    (sweep_dir / "report" / "REPORT.md").write_text("# written while MLflow was away\n")
    assert main_sync("demo", root=str(root), uri=store) == 0
    run_id = json.loads((sweep_dir / "sweep.json").read_text())["mlflow_summary_run_id"]
    assert [f.path for f in client.list_artifacts(run_id, "report")] == ["report/REPORT.md"]
    assert "report attached to the sweep's MLflow summary run (1 file under report/)" in capsys.readouterr().out

    assert main_report("demo", root=str(root)) == 0  # the sweep's own report: it replaces the attached one
    attached = {f.path for f in client.list_artifacts(run_id, "report")}
    assert {"report/REPORT.md", "report/trails.csv"} <= attached
    text = Path(client.download_artifacts(run_id, "report/REPORT.md", str(tmp_path / "down"))).read_text()
    assert text == (sweep_dir / "report" / "REPORT.md").read_text() and "MLflow was away" not in text

    assert main_report("demo", root=str(root), out=str(tmp_path / "elsewhere")) == 0  # elsewhere: stays there
    assert {f.path for f in client.list_artifacts(run_id, "report")} == attached
    assert "attached" not in capsys.readouterr().out.splitlines()[-1]
