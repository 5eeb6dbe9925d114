"""Schema of experiment tracking (tracking=mlflow|none)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# The one definition of the default store: a sqlite file resolved against the directory the sweep was launched from.
DEFAULT_URI = "sqlite:///mlflow.db"


LIVE = ("sweep", "trail", "off")
LIVE_MODES = ("process", "thread")


def sweep_experiment(prefix: str, sweep: str) -> str:
    """The MLflow experiment of one sweep: 'harness/demo'. Why one per sweep: MLflow's runs view is an experiment's
    runs, so a sweep's trails open as rows with their charts and nothing else mixed in; the prefix groups a project's
    sweeps in the experiment list and keeps two projects on one server apart."""
    return f"{prefix}/{sweep}" if prefix else sweep


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = DEFAULT_URI             # or an http(s):// mlflow server
    experiment: str = "harness"        # prefix of the sweeps' experiments: sweep demo tracks to "harness/demo"
    # who feeds MLflow while trails run: "sweep" — one tracker process per sweep follows every trail's journal
    # (for backends whose trails run on the sweep's machine; elsewhere each trail syncs itself, as with "trail");
    # "trail" — each trail's own sync; "off" — nobody until the sweep ends (then, and `harness sync`, catch up)
    live: str = "sweep"
    sync_every_s: float = 5.0          # live sync period
    # a trail's own sync runs in a sidecar "process" (mlflow's import and sqlite inserts stay out of the trail's
    # process and its GIL) or in a "thread" of the trail process
    live_mode: str = "process"
    http_timeout_s: float = 10.0       # per request to an mlflow server: a dead server must never stall a trail
    http_retries: int = 1              # MLflow's own HTTP retries per request (its default, 7, waits minutes)
    stop_timeout_s: float = 30.0       # longest a finished trail waits for its final sync before exiting
    # longest a sweep's end spends on MLflow in all (final pass, report, summary run), however many trails: what is
    # left then is caught up by `harness sync`
    deadline_s: float = 60.0
    heartbeat_timeout_s: float = 60.0  # a sweep tracker silent this long (stopped, hung) is replaced


def plain_config(cfg: Any) -> TrackingConfig:
    """A TrackingConfig from a DictConfig, a dataclass or a dict (processes get it as JSON)."""
    out = TrackingConfig()
    for f in fields(TrackingConfig):
        value = cfg.get(f.name) if hasattr(cfg, "get") else getattr(cfg, f.name, None)
        if value is not None:
            setattr(out, f.name, value)
    return out
