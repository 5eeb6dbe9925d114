"""The database store's plain inserts write what MLflow's log_batch writes, and refuse what it refuses: on a real
sqlite store, row for row (`metrics` and `latest_metrics`)."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any, List

import pytest
from mlflow_stores import empty_store

from harness.tracking.writer import LogBatchWriter, SqlMetricWriter, Value, metric_writer

BATCHES: List[List[Value]] = [
    [("a", 1.0, 1000, 1), ("b/c", 2.0, 1000, 1), ("a", 3.0, 2000, 2), ("b/c", math.nan, 2000, 2)],
    # a later batch: an earlier step (latest stays), an equal step with a later timestamp (latest moves), infinities
    [("a", 9.0, 500, 0), ("b/c", 5.0, 3000, 2), ("c", math.inf, 100, 7), ("c", -math.inf, 100, 8)],
    [("c", 0.5, 100, 8), ("a", -1.0, 2000, 2)],  # same step and timestamp: the larger value is the latest
]


def rows(db: Path, table: str, run_id: str) -> List[Any]:
    with sqlite3.connect(db) as con:
        return sorted(con.execute(f"SELECT key, value, timestamp, step, is_nan FROM {table} WHERE run_uuid = ?",
                                  (run_id,)).fetchall())


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, str, Any, str]:
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    uri = empty_store(db)
    client = MlflowClient(tracking_uri=uri)
    return db, uri, client, client.create_experiment("writer")


def test_same_rows_as_log_batch(store: tuple[Path, str, Any, str]) -> None:
    db, uri, client, exp = store
    by_api, by_sql = (client.create_run(exp).info.run_id for _ in range(2))
    api, sql = LogBatchWriter(client), SqlMetricWriter(uri, client)
    for batch in BATCHES:
        api.write(by_api, batch)
        sql.write(by_sql, batch)
    for table in ("metrics", "latest_metrics"):
        assert rows(db, table, by_sql) == rows(db, table, by_api), table
    assert len(rows(db, "metrics", by_sql)) == sum(len(b) for b in BATCHES)
    assert client.get_run(by_sql).data.metrics == client.get_run(by_api).data.metrics
    assert isinstance(metric_writer(client, uri), SqlMetricWriter)
    assert isinstance(metric_writer(client, "http://127.0.0.1:1"), LogBatchWriter)


def test_a_row_already_there_is_skipped_as_log_batch_skips_it(store: tuple[Path, str, Any, str]) -> None:
    db, uri, client, exp = store
    run_id = client.create_run(exp).info.run_id
    writer = SqlMetricWriter(uri, client)
    writer.write(run_id, BATCHES[0][:2])
    writer.write(run_id, BATCHES[0])  # the first two again: one transaction fails, log_batch logs the rest
    assert len(rows(db, "metrics", run_id)) == len(BATCHES[0])
    twice: Value = ("d", 1.5, 3000, 3)
    writer.write(run_id, [twice, twice])  # the same row twice in one batch: once, as log_batch does
    assert len(rows(db, "metrics", run_id)) == len(BATCHES[0]) + 1


@pytest.mark.parametrize("case", ["gone", "deleted", "bad key", "negative timestamp"])
def test_refuses_what_log_batch_refuses(store: tuple[Path, str, Any, str], case: str) -> None:
    from mlflow.exceptions import MlflowException

    db, uri, client, exp = store
    run_id = client.create_run(exp).info.run_id
    batch: List[Value] = [("a", 1.0, 1000, 1)]
    if case == "gone":
        run_id = "0" * 32
    elif case == "deleted":
        client.delete_run(run_id)
    elif case == "bad key":
        batch = [("a/../b", 1.0, 1000, 1)]
    else:
        batch = [("a", 1.0, -5, 1)]
    with pytest.raises(MlflowException) as by_api:
        LogBatchWriter(client).write(run_id, batch)
    with pytest.raises(MlflowException) as by_sql:
        SqlMetricWriter(uri, client).write(run_id, batch)
    assert by_sql.value.error_code == by_api.value.error_code
    if case in ("gone", "deleted"):
        assert str(by_sql.value) == str(by_api.value)
