"""MLflow access for the harness: URI resolution, bounded HTTP behaviour, sqlite lock retries, run identity.

Why a layer at all: a trail must never wait minutes on a dead server (MLflow's default is 7 retries with backoff),
six trails share one sqlite file (writers collide with "database is locked"), and a relative sqlite URI must mean
the directory the sweep was launched from, whatever directory a backend starts the trail in.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, TypeVar

import harness
from harness.states import TrailState
from harness.tracking.config import DEFAULT_URI

T = TypeVar("T")

LOCK_RETRY_S = 60.0          # how long to keep retrying a sqlite write that keeps meeting a lock
_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error", "unable to open database")


def resolve_uri(uri: Optional[str], base: Path | str | None = None) -> str:
    """An absolute tracking URI: 'sqlite:///mlflow.db' becomes 'sqlite:////<base or cwd>/mlflow.db'."""
    uri = uri or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = Path(base or os.getcwd()) / uri[len(prefix):]
        return prefix + str(path.resolve())
    return uri


def is_database_uri(uri: str) -> bool:
    """Whether MLflow opens `uri` as a database store (SqlAlchemyStore): its scheme names a database engine."""
    from mlflow.store.db.db_types import DATABASE_ENGINES

    return uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_ENGINES


_HTTP_ENV_KEYS = ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER")
# The values the harness itself wrote, carried in the environment so that a child process (a trail, a sidecar)
# can tell them from values the user exported.
_WRITTEN_ENV = "HARNESS_MLFLOW_HTTP_WRITTEN"


def _user_http_env() -> Dict[str, str]:
    """The HTTP settings the user exported: present, and not the value the harness wrote there."""
    written = dict(item.split("=", 1) for item in os.environ.get(_WRITTEN_ENV, "").split(",") if "=" in item)
    return {key: os.environ[key] for key in _HTTP_ENV_KEYS
            if key in os.environ and os.environ[key] != written.get(key)}


def configure_http(timeout_s: float = 10.0, retries: int = 1) -> None:
    """Bound MLflow's HTTP client (read per request from the environment); an explicit user setting wins.

    Each call sets the values anew: a bound from an earlier client (a 2 s probe of a dead server) must not
    stay in force for a later one that asked for more.
    """
    user = _user_http_env()
    wanted = dict(zip(_HTTP_ENV_KEYS, (str(int(max(1, timeout_s))), str(int(max(0, retries))), "1", "0.5")))
    for key, value in wanted.items():
        os.environ[key] = user.get(key, value)
    os.environ[_WRITTEN_ENV] = ",".join(f"{key}={value}" for key, value in wanted.items() if key not in user)


def is_transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    # "table ... already exists": two trails created the schema of a fresh sqlite store at once
    return any(marker in text for marker in _TRANSIENT) or ("table" in text and "already exists" in text)


def retry_locked(fn: Callable[[], T], budget_s: float = LOCK_RETRY_S) -> T:
    """Call fn, retrying while sqlite reports a lock (another trail is writing); other errors propagate."""
    deadline = time.monotonic() + budget_s
    delay = 0.05
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - filtered just below
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def make_client(uri: str, timeout_s: float = 10.0, retries: int = 1) -> Any:
    """An MlflowClient for an absolute URI (mlflow is imported here: it takes seconds to import)."""
    configure_http(timeout_s, retries)
    from mlflow.tracking import MlflowClient

    return retry_locked(lambda: MlflowClient(tracking_uri=uri))


def get_experiment_id(client: Any, name: str) -> str:
    """The experiment's id, created on first use; safe when several trails race to create it."""

    def once() -> str:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            # The kind tag makes MLflow 3's UI open the experiment on its training-runs view, not the GenAI one.
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except Exception as exc:  # noqa: BLE001 - lost the race: someone else created it
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise exc
            return exp.experiment_id

    return retry_locked(once)


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

_CODE_VERSION: Optional[str] = None


def code_version() -> str:
    """`git rev-parse --short HEAD` of the harness checkout, else the package version."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        try:
            out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(harness.__file__).parent,
                                 capture_output=True, text=True, timeout=5)
            _CODE_VERSION = out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else harness.__version__
        except (OSError, subprocess.SubprocessError):
            _CODE_VERSION = harness.__version__
    return _CODE_VERSION


# harness trail state -> MLflow run status (TrailState.mlflow_status; a mapping for callers that look strings up)
RUN_STATUS: Dict[str, str] = {s.value: s.mlflow_status for s in TrailState}
