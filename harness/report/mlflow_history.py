"""Every metric history of many MLflow runs at once, for a report read from MLflow.

Why not MlflowClient.get_metric_history: it reads one (run, metric) history a call, so a sweep of 1,000 trails ×
10 metrics is 10,000 calls, each a full ORM query (a database store) or an HTTP round trip (a server). A database
store (sqlite, PostgreSQL, MySQL, MS SQL) is read here through MLflow's own SqlAlchemyStore — its engine, session
and table model — with one column-only query per chunk of runs. Any other store (an `mlflow server`) has no bulk
read of whole histories in MLflow's client, so its histories are read per run and metric in a thread pool: the calls
wait on the server, not on this process.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd

from harness.tracking.client import is_database_uri

COLUMNS = ["run_id", "key", "step", "timestamp", "value"]
CLIENT_THREADS = 8


ROW = np.dtype([("key", "i8"), ("step", "i8"), ("timestamp", "i8"), ("value", "f8"), ("is_nan", "i8")])


def _database_histories(uri: str, runs: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One query per run, its keys numbered in SQL: each row reaches Python as a tuple of small numbers, converted
    to numpy at once (a million SQLAlchemy Row objects, or a string per row, cost more than the query)."""
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import case, select

    store = SqlAlchemyStore(uri, tempfile.gettempdir())  # the engine is MLflow's, shared with the client's store
    run_ids = list(runs)
    keys = sorted({k for ks in runs.values() for k in ks})
    number = {k: i for i, k in enumerate(keys)}
    parts: List[np.ndarray] = []
    owners: List[np.ndarray] = []
    with store.ManagedSessionMaker() as session:
        for i, run_id in enumerate(run_ids):
            if not runs[run_id]:
                continue
            code = case({k: number[k] for k in runs[run_id]}, value=SqlMetric.key, else_=-1)
            query = select(code, SqlMetric.step, SqlMetric.timestamp, SqlMetric.value, SqlMetric.is_nan).where(
                SqlMetric.run_uuid == run_id)
            rows = session.connection().execute(query).cursor.fetchall()  # the driver's tuples, as they are
            if rows:
                parts.append(np.array(rows, dtype=ROW))
                owners.append(np.full(len(rows), i, dtype=np.int64))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    data, owner = np.concatenate(parts), np.concatenate(owners)
    wanted = data["key"] >= 0
    data, owner = data[wanted], owner[wanted]
    long = pd.DataFrame({"run_id": pd.Categorical.from_codes(owner, categories=run_ids),
                         "key": pd.Categorical.from_codes(data["key"], categories=keys),
                         "step": data["step"], "timestamp": data["timestamp"], "value": data["value"],
                         "is_nan": data["is_nan"].astype(bool)})
    if _last_of_group(long).sum() < len(long):
        # a (run, key, step) logged twice: get_metric_history's order (timestamp, step, value as stored) decides
        long = long.sort_values(["run_id", "key", "timestamp", "step", "value"], kind="stable", ignore_index=True)
    nan = long.pop("is_nan").to_numpy()
    if nan.any():
        long["value"] = long["value"].mask(nan, np.nan)
    return long


def _client_histories(client: Any, runs: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    pairs: List[Tuple[str, str]] = [(run_id, key) for run_id, keys in runs.items() for key in keys]

    def one(pair: Tuple[str, str]) -> List[Tuple[str, str, int, int, float]]:
        return [(pair[0], m.key, m.step, m.timestamp, m.value) for m in client.get_metric_history(*pair)]

    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        rows = [row for part in pool.map(one, pairs) for row in part]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def metric_histories(client: Any, uri: str, runs: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Long frame (run_id, key, step, timestamp ms, value) of every value logged to the runs, `runs` mapping each
    run id to its metric keys; where a (run, key, step) was logged twice, its rows come in get_metric_history's
    order."""
    if not runs:
        return pd.DataFrame(columns=COLUMNS)
    if is_database_uri(uri):
        return _database_histories(uri, runs)
    return _client_histories(client, runs)


def _codes(column: pd.Series) -> Tuple[np.ndarray, np.ndarray]:
    """(codes, sorted distinct values) of a column."""
    cat = pd.Categorical(column)
    if not cat.ordered and list(cat.categories) != sorted(cat.categories):
        cat = cat.reorder_categories(sorted(cat.categories))
    return np.asarray(cat.codes, dtype=np.int64), np.asarray(cat.categories, dtype=object)


def _last_of_group(long: pd.DataFrame) -> np.ndarray:
    """Mask of the last row (in the frame's order) of each (run, key, step)."""
    runs, _ = _codes(long["run_id"])
    keys, _ = _codes(long["key"])
    steps = long["step"].to_numpy(dtype=np.int64)
    order = np.lexsort((np.arange(len(long)), steps, keys, runs))
    last = np.ones(len(order), dtype=bool)
    same = (np.diff(runs[order]) == 0) & (np.diff(keys[order]) == 0) & (np.diff(steps[order]) == 0)
    last[order[:-1][same]] = False
    return last


def wide_metrics(long: pd.DataFrame, trail_of: Mapping[str, str]) -> pd.DataFrame:
    """One row per (trail, step), sorted: a column per metric (sorted) and `time` (unix s, the step's latest
    timestamp). Where a metric was logged twice at a step, the last in history order is kept, as the journal keeps
    its last record. Runs missing from `trail_of` are left out."""
    runs, run_names = _codes(long["run_id"])
    tid_of_run = np.asarray([trail_of.get(r) for r in run_names], dtype=object)
    known = np.asarray([t is not None for t in tid_of_run], dtype=bool)
    keep = known[runs] if len(runs) else np.zeros(0, dtype=bool)
    if not keep.any():
        return pd.DataFrame(columns=["id", "step", "time"])
    mask = keep & _last_of_group(long)
    long = long[mask]
    tids = sorted({str(t) for t in tid_of_run[known]})
    tid_code = {t: i for i, t in enumerate(tids)}
    id_codes = np.asarray([tid_code.get(t, -1) for t in tid_of_run], dtype=np.int64)[runs[mask]]
    key_codes, keys = _codes(long["key"])
    steps = long["step"].to_numpy(dtype=np.int64)
    order = np.lexsort((steps, id_codes))
    id_sorted, step_sorted = id_codes[order], steps[order]
    new_row = np.ones(len(order), dtype=bool)
    new_row[1:] = (np.diff(id_sorted) != 0) | (np.diff(step_sorted) != 0)
    row_of = np.empty(len(order), dtype=np.int64)
    row_of[order] = np.cumsum(new_row) - 1
    starts = np.flatnonzero(new_row)
    table = np.full((len(starts), len(keys)), np.nan)
    table[row_of, key_codes] = long["value"].to_numpy(dtype=float)
    stamps = long["timestamp"].to_numpy(dtype=np.int64)[order]
    wide = pd.DataFrame(table, columns=[str(k) for k in keys])
    wide.insert(0, "time", np.maximum.reduceat(stamps, starts) / 1000.0)
    wide.insert(0, "step", step_sorted[starts])
    wide.insert(0, "id", np.asarray(tids, dtype=object)[id_sorted[starts]])
    return wide
