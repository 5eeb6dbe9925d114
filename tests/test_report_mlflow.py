"""The MLflow loader reads the same sweep as the journal loader: filled here into a real sqlite store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from synthetic_sweeps import finish_sweep, write_trail
from test_report_tables import axes, flat_trail
from tracking_support import cache_dir_of, fresh_store

from harness.journal import read_records
from harness.report import write_report
from harness.report.load import load_journals, load_mlflow
from harness.rundir import read_status
from harness.sweepdir import read_trail_meta, trail_dirs


def fill_store(sweep_dir: Path, uri: str, experiment: str) -> None:
    """What tracking writes into the sweep's experiment: one run per trail (run name led by the algorithm, the trail
    name as a tag, axes as params, harness.* tags, no failure reason, created after the trail started), metrics via
    log_batch, plus the sweep's summary run (sweep tag, but no trail); another sweep's experiment beside it."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    sweep = sweep_dir.name
    exp_id = client.create_experiment(f"{experiment}/{sweep}")
    client.create_run(exp_id, run_name=f"{sweep} · summary", tags={"harness.sweep": sweep, "harness.kind": "summary"})
    other_exp = client.create_experiment(f"{experiment}/another-sweep")
    other = client.create_run(other_exp, run_name="grpo · stale 1 · seed 1",
                              tags={"harness.sweep": "another-sweep", "harness.trail_id": "x"})
    client.log_batch(other.info.run_id, metrics=[Metric("eval/reward", 0.0, 1, 1)])
    for run_dir in trail_dirs(sweep_dir)[:-1]:  # the last trail never reached MLflow
        meta, status = read_trail_meta(run_dir), read_status(run_dir)
        tags = {"harness.sweep": sweep, "harness.trail_id": meta["id"], "harness.status": status["state"],
                "harness.trail": meta["name"], "harness.kind": "trail"}
        # tracking creates the run when it first reaches the trail, after the trail's start-up
        late = int((status["started"] + 7.0) * 1000)
        run = client.create_run(exp_id, run_name=" · ".join(meta["name"].split()[::-1]), start_time=late, tags=tags)
        metrics = [Metric(key, value, int(round(rec["time"] * 1000)), rec["step"])
                   for rec in read_records(run_dir) for key, value in rec.items() if key not in ("step", "time")]
        params = [Param(k, str(v)) for k, v in meta["axes"].items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        if status.get("ended"):
            client.set_terminated(run.info.run_id, "FINISHED", end_time=int(status["ended"] * 1000))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    tmp_path = tmp_path_factory.mktemp("mlflow-report")
    tracking = {"uri": fresh_store(cache_dir_of(request), tmp_path / "store"), "experiment": "report-test"}
    sweep_dir = tmp_path / "runs" / "demo"
    dirs = [write_trail(sweep_dir, axes(stale, algo, seed), flat_trail(0.7 + 0.01 * seed, 0.3 + 0.1 * seed),
                        ended=1010.0, tracking=tracking)
            for stale in (1, 256) for algo in ("grpo", "m2po") for seed in (1, 2)]
    bad = flat_trail(0.1, 0.5)
    bad[3]["train/grad_norm"] = float("nan")
    dirs.append(write_trail(sweep_dir, axes(256, "m2po-areal", 1), bad, state="diverged", ended=1004.0,
                            reason="grad_norm is nan at step 4", tracking=tracking))
    dirs.append(write_trail(sweep_dir, axes(512, "m2po", 1), flat_trail(0.7, 0.3), tracking=tracking))
    finish_sweep(sweep_dir, dirs)
    fill_store(sweep_dir, tracking["uri"], tracking["experiment"])
    return sweep_dir


def test_mlflow_loader_matches_journal_loader(sweep: Path) -> None:
    journal, mlflow = load_journals(sweep), load_mlflow(sweep)
    assert mlflow.name == journal.name == "demo"
    key = ["id"]
    synced = journal.trails["stale"] != 512  # the one trail that never reached MLflow
    jt = journal.trails[synced].sort_values(key).reset_index(drop=True)
    mt = mlflow.trails.sort_values(key).reset_index(drop=True)
    assert len(mt) == 9  # the summary run and the other sweep's run are not trails of this sweep
    pd.testing.assert_frame_equal(mt, jt)
    jm = journal.metrics[journal.metrics["id"].isin(jt["id"])].sort_values(["id", "step"]).reset_index(drop=True)
    mm = mlflow.metrics.sort_values(["id", "step"]).reset_index(drop=True)[list(jm.columns)]
    pd.testing.assert_frame_equal(mm, jm, check_exact=False, atol=1e-3)  # times are ms in MLflow


def test_report_from_mlflow_equals_report_from_journals(sweep: Path, tmp_path: Path) -> None:
    a = pd.read_csv(write_report(sweep, out=tmp_path / "j", source="journal").parent / "cells.csv")
    b = pd.read_csv(write_report(sweep, out=tmp_path / "m", source="mlflow").parent / "cells.csv")
    pd.testing.assert_frame_equal(a[a["stale"] != 512].reset_index(drop=True), b)
    text = (tmp_path / "m" / "REPORT.md").read_text()
    assert "1 trails of the sweep have no run in MLflow" in text and "`stale 512 d2+d1 rollout 96 m2po seed 1`" in text
    assert "stale 256 m2po/areal seed 1" not in text  # unknown mode (no engine in config): every axis shown
    assert "Source: MLflow sqlite:///" in text and "diverged: grad_norm is nan at step 4" in text
