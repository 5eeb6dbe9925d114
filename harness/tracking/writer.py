"""How metric values reach MLflow: `log_batch` for a server, or one transaction of plain inserts for a database store.

Why two: MLflow's log_batch on a database store (sqlite, PostgreSQL, MySQL) builds and flushes an ORM object per value
— about 90 µs of CPU a value here, at most 1,000 values a call — which is most of a sweep tracker's CPU with the
default sqlite store. SqlMetricWriter writes the same rows (`metrics`, and `latest_metrics` kept at each key's latest
(step, timestamp, value)) through MLflow's own SqlAlchemyStore — its engine, session (with its sqlite pragmas and
error mapping) and table models — as one executemany per batch, about 8× cheaper. It refuses a run that is gone or
not active with MLflow's own errors, so the sync's handling of a wiped store is unchanged, and hands anything
unusual (a duplicate row, an invalid key or timestamp) to log_batch, whose answer is then MLflow's own.
tests/test_tracking_writer.py checks that both write the same rows.
"""

from __future__ import annotations

import math
import sys
import tempfile
from functools import partial
from operator import itemgetter
from typing import Any, Dict, List, Optional, Protocol, Sequence, Set, Tuple

from harness.tracking.client import is_database_uri, retry_locked

Value = Tuple[str, float, int, int]  # (key, value, timestamp ms, step)

LOG_BATCH_LIMIT = 1000   # MLflow's limit of metrics per log_batch
SQL_BATCH_LIMIT = 20000  # values per transaction: short enough that other writers of the sqlite file barely wait
_FLOAT_MAX = sys.float_info.max


class MetricWriter(Protocol):
    batch_limit: int

    def write(self, run_id: str, values: Sequence[Value]) -> None: ...


class LogBatchWriter:
    """MLflow's batch API, 1,000 values a call."""

    batch_limit = LOG_BATCH_LIMIT

    def __init__(self, client: Any):
        self.client = client

    def write(self, run_id: str, values: Sequence[Value]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(key, value, ts, step) for key, value, ts, step in values]
        for i in range(0, len(metrics), LOG_BATCH_LIMIT):
            retry_locked(partial(self.client.log_batch, run_id, metrics=metrics[i:i + LOG_BATCH_LIMIT],
                                 synchronous=True))


def _insert_many(session: Any, table: Any, rows: List[Dict[str, Any]]) -> None:
    """One executemany of the driver: SQLAlchemy's per-row parameter processing costs more than sqlite's insert."""
    connection = session.connection()
    compiled = table.insert().compile(dialect=connection.dialect)
    if compiled.positional:
        order = itemgetter(*compiled.positiontup)
        connection.exec_driver_sql(str(compiled), [order(row) for row in rows])
    else:
        connection.exec_driver_sql(str(compiled), rows)


def _stored(value: float) -> Tuple[float, bool]:
    """(value as MLflow stores it, is_nan): NaN as 0 flagged, ±inf as ±the largest double."""
    if math.isnan(value):
        return 0.0, True
    if math.isinf(value):
        return (_FLOAT_MAX if value > 0 else -_FLOAT_MAX), False
    return value, False


class SqlMetricWriter:
    """Plain inserts into a database store's tables, one transaction per batch (see the module's docstring)."""

    batch_limit = SQL_BATCH_LIMIT

    def __init__(self, uri: str, client: Any):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        self.store = SqlAlchemyStore(uri, tempfile.gettempdir())  # MLflow caches the engine per URI
        self.fallback = LogBatchWriter(client)
        self.valid_keys: Set[str] = set()

    def write(self, run_id: str, values: Sequence[Value]) -> None:
        if not self._plain(values):
            self.fallback.write(run_id, values)
            return
        from sqlalchemy.exc import IntegrityError

        try:
            retry_locked(partial(self._insert, run_id, values))
        except Exception as exc:  # noqa: BLE001 - MLflow wraps the driver's error; only a duplicate is handed on
            if not isinstance(exc, IntegrityError) and not isinstance(exc.__cause__, IntegrityError):
                raise
            self.fallback.write(run_id, values)  # a row already there: log_batch skips it as MLflow does

    def _plain(self, values: Sequence[Value]) -> bool:
        """Values MLflow accepts as they are: valid keys (checked once each) and timestamps ≥ 0. A row twice is found
        by the insert (a duplicate primary key) and handed to log_batch."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.validation import _validate_metric_name

        for key in {v[0] for v in values} - self.valid_keys:
            try:
                _validate_metric_name(key)
            except MlflowException:
                return False
            self.valid_keys.add(key)
        return all(v[2] >= 0 for v in values)

    def _insert(self, run_id: str, values: Sequence[Value]) -> None:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric

        rows: List[Dict[str, Any]] = []
        latest: Dict[str, Dict[str, Any]] = {}
        for key, value, ts, step in values:
            stored, nan = (value, False) if value - value == 0.0 else _stored(value)  # finite: as it is
            row = {"run_uuid": run_id, "key": key, "value": stored, "timestamp": ts, "step": step, "is_nan": nan}
            rows.append(row)
            best = latest.get(key)
            if best is None or (step, ts, stored) > (best["step"], best["timestamp"], best["value"]):
                latest[key] = row
        with self.store.ManagedSessionMaker(read_only=False) as session:
            self._check_active(session, run_id)
            _insert_many(session, SqlMetric.__table__, rows)  # takes the write lock before latest is read
            self._update_latest(session, SqlLatestMetric, run_id, latest)

    @staticmethod
    def _check_active(session: Any, run_id: str) -> None:
        from mlflow.entities import LifecycleStage
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import select

        stage: Optional[str] = session.execute(
            select(SqlRun.lifecycle_stage).where(SqlRun.run_uuid == run_id)).scalar_one_or_none()
        if stage is None:
            raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
        if stage != LifecycleStage.ACTIVE:
            raise MlflowException(f"The run {run_id} must be in the 'active' state. Current state is {stage}.",
                                  INVALID_PARAMETER_VALUE)

    @staticmethod
    def _update_latest(session: Any, model: Any, run_id: str, latest: Dict[str, Dict[str, Any]]) -> None:
        """latest_metrics as MLflow keeps it: a key's row moves only to a strictly later (step, timestamp, value)."""
        from sqlalchemy import bindparam, select, update

        table = model.__table__
        have = {r.key: r for r in session.execute(
            select(table.c.key, table.c.step, table.c.timestamp, table.c.value)
            .where(table.c.run_uuid == run_id, table.c.key.in_(list(latest))))}
        new = [row for key, row in latest.items() if key not in have]
        if new:
            _insert_many(session, table, new)
        moved = [{"k": key, "v": row["value"], "s": row["step"], "t": row["timestamp"], "n": row["is_nan"]}
                 for key, row in latest.items() if key in have
                 and (row["step"], row["timestamp"], row["value"]) > tuple(have[key])[1:]]
        if moved:  # one executemany, not a statement per key
            session.connection().execute(
                update(table).where(table.c.run_uuid == run_id, table.c.key == bindparam("k"))
                .values(value=bindparam("v"), step=bindparam("s"), timestamp=bindparam("t"), is_nan=bindparam("n")),
                moved)


_SQL_WRITERS: Dict[str, SqlMetricWriter] = {}


def metric_writer(client: Any, uri: str) -> MetricWriter:
    """The writer for the store at `uri`: plain inserts for a database store, log_batch for anything else."""
    if not is_database_uri(uri):
        return LogBatchWriter(client)
    writer = _SQL_WRITERS.get(uri)
    if writer is None:
        writer = _SQL_WRITERS[uri] = retry_locked(lambda: SqlMetricWriter(uri, client))
    writer.fallback = LogBatchWriter(client)
    return writer
