"""Every metric history of many MLflow runs at once, for a report read from MLflow.

Why not MlflowClient.get_metric_history: it reads one (run, metric) history a call, so a sweep of 1,000 trails ×
10 metrics is 10,000 calls, each a full ORM query (a database store) or an HTTP round trip (a server). A database
store (sqlite, PostgreSQL, MySQL, MS SQL) is read here through MLflow's own SqlAlchemyStore — its engine, session
and table model — with one column-only query per run. Any other store (an `mlflow server`) has no bulk read of whole
histories in MLflow's client, so its histories are read per run and metric in a thread pool: the calls wait on the
server, not on this process. Each run's values are pivoted on their own (thousands of rows: no sort of the whole
sweep's ten million).
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd

from harness.tracking.client import is_database_uri, stray_dirs_removed

CLIENT_THREADS = 8
ROW = np.dtype([("key", "i8"), ("step", "i8"), ("timestamp", "i8"), ("value", "f8"), ("is_nan", "i8")])
CLIENT_ROW = np.dtype([("key", "i8"), ("step", "i8"), ("timestamp", "i8"), ("value", "f8")])


@dataclass
class History:
    """One run's logged values, a row each: key (an index into the keys of its Histories), step, timestamp (ms) and
    value (NaN where MLflow holds NaN)."""

    key: np.ndarray
    step: np.ndarray
    timestamp: np.ndarray
    value: np.ndarray


@dataclass
class Histories:
    keys: List[str]
    runs: Dict[str, History]


def _database_histories(uri: str, runs: Mapping[str, Sequence[str]]) -> Histories:
    """One query per run, its keys numbered in SQL: each row reaches Python as a tuple of small numbers, converted
    to numpy at once (SQLAlchemy Row objects, or a string per row, cost more than the query)."""
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import case, select

    with stray_dirs_removed(uri):
        store = SqlAlchemyStore(uri, tempfile.gettempdir())  # the engine is MLflow's, shared with the client's store
    keys = sorted({k for ks in runs.values() for k in ks})
    number = {k: i for i, k in enumerate(keys)}
    out: Dict[str, History] = {}
    with store.ManagedSessionMaker() as session:
        for run_id, run_keys in runs.items():
            if not run_keys:
                continue
            code = case({k: number[k] for k in run_keys}, value=SqlMetric.key, else_=-1)
            query = select(code, SqlMetric.step, SqlMetric.timestamp, SqlMetric.value, SqlMetric.is_nan).where(
                SqlMetric.run_uuid == run_id)
            rows = session.connection().execute(query).cursor.fetchall()  # the driver's tuples, as they are
            data = np.array(rows, dtype=ROW)
            data = data[data["key"] >= 0]
            value = data["value"].copy()
            value[data["is_nan"] != 0] = np.nan
            out[run_id] = History(data["key"], data["step"], data["timestamp"], value)
    return Histories(keys, out)


def _client_histories(client: Any, runs: Mapping[str, Sequence[str]]) -> Histories:
    keys = sorted({k for ks in runs.values() for k in ks})
    number = {k: i for i, k in enumerate(keys)}
    pairs: List[Tuple[str, str]] = [(run_id, key) for run_id, run_keys in runs.items() for key in run_keys]

    def one(pair: Tuple[str, str]) -> List[Tuple[int, int, int, float]]:
        return [(number[pair[1]], m.step, m.timestamp, m.value) for m in client.get_metric_history(*pair)]

    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        parts = dict(zip(pairs, pool.map(one, pairs), strict=True))
    out: Dict[str, History] = {}
    for run_id, run_keys in runs.items():
        data = np.array([row for key in run_keys for row in parts[(run_id, key)]], dtype=CLIENT_ROW)
        out[run_id] = History(data["key"], data["step"], data["timestamp"], data["value"])
    return Histories(keys, out)


def metric_histories(client: Any, uri: str, runs: Mapping[str, Sequence[str]]) -> Histories:
    """Every value logged to the runs, `runs` mapping each run id to its metric keys."""
    if not runs:
        return Histories([], {})
    if is_database_uri(uri):
        return _database_histories(uri, runs)
    return _client_histories(client, runs)


def _latest_only(h: History) -> History:
    """One value per (key, step): the last in get_metric_history's order (timestamp, step, value as stored: NaN as
    0), as the journal keeps its last record of a step."""
    stored = np.where(np.isnan(h.value), 0.0, h.value)
    order = np.lexsort((stored, h.timestamp, h.step, h.key))
    key, step = h.key[order], h.step[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (key[1:] != key[:-1]) | (step[1:] != step[:-1])
    keep = order[last]
    return History(h.key[keep], h.step[keep], h.timestamp[keep], h.value[keep])


def _pivot(h: History, width: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, time of each step in s, steps × keys table of values) of one run."""
    order = np.argsort(h.step, kind="stable")
    step = h.step[order]
    new_row = np.ones(len(step), dtype=bool)
    new_row[1:] = step[1:] != step[:-1]
    row = np.cumsum(new_row) - 1
    starts = np.flatnonzero(new_row)
    cell = row * width + h.key[order]
    if np.bincount(cell, minlength=1).max(initial=0) > 1:  # a (key, step) logged twice
        return _pivot(_latest_only(h), width)
    table = np.full((len(starts), width), np.nan)
    table[row, h.key[order]] = h.value[order]
    return step[starts], np.maximum.reduceat(h.timestamp[order], starts) / 1000.0, table


def wide_metrics(histories: Histories, trail_of: Mapping[str, str]) -> pd.DataFrame:
    """One row per (trail, step), sorted: a column per metric (sorted) and `time` (unix s, the step's latest
    timestamp). Where a metric was logged twice at a step, the last in history order is kept. Runs missing from
    `trail_of` are left out."""
    width = len(histories.keys)
    blocks = [(trail_of[run_id], _pivot(h, width)) for run_id, h in histories.runs.items()
              if run_id in trail_of and len(h.step)]
    if not blocks:
        return pd.DataFrame(columns=["id", "step", "time"])
    blocks.sort(key=lambda block: block[0])
    ids = np.repeat(np.array([tid for tid, _ in blocks], dtype=object), [len(b[0]) for _, b in blocks])
    wide = pd.DataFrame(np.concatenate([b[2] for _, b in blocks]), columns=histories.keys)
    wide.insert(0, "time", np.concatenate([b[1] for _, b in blocks]))
    wide.insert(0, "step", np.concatenate([b[0] for _, b in blocks]))
    wide.insert(0, "id", ids)
    return wide
