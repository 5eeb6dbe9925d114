"""Load a sweep into two pandas frames, from the run dirs' journals or from MLflow.

Both loaders return the same shape, so every table, plot and finding is computed once, whatever the source:
- `trails`: one row per trail (trail name, id, axes, state, reason, started, ended, and from the trail's config:
  engine, staleness mode, algo/variant, eval-set size — the report needs them to say which axes act and how many
  eval problems an eval reward is a fraction of);
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
import yaml

from harness.axes import staleness_mode
from harness.errors import HarnessError
from harness.journal_columns import read_table
from harness.journal_index import JournalIndex, Ranges, journal_key, missing_in
from harness.report.mlflow_history import metric_histories, wide_metrics
from harness.rundir import describe_lost, read_status
from harness.states import FINISHED, TrailState
from harness.sweepdir import read_sweep_meta, read_trail_meta, trail_dirs
from harness.tracking.config import DEFAULT_URI, sweep_experiment

AXES = ("stale", "alloc", "rollout", "algo", "seed")
CONFIG_COLUMNS = ("engine", "mode", "variant", "eval_size")
TRAIL_COLUMNS = ("trail", "id", *AXES, "state", "reason", "submitted", "started", "ended", *CONFIG_COLUMNS)
INCOMPLETE = "incomplete"  # the report's state for a done/diverged trail whose journal lost records


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


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def config_yaml(run_dir: Path) -> Dict[str, Any]:
    """The trail's config.yaml as plain data ({} without one). It is saved resolved, so a plain YAML parser reads it,
    ~50× cheaper than OmegaConf per trail."""
    try:
        with open(Path(run_dir) / "config.yaml", encoding="utf-8") as fh:
            cfg = yaml.load(fh, Loader=_LOADER) or {}
    except (FileNotFoundError, yaml.YAMLError):
        cfg = {}
    return cfg if isinstance(cfg, dict) else {}


def config_fields(run_dir: Path, engine: Any = None) -> Dict[str, Any]:
    """engine, staleness mode (fixed | async | areal | unknown), algo/variant and eval_size from config.yaml.

    Without a config the mode is `unknown` and the report shows every axis and no eval-set interval."""
    cfg = config_yaml(run_dir)
    raw_eng, raw_algo = cfg.get("engine"), cfg.get("algo")
    eng: Dict[str, Any] = raw_eng if isinstance(raw_eng, dict) else {}
    algo: Dict[str, Any] = raw_algo if isinstance(raw_algo, dict) else {}
    engine = str(eng.get("name") or engine or "")
    mode = staleness_mode({**eng, "name": engine})
    size = pd.to_numeric(eng.get("eval_size"), errors="coerce")
    return {"engine": engine or None, "mode": mode,
            "variant": f"{algo['name']}/{algo['variant']}" if algo.get("name") and algo.get("variant") else None,
            "eval_size": float(size) if size is not None and math.isfinite(size) else math.nan}


def _trails_frame(rows: List[Dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(TRAIL_COLUMNS))
    frame["eval_size"] = pd.to_numeric(frame["eval_size"], errors="coerce").astype(float)
    for key in ("stale", "rollout", "seed"):
        frame[key] = frame[key].astype("Int64")
    for key in ("submitted", "started", "ended"):
        frame[key] = pd.to_numeric(frame[key], errors="coerce").astype(float)
    frame["reason"] = frame["reason"].fillna("").astype(str)
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


def journal_state(status: Dict[str, Any], ranges: Ranges) -> tuple[str, str]:
    """(state, reason) as the report shows them. A finished trail whose journal lacks steps is `incomplete`, with
    the steps it lacks: its curves are not the run's, so it is shown but never averaged, like an unfinished one.
    The same test as rundir.lost_steps, on the steps already read (`ranges`, as the journal index keeps them: a
    second parse of every journal would double the report's loading time)."""
    state = str(status.get("state", TrailState.PENDING.value))
    if state not in FINISHED or status.get("step") is None:
        return state, status.get("reason") or ""
    lost = missing_in(ranges, int(status["step"]))
    if not lost:
        return state, status.get("reason") or ""
    lacks = describe_lost(lost, status["step"]).split(": ", 1)[-1]
    return INCOMPLETE, f"{state} but {lacks}"


def _read_trail(run_dir: Path) -> tuple[Dict[str, Any], Dict[str, Any], Optional[List[int]], pa.Table]:
    key = journal_key(run_dir)  # before the journal is read: what the index learns is true of that version
    return read_trail_meta(run_dir), read_status(run_dir), key, read_table(run_dir)


def load_journals(sweep_dir: Path | str) -> SweepData:
    """Read trail.json, status.json and journal.jsonl of every run dir of the sweep. Journals are read column-wise
    (harness.journal_columns), several at once (pyarrow parses outside the GIL), and the steps each holds are kept
    in the sweep's journal index for `harness status`."""
    sweep_dir = Path(sweep_dir)
    rows: List[Dict[str, Any]] = []
    tables: List[tuple[str, pa.Table]] = []
    index = JournalIndex(sweep_dir)
    dirs = trail_dirs(sweep_dir)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        read = list(pool.map(_read_trail, dirs))
    for run_dir, (meta, status, key, table) in zip(dirs, read, strict=False):
        axes = meta.get("axes", {})
        name = str(meta.get("name") or run_dir.name)
        tid = str(meta.get("id") or run_dir.name)
        state, reason = journal_state(status, index.learn(run_dir, key, table.column("step").to_numpy()))
        rows.append({
            "trail": name, "id": tid, **{k: _axis(axes.get(k), k) for k in AXES}, "state": state, "reason": reason,
            "submitted": status.get("submitted"), "started": status.get("started"), "ended": status.get("ended"),
            **config_fields(run_dir, meta.get("engine")),
        })
        tables.append((tid, table))
    index.save()
    return SweepData(sweep_name(sweep_dir), _trails_frame(rows), _journal_metrics(tables),
                     f"journals in {sweep_dir}", seed_roles=seed_roles(sweep_dir),
                     description=sweep_description(sweep_dir))


def tracking_target(sweep_dir: Path) -> tuple[str, str]:
    """(tracking uri, experiment prefix) from the trail configs; every trail of a sweep must agree on them."""
    targets = set()
    for run_dir in trail_dirs(sweep_dir):
        if (run_dir / "config.yaml").is_file():
            tracking = config_yaml(run_dir).get("tracking") or {}
            targets.add((str(tracking.get("uri", DEFAULT_URI)), str(tracking.get("experiment", "harness"))))
    if not targets:
        raise HarnessError(f"no trail config.yaml under {sweep_dir}: cannot tell which MLflow store holds the sweep")
    if len(targets) > 1:
        raise HarnessError(f"trails of {sweep_dir} track to different MLflow stores: {sorted(targets)}")
    return targets.pop()


def _search_trail_runs(client: Any, experiment_id: str, name: str) -> List[Any]:
    """All trail runs of the sweep (the sweep's summary run carries the sweep tag too, but no trail id)."""
    runs: List[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`harness.sweep` = '{name}'",
                                  max_results=1000, page_token=token)
        runs.extend(r for r in page if "harness.trail_id" in r.data.tags)
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

    sweep_dir = Path(sweep_dir)
    name = sweep_name(sweep_dir)
    target_uri, prefix = tracking_target(sweep_dir)
    experiment = sweep_experiment(prefix, name)
    uri = uri or target_uri
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise HarnessError(f"MLflow experiment '{experiment}' not found at {uri} (run `harness sync {name}` first)")
    latest: Dict[str, Any] = {}
    for run in _search_trail_runs(client, exp.experiment_id, name):
        tid = run.data.tags["harness.trail_id"]
        if tid not in latest or run.info.start_time > latest[tid].info.start_time:
            latest[tid] = run  # a trail synced twice into fresh runs: the newest wins
    local = {str(read_trail_meta(d).get("id") or d.name): d for d in trail_dirs(sweep_dir)}
    histories = metric_histories(client, uri, {run.info.run_id: list(run.data.metrics) for run in latest.values()})
    metrics = _metrics_frame([wide_metrics(histories, {run.info.run_id: tid for tid, run in latest.items()})])
    first_time = metrics.groupby("id")["time"].min().to_dict() if len(metrics) else {}
    rows: List[Dict[str, Any]] = []
    for tid, run in latest.items():
        tags, params = run.data.tags, run.data.params
        status = read_status(local[tid]) if tid in local else {}
        reason = tags.get("harness.reason") or status.get("reason") or ""
        end = run.info.end_time
        # a run created by a later `harness sync` starts after the trail did: its first metric is the better bound
        start = float(pd.to_numeric(tags.get("harness.started", status.get("started")), errors="coerce"))
        if not math.isfinite(start):
            start = _earliest(run.info.start_time / 1000.0 if run.info.start_time else math.nan,
                              float(first_time.get(tid, math.nan)))
        rows.append({
            "trail": tags.get("harness.trail") or run.info.run_name or tid, "id": tid,
            **{k: _axis(params.get(k), k) for k in AXES},
            "state": tags.get("harness.status", TrailState.PENDING.value),
            "reason": reason, "submitted": status.get("submitted", math.nan),
            "started": start, "ended": end / 1000.0 if end else math.nan,
            **(config_fields(local[tid], read_trail_meta(local[tid]).get("engine")) if tid in local
               else config_fields(sweep_dir / f".absent-{tid}", tags.get("harness.engine"))),
        })
    missing = sorted(str(read_trail_meta(d).get("name") or d.name) for tid, d in local.items() if tid not in latest)
    notes = []
    if missing:
        notes.append(f"{len(missing)} trails of the sweep have no run in MLflow and are absent from this report "
                     f"(`harness sync {name}` brings them in): " + "; ".join(f"`{m}`" for m in missing) + ".")
    return SweepData(name, _trails_frame(rows), metrics, f"MLflow {uri}, experiment '{experiment}'",
                     notes, seed_roles(sweep_dir), sweep_description(sweep_dir))


def load_sweep(sweep_dir: Path | str, source: str = "journal") -> SweepData:
    if source == "journal":
        return load_journals(sweep_dir)
    if source == "mlflow":
        return load_mlflow(sweep_dir)
    raise HarnessError(f"invalid report source {source!r} (allowed: journal, mlflow)")
