"""Schema of experiment tracking (tracking=mlflow|none)."""

from __future__ import annotations

from dataclasses import dataclass

# The one definition of the default store: a sqlite file resolved against the directory the sweep was launched from.
DEFAULT_URI = "sqlite:///mlflow.db"


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = DEFAULT_URI             # or an http(s):// mlflow server
    experiment: str = "harness"
    sync_every_s: float = 5.0          # live sync period inside a running trail
    # live sync runs in a sidecar "process" (mlflow's import and sqlite inserts stay out of the trail's process
    # and its GIL) or in a "thread" of the trail process
    live_mode: str = "process"
    http_timeout_s: float = 10.0       # per request to an mlflow server: a dead server must never stall a trail
    http_retries: int = 1              # MLflow's own HTTP retries per request (its default, 7, waits minutes)
    stop_timeout_s: float = 30.0       # longest a finished trail waits for its final sync before exiting
