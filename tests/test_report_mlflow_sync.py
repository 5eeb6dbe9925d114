"""A sweep synced to MLflow by the harness itself (the sweep tracker's and `harness sync`'s writer) reads back from
MLflow as it reads from its journals: trails and every metric value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow_stores import empty_store
from synthetic_sweeps import random_sweep

from harness.report.load import load_journals, load_mlflow
from harness.tracking.sync import sync_sweep


def test_synced_sweep_reads_back_as_its_journals(tmp_path: Path) -> None:
    uri = empty_store(tmp_path / "mlflow.db")
    sweep = random_sweep(tmp_path / "runs" / "synced", trails=4, steps=30, eval_every=7,
                         tracking={"uri": uri, "experiment": "sync-test"})
    assert all(r.error is None for r in sync_sweep(sweep))
    journal, mlflow = load_journals(sweep), load_mlflow(sweep)
    pd.testing.assert_frame_equal(mlflow.trails.sort_values("id", ignore_index=True),
                                  journal.trails.sort_values("id", ignore_index=True))
    want = journal.metrics.sort_values(["id", "step"], ignore_index=True)
    got = mlflow.metrics.sort_values(["id", "step"], ignore_index=True)[list(want.columns)]
    pd.testing.assert_frame_equal(got.drop(columns="time"), want.drop(columns="time"))  # values exactly
    assert (got["time"] - want["time"]).abs().max() < 1e-3  # MLflow keeps milliseconds
