"""The bulk read of MLflow metric histories gives what MLflow's own per-metric reads give: duplicates, NaN and
infinities included, on a real sqlite store."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mlflow_stores import empty_store

from harness.report.mlflow_history import _client_histories, _database_histories, metric_histories, wide_metrics
from harness.tracking.client import is_database_uri


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[str]]]:
    """Three runs: one plain, one with a step logged twice (later timestamp, then an equal timestamp with a larger
    value) and NaN/±inf values, one with no metric; the runs' ids mapped to their metric keys."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = empty_store(tmp_path_factory.mktemp("history") / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("history")
    plain, messy, bare = (client.create_run(exp).info.run_id for _ in range(3))
    client.log_batch(plain, metrics=[Metric(k, float(s) + i, 1000 * s, s) for s in range(1, 6)
                                     for i, k in enumerate(("a", "b/c"))])
    client.log_batch(messy, metrics=[Metric("a", 1.0, 5000, 1), Metric("a", 2.0, 4000, 1), Metric("a", 3.0, 6000, 2),
                                     Metric("a", 4.0, 6000, 2), Metric("b/c", math.nan, 7000, 3),
                                     Metric("b/c", math.inf, 8000, 4), Metric("b/c", -math.inf, 9000, 5),
                                     Metric("a", 5.0, 3000, 3)])
    return uri, {plain: ["a", "b/c"], messy: ["a", "b/c"], bare: []}


def per_call(uri: str, runs: dict[str, list[str]]) -> pd.DataFrame:
    """The report's former reading: get_metric_history per (run, key), the last value of a step kept."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    frames = []
    for run_id, keys in runs.items():
        rows = [(m.step, m.key, m.value, m.timestamp) for key in keys for m in client.get_metric_history(run_id, key)]
        if not rows:
            continue
        long = pd.DataFrame(rows, columns=["step", "key", "value", "timestamp"]).drop_duplicates(["step", "key"],
                                                                                               keep="last")
        wide = long.pivot(index="step", columns="key", values="value")
        wide.columns.name = None
        wide.insert(0, "time", long.groupby("step")["timestamp"].max() / 1000.0)
        wide = wide.reset_index()
        wide.insert(0, "id", run_id)
        frames.append(wide)
    return pd.concat(frames, ignore_index=True).sort_values(["id", "step"], ignore_index=True)


def test_database_uri() -> None:
    assert is_database_uri("sqlite:////tmp/mlflow.db") and is_database_uri("postgresql+psycopg2://h/db")
    assert not is_database_uri("http://127.0.0.1:5000") and not is_database_uri("file:///tmp/mlruns")


@pytest.mark.parametrize("read", ["database", "client"])
def test_bulk_read_equals_per_metric_reads(store: tuple[str, dict[str, list[str]]], read: str) -> None:
    from mlflow.tracking import MlflowClient

    uri, runs = store
    histories = (_database_histories(uri, runs) if read == "database"
                 else _client_histories(MlflowClient(tracking_uri=uri), runs))
    got = wide_metrics(histories, {r: r for r in runs})
    want = per_call(uri, runs)
    pd.testing.assert_frame_equal(got, want[list(got.columns)], check_dtype=False)
    messy = got[got["id"] == list(runs)[1]].set_index("step")
    assert messy.loc[1, "a"] == 1.0 and messy.loc[2, "a"] == 4.0  # later timestamp wins, then the larger value
    assert math.isnan(messy.loc[3, "b/c"]) and messy.loc[3, "a"] == 5.0
    assert messy.loc[4, "b/c"] == np.finfo(float).max and messy.loc[5, "b/c"] == -np.finfo(float).max


def test_only_the_given_runs(store: tuple[str, dict[str, list[str]]]) -> None:
    uri, runs = store
    first = list(runs)[0]
    histories = metric_histories(None, uri, {first: runs[first]})
    assert set(histories.runs) == {first}
    assert wide_metrics(histories, {"not-a-run": "t"}).empty
    assert not metric_histories(None, uri, {}).runs
