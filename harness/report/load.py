"""Load a sweep into two pandas frames, from the run dirs' journals or from MLflow.

Both loaders return the same shape, so every table, plot and finding is computed once, whatever the source:
- `trails`: one row per trail (trail name, id, axes, state, whether its journal is complete, reason, started,
  ended; from the trail's identity (harness.spec.identity): staleness mode, algorithm as `name/variant` and
  `setting`, the systems axes its name shows — the report shows the same axes; from its config: engine and eval-set
  size — how many eval problems an eval reward is a fraction of — and `config`, the settings in which its config
  differs from other trails' beyond the axes, so trails of different configs never share a cell);
- `metrics`: one row per (trail id, step), a column per metric name plus `time` (unix seconds);
- `seed_roles`: seed -> exploratory | confirmatory, as the sweep file declared them (sweep.json's `seeds`); empty
  when it declared none.
Trails are keyed by id, not name: two trails may share a name when they differ only in a hyperparameter.
The journal is the source of truth; the MLflow loader exists to read a sweep whose run dirs live elsewhere.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.errors import HarnessError
from harness.report.mlflow_history import metric_histories, wide_metrics
from harness.spec.identity import TrailIdentity
from harness.spec.trails import NON_IDENTITY_KEYS
from harness.store.journal_columns import read_table
from harness.store.journal_index import JournalIndex, Ranges, journal_key
from harness.store.rundir import RunDir, Status, Tag, TrailMeta, describe_lost
from harness.store.states import TrailState
from harness.store.sweepdir import read_sweep_meta, trail_dirs
from harness.tracking.config import DEFAULT_URI, sweep_experiment

AXES = ("stale", "alloc", "rollout", "algo", "seed")
CONFIG_COLUMNS = ("engine", "mode", "setting", "eval_size", "config")
TRAIL_COLUMNS = ("trail", "id", *AXES, "state", "complete", "reason", "submitted", "started", "ended",
                 *CONFIG_COLUMNS)
# keys a cell's trails may differ in, or that have a column of their own: every other difference splits a cell
NOT_CONFIG = (*NON_IDENTITY_KEYS, "stale", "alloc", "rollout", "seed", "algo.name", "algo.variant",
              "engine.staleness_mode")


@dataclass
class SweepData:
    """A sweep's trails and metric curves, where they were read from, and caveats about the reading (both said
    in the report)."""

    name: str
    trails: pd.DataFrame
    metrics: pd.DataFrame
    source: str
    notes: List[str] = field(default_factory=list)
    seed_roles: Dict[int, str] = field(default_factory=dict)
    description: str = ""       # the sweep file's description: what the sweep asks, and what it can show


def sweep_description(sweep_dir: Path) -> str:
    return str(read_sweep_meta(sweep_dir).get("description") or "")


def _axis(value: Any, key: str) -> Any:
    """Axes arrive as ints from trail.json and as strings from MLflow params: normalise to one type."""
    if key in ("stale", "rollout", "seed"):
        try:
            return int(value)
        except (TypeError, ValueError):
            return pd.NA
    return None if value is None else str(value)


def config_fields(cfg: Dict[str, Any], engine: Any = None) -> Dict[str, Any]:
    """engine and eval_size from a trail's config (no eval-set interval without one)."""
    raw_eng = cfg.get("engine")
    eng: Dict[str, Any] = raw_eng if isinstance(raw_eng, dict) else {}
    size = pd.to_numeric(eng.get("eval_size"), errors="coerce")
    return {"engine": str(eng.get("name") or engine or "") or None,
            "eval_size": float(size) if size is not None and math.isfinite(size) else math.nan}


def identity_fields(identity: Optional[TrailIdentity], axes: Dict[str, Any]) -> Dict[str, Any]:
    """The axes, staleness mode, algorithm (`name/variant`) and shown systems axes of a trail, from its identity;
    a trail without one (no axes recorded) keeps what `axes` holds, in mode `unknown` (every axis shown)."""
    if identity is None:
        row = {k: _axis(axes.get(k), k) for k in AXES}
        return row | {"mode": "unknown", "setting": " ".join(
            p for p in (row["alloc"], f"rollout {row['rollout']}" if pd.notna(row["rollout"]) else None) if p)}
    return {"stale": identity.stale, "alloc": identity.alloc, "rollout": identity.rollout,
            "algo": identity.algo_path, "seed": identity.seed, "mode": identity.mode, "setting": identity.setting()}


def params_identity(params: Dict[str, str]) -> Optional[TrailIdentity]:
    """A trail's identity from its MLflow params alone (its run dir is not at hand): the axes, `algo.*` and
    `engine.*` params."""
    cfg = {"algo": {"name": params.get("algo.name"), "variant": params.get("algo.variant")},
           "engine": {"name": params.get("engine.name"), "staleness_mode": params.get("engine.staleness_mode")}}
    try:
        return TrailIdentity.from_fields(params, cfg)
    except (KeyError, TypeError, ValueError):
        return None


def flat_config(cfg: Dict[str, Any], prefix: str = "") -> Dict[str, str]:
    """A config as dotted keys and their values as text, less the keys in NOT_CONFIG."""
    out: Dict[str, str] = {}
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if path in NOT_CONFIG:
            continue
        if isinstance(value, dict):
            out.update(flat_config(value, f"{path}."))
        else:
            out[path] = str(value)
    return out


def config_labels(configs: Dict[str, Dict[str, str]]) -> Dict[str, str]:
    """trail id -> 'engine.lr=0.5' : the settings (flat_config) in which trails' configs differ, for each trail its
    own values of them ('' where every trail agrees). Why: trails that differ in anything but the seed must never
    be pooled as seeds of one cell, however the sweep came to hold them (a rerun with --extend, a hand-made
    sweep)."""
    keys = sorted({k for flat in configs.values() for k in flat})
    differ = [k for k in keys if len({flat[k] for flat in configs.values() if k in flat}) > 1]
    return {tid: ", ".join(f"{k}={flat[k]}" for k in differ if k in flat) for tid, flat in configs.items()}


def _trails_frame(rows: List[Dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(TRAIL_COLUMNS))
    frame["eval_size"] = pd.to_numeric(frame["eval_size"], errors="coerce").astype(float)
    for key in ("stale", "rollout", "seed"):
        frame[key] = frame[key].astype("Int64")
    for key in ("submitted", "started", "ended"):
        frame[key] = pd.to_numeric(frame[key], errors="coerce").astype(float)
    frame["reason"] = frame["reason"].fillna("").astype(str)
    frame["complete"] = frame["complete"].fillna(True).astype(bool)
    frame["config"] = frame["config"].fillna("").astype(str)
    return frame


def _metrics_frame(frames: List[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=["id", "step", "time"])
    metrics = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
    metrics["step"] = metrics["step"].astype(int)
    if _ordered(metrics):  # as journals are: one step at most once, in order (a sort of a million rows is a second)
        return metrics.reset_index(drop=True)
    # resume truncates the journal so a step is never written twice; keep the last record anyway, defensively
    metrics = metrics.drop_duplicates(["id", "step"], keep="last")
    return metrics.sort_values(["id", "step"], kind="stable").reset_index(drop=True)


def _ordered(metrics: pd.DataFrame) -> bool:
    """Rows already sorted by (id, step) with no pair twice."""
    codes, ids = pd.factorize(metrics["id"])
    if not (np.diff(codes) >= 0).all() or list(ids) != sorted(ids):
        return False
    same = np.diff(codes) == 0
    return bool((np.diff(metrics["step"].to_numpy())[same] > 0).all())


def _journal_metrics(tables: List[tuple[str, pa.Table]]) -> pd.DataFrame:
    """One metrics frame from the trails' journal tables: joined in pyarrow and converted once (converting a
    thousand small tables costs more than reading them)."""
    tables = sorted(((tid, t) for tid, t in tables if t.num_rows), key=lambda pair: pair[0])
    if not tables:
        return _metrics_frame([])
    with_id = [t.add_column(0, "id", pa.array([tid] * t.num_rows, pa.string())) for tid, t in tables]
    try:
        whole = pa.concat_tables(with_id, promote_options="default").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a metric logged as text by one trail and numbers by another
        whole = pd.concat([t.to_pandas() for t in with_id], ignore_index=True, sort=False)
    return _metrics_frame([whole])


def sweep_name(sweep_dir: Path) -> str:
    return str(read_sweep_meta(sweep_dir).get("name") or Path(sweep_dir).name)


def seed_roles(sweep_dir: Path) -> Dict[int, str]:
    """seed -> role from sweep.json's `seeds` ({role: [seed, ...]}, written from the sweep file's `seeds:`)."""
    declared = read_sweep_meta(sweep_dir).get("seeds") or {}
    if not isinstance(declared, dict):
        return {}
    return {int(seed): str(role) for role, seeds in declared.items() if isinstance(seeds, list)
            for seed in seeds if isinstance(seed, int) and not isinstance(seed, bool)}


def journal_state(run_dir: RunDir, status: Status, ranges: Ranges) -> tuple[bool, str]:
    """(complete, reason) as the report shows them. A finished trail whose journal lacks steps is not complete, and
    its reason says which steps it lacks: its curves are not the run's, so it is shown but never averaged, like an
    unfinished one. RunDir's rule, on the steps already read (`ranges`, as the journal index keeps them: a second
    parse of every journal would double the report's loading time)."""
    lost = run_dir.lost_steps(ranges, status)
    return (not lost), (describe_lost(lost, status.step) if lost else status.reason)


def _read_trail(run_dir: Path) -> tuple[TrailMeta, Optional[TrailIdentity], Status, Dict[str, Any],
                                        Optional[List[int]], pa.Table]:
    record = RunDir(run_dir)
    key = journal_key(run_dir)  # before the journal is read: what the index learns is true of that version
    meta = record.meta()
    return meta, record.identity(meta), record.status(), record.config(), key, read_table(run_dir)


def load_journals(sweep_dir: Path | str) -> SweepData:
    """Read trail.json, status.json and journal.jsonl of every run dir of the sweep. Journals are read column-wise
    (harness.store.journal_columns), several at once (pyarrow parses outside the GIL), and the steps each holds are kept
    in the sweep's journal index for `harness status`."""
    sweep_dir = Path(sweep_dir)
    rows: List[Dict[str, Any]] = []
    tables: List[tuple[str, pa.Table]] = []
    configs: Dict[str, Dict[str, str]] = {}
    index = JournalIndex(sweep_dir)
    dirs = trail_dirs(sweep_dir)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        read = list(pool.map(_read_trail, dirs))
    for run_dir, (meta, identity, status, cfg, key, table) in zip(dirs, read, strict=False):
        complete, reason = journal_state(RunDir(run_dir), status,
                                         index.learn(run_dir, key, table.column("step").to_numpy()))
        rows.append({
            "trail": meta.name, "id": meta.id, **identity_fields(identity, meta.axes),
            "state": status.state.value, "complete": complete, "reason": reason, "submitted": status.submitted,
            "started": status.started, "ended": status.ended, **config_fields(cfg, meta.engine),
        })
        configs[meta.id] = flat_config(cfg)
        tables.append((meta.id, table))
    index.save()
    return SweepData(sweep_name(sweep_dir), _trails_frame(_with_labels(rows, configs)), _journal_metrics(tables),
                     f"journals in {sweep_dir}", seed_roles=seed_roles(sweep_dir),
                     description=sweep_description(sweep_dir))


def _with_labels(rows: List[Dict[str, Any]], configs: Dict[str, Dict[str, str]]) -> List[Dict[str, Any]]:
    labels = config_labels(configs)
    return [row | {"config": labels.get(row["id"], "")} for row in rows]


def tracking_target(sweep_dir: Path) -> tuple[str, str]:
    """(tracking uri, experiment prefix) of the sweep. The URI is the one its tracking used, resolved once when it
    was launched (sweep.json's `mlflow_uri`); for a sweep that never recorded one, the trail configs' URI resolved
    against the directory it was launched from. Every trail of a sweep must agree on them."""
    from harness.tracking.client import resolve_uri

    targets = set()
    for run_dir in trail_dirs(sweep_dir):
        tracking = RunDir(run_dir).config().get("tracking")
        if isinstance(tracking, dict):
            targets.add((str(tracking.get("uri", DEFAULT_URI)), str(tracking.get("experiment", "harness"))))
    if not targets:
        raise HarnessError(f"no trail config.yaml under {sweep_dir}: cannot tell which MLflow store holds the sweep")
    if len(targets) > 1:
        raise HarnessError(f"trails of {sweep_dir} track to different MLflow stores: {sorted(targets)}")
    uri, prefix = targets.pop()
    meta = read_sweep_meta(sweep_dir)
    if meta.get("mlflow_uri"):
        return str(meta["mlflow_uri"]), prefix
    return resolve_uri(uri, meta.get("launched_from") or sweep_dir.resolve().parent.parent), prefix


def open_for_reading(uri: str, name: str) -> None:
    """A store to read from must be there and whole: nothing is created (an absent sqlite file stays absent)."""
    from harness.tracking.client import check_store, sqlite_path, store_state

    path = sqlite_path(uri)
    if path is not None and store_state(path) == "absent":
        raise HarnessError(f"no MLflow store at {path} (the sweep's tracking URI {uri}); `harness sync {name}` logs "
                           f"the sweep there from its journals")
    check_store(uri, name)


def _search_trail_runs(client: Any, experiment_id: str, name: str, sweep_id: str) -> List[Any]:
    """All trail runs of the sweep (the sweep's summary run carries the sweep tag too, but no trail id); where the
    sweep has an id, only the runs that carry it: a deleted sweep's runs, or another sweep's of the same name, are
    never read as this one's."""
    flt = f"tags.`{Tag.SWEEP}` = '{name}'" + (f" and tags.`{Tag.SWEEP_ID}` = '{sweep_id}'" if sweep_id else "")
    runs: List[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=flt, max_results=1000, page_token=token)
        runs.extend(r for r in page if Tag.TRAIL_ID in r.data.tags)
        token = page.token
        if not token:
            return runs


def _earliest(*times: float) -> float:
    finite = [t for t in times if math.isfinite(t)]
    return min(finite) if finite else math.nan


def load_mlflow(sweep_dir: Path | str, uri: Optional[str] = None) -> SweepData:
    """Read the sweep's trail runs from its experiment: tags = sweep/trail name and id/status, params = axes.

    Status comes from the `harness.status` tag and the end from the run's end time. Two fields MLflow need not
    hold are taken from a `harness.reason` / `harness.started` tag when present, else from the trail's local
    status.json (the sweep dir is at hand anyway: it holds the tracking config): the reason a trail failed, and
    when it started — a run is created when tracking first reaches it, after the trail's start-up or much later
    by `harness sync`. Without either, the start is the run's start or its first metric, whichever is earlier.
    """
    from mlflow.tracking import MlflowClient

    from harness.tracking.client import stray_dirs_removed

    sweep_dir = Path(sweep_dir)
    name = sweep_name(sweep_dir)
    target_uri, prefix = tracking_target(sweep_dir)
    experiment = sweep_experiment(prefix, name)
    uri = uri or target_uri
    open_for_reading(uri, name)
    with stray_dirs_removed(uri):
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise HarnessError(f"MLflow experiment '{experiment}' not found at {uri} (run `harness sync {name}` first)")
    latest: Dict[str, Any] = {}
    sweep_id = str(read_sweep_meta(sweep_dir).get("sweep_id") or "")
    for run in _search_trail_runs(client, exp.experiment_id, name, sweep_id):
        tid = run.data.tags[Tag.TRAIL_ID]
        if tid not in latest or run.info.start_time > latest[tid].info.start_time:
            latest[tid] = run  # a trail synced twice into fresh runs: the newest wins
    local = {RunDir(d).meta().id: RunDir(d) for d in trail_dirs(sweep_dir)}
    histories = metric_histories(client, uri, {run.info.run_id: list(run.data.metrics) for run in latest.values()})
    metrics = _metrics_frame([wide_metrics(histories, {run.info.run_id: tid for tid, run in latest.items()})])
    first_time = metrics.groupby("id")["time"].min().to_dict() if len(metrics) else {}
    rows: List[Dict[str, Any]] = []
    configs: Dict[str, Dict[str, str]] = {}
    for tid, run in latest.items():
        tags, params = run.data.tags, run.data.params
        status = local[tid].status() if tid in local else Status()
        reason = tags.get(Tag.REASON) or status.reason
        end = run.info.end_time
        # a run created by a later `harness sync` starts after the trail did: its first metric is the better bound
        start = float(pd.to_numeric(tags.get(Tag.STARTED, status.started), errors="coerce"))
        if not math.isfinite(start):
            start = _earliest(run.info.start_time / 1000.0 if run.info.start_time else math.nan,
                              float(first_time.get(tid, math.nan)))
        cfg = local[tid].config() if tid in local else {}
        identity = local[tid].identity() if tid in local else params_identity(params)
        rows.append({
            "trail": tags.get(Tag.TRAIL) or run.info.run_name or tid, "id": tid,
            **identity_fields(identity, params),
            "state": tags.get(Tag.STATUS, TrailState.PENDING.value), "complete": True,
            "reason": reason, "submitted": status.submitted if status.submitted is not None else math.nan,
            "started": start, "ended": end / 1000.0 if end else math.nan,
            **config_fields(cfg, local[tid].meta().engine if tid in local else tags.get(Tag.ENGINE)),
        })
        configs[tid] = flat_config(cfg) if cfg else \
            {k: v for k, v in params.items() if k.startswith(("algo.", "engine.")) and k not in NOT_CONFIG}
    missing = sorted(record.meta().name for tid, record in local.items() if tid not in latest)
    notes = []
    if missing:
        notes.append(f"{len(missing)} trails of the sweep have no run in MLflow and are absent from this report "
                     f"(`harness sync {name}` brings them in): " + "; ".join(f"`{m}`" for m in missing) + ".")
    return SweepData(name, _trails_frame(_with_labels(rows, configs)), metrics,
                     f"MLflow {uri}, experiment '{experiment}'", notes, seed_roles(sweep_dir),
                     sweep_description(sweep_dir))


def load_sweep(sweep_dir: Path | str, source: str = "journal") -> SweepData:
    if source == "journal":
        return load_journals(sweep_dir)
    if source == "mlflow":
        return load_mlflow(sweep_dir)
    raise HarnessError(f"invalid report source {source!r} (allowed: journal, mlflow)")
