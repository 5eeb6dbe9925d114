"""The MLflow loader reads the same sweep as the journal loader: filled here into a real sqlite store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow_stores import fill_store
from synthetic_sweeps import finish_sweep, write_trail
from test_report_tables import axes, flat_trail
from tracking_support import cache_dir_of, fresh_store

from harness.report import write_report
from harness.report.load import load_journals, load_mlflow


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
    fill_store(sweep_dir, tracking["uri"], tracking["experiment"], skip=dirs[-1:])  # the last never reached MLflow
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
