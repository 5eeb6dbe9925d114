"""MLflow access for the harness: URI resolution, bounded HTTP behaviour, sqlite lock retries, run identity.

Why a layer at all: a trail must never wait minutes on a dead server (MLflow's default is 7 retries with backoff),
six trails share one sqlite file (writers collide with "database is locked"), and a relative sqlite URI must mean
the directory the sweep was launched from, whatever directory a backend starts the trail in.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar
from urllib.parse import quote, unquote

import harness
from harness.errors import HarnessError
from harness.store.states import TrailState
from harness.tracking.config import DEFAULT_URI

T = TypeVar("T")

LOCK_RETRY_S = 60.0          # how long to keep retrying a sqlite write that keeps meeting a lock
_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error", "unable to open database")


SQLITE = "sqlite:///"


URI_CHARACTERS = "%?#"  # what a path must escape in a URI (SQLAlchemy unescapes a sqlite URI's path)


def escape_path(path: str) -> str:
    """A path as a sqlite URI holds it: '%', '?' and '#' escaped, nothing else (a space or a letter beyond ASCII
    stays as it is, so MLflow's own reading of the URI finds the same directory)."""
    return "".join(f"%{ord(ch):02X}" if ch in URI_CHARACTERS else ch for ch in path)


def resolve_uri(uri: Optional[str], base: Path | str | None = None) -> str:
    """An absolute tracking URI: 'sqlite:///mlflow.db' becomes 'sqlite:////<base or cwd>/mlflow.db', its path
    escaped, so a directory named with '?', '#' or '%' is a path, not a URI's query or fragment."""
    uri = uri or DEFAULT_URI
    if uri.startswith(SQLITE) and not uri.startswith(SQLITE + "/"):
        path = Path(base or os.getcwd()) / unquote(uri[len(SQLITE):])
        return SQLITE + escape_path(str(path.resolve()))
    return uri


@contextmanager
def stray_dirs_removed(uri: str) -> Iterator[None]:
    """Around MLflow opening a sqlite store: MLflow makes the store's parent directory as it reads the path from the
    URI without unescaping it, so for a path with '%', '?' or '#' it makes a directory of the escaped name beside
    the real one. Whatever it makes that is not there before, and stays empty, is removed again."""
    raw, real = (uri[len(SQLITE):] if uri.startswith(SQLITE) else ""), sqlite_path(uri)
    made: List[Path] = []
    if raw and real is not None and Path(raw).parent != real.parent:
        parent = Path(raw).parent
        while not os.path.lexists(parent) and parent != parent.parent:
            made.append(parent)
            parent = parent.parent
    try:
        yield
    finally:
        for path in made:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break


def artifact_location(uri: str, experiment: str) -> Optional[str]:
    """Where a sqlite store's experiment keeps its artifacts: `mlruns/<experiment>` beside the store, as a file URI
    (escaped as URIs are). None for other stores (a server decides). Why not MLflow's default: it is `./mlruns` of
    whichever process creates the experiment, and it is stored as a bare path, which MLflow later unescapes as a
    URI (a directory named with '%41' becomes one named with 'A')."""
    path = sqlite_path(uri)
    return (path.parent / "mlruns" / experiment).as_uri() if path is not None else None


def sqlite_path(uri: str) -> Optional[Path]:
    """The file of a sqlite tracking URI (None for any other store), read as SQLAlchemy reads it."""
    if not uri.startswith(SQLITE):
        return None
    path = unquote(uri[len(SQLITE):].split("?", 1)[0])
    return Path(path) if path and path != ":memory:" else None


class StoreProblem(HarnessError):
    """A sqlite MLflow store that MLflow cannot use, named with what to do."""


MLFLOW_TABLES = ("experiments", "runs", "metrics", "latest_metrics", "params", "tags", "alembic_version")


def store_state(path: Path) -> str:
    """'absent' (no file, or an empty one), 'complete' (MLflow's tables and a schema version), 'partial' (some
    tables, no schema version: its creation was cut short) or 'corrupt' (not an SQLite database)."""
    try:
        if os.stat(path).st_size == 0:
            return "absent"
    except FileNotFoundError:
        return "absent"
    try:
        with sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30) as con:
            tables = {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
            stamped = "alembic_version" in tables and \
                bool(con.execute("select count(*) from alembic_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            return "corrupt"
        return "complete"  # locked or busy: being written, which MLflow's own retries handle
    if not tables:
        return "absent"
    return "complete" if stamped and set(MLFLOW_TABLES) <= tables else "partial"


def check_store(uri: str, sweep: str = "<sweep>") -> None:
    """Refuse, in one line naming the file and the fix, a sqlite store MLflow would fail on: one that is not a
    database, or one whose creation was cut short (MLflow would retry 'table already exists' for a minute per
    client). Nothing is written."""
    path = sqlite_path(uri)
    state = store_state(path) if path is not None else "complete"
    if state == "corrupt":
        raise StoreProblem(f"MLflow store {path} is not an SQLite database (damaged, or another kind of file): "
                           f"move it aside, then `harness sync {sweep}` logs the sweep again into a new store from "
                           f"its journals")
    if state == "partial":
        raise StoreProblem(f"MLflow store {path} was left half-created (a process was killed while it made the "
                           f"store: some of MLflow's tables, no schema version): it holds no runs, so delete it, "
                           f"then `harness sync {sweep}` logs the sweep into a new store from its journals")


def open_store(uri: str) -> None:
    """Make sure a sqlite store is whole before MLflow opens it: created by one process at a time (under a lock
    beside it), and refused when it is half-created or not a database (check_store)."""
    path = sqlite_path(uri)
    if path is None or store_state(path) == "complete":
        return check_store(uri)
    from harness.store.locks import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.create.lock"), f"creation of MLflow store {path}").acquire(wait=True):
        check_store(uri)  # under the lock: a store still partial now is no one's work in progress
        if store_state(path) == "absent":
            from mlflow.tracking import MlflowClient

            with stray_dirs_removed(uri):
                MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # creates MLflow's tables


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
    values = (str(int(max(1, timeout_s))), str(int(max(0, retries))), "1", "0.5")
    wanted = dict(zip(_HTTP_ENV_KEYS, values, strict=True))
    for key, value in wanted.items():
        os.environ[key] = user.get(key, value)
    os.environ[_WRITTEN_ENV] = ",".join(f"{key}={value}" for key, value in wanted.items() if key not in user)


def is_transient(exc: BaseException) -> bool:
    """A sqlite lock or a busy file: retried. ("table … already exists" is not: stores are created by one process
    at a time (open_store), so it means a store left half-made, which check_store names.)"""
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT)


_UNREACHABLE = ("timed out", "timeout", "max retries exceeded", "connection refused", "connection reset",
                "connectionerror", "failed to establish", "remote end closed", "name or service not known")


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the tracking server cannot be reached (every other trail would meet the same)."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(marker in text for marker in _UNREACHABLE)


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

    open_store(uri)
    with stray_dirs_removed(uri):
        client = retry_locked(lambda: MlflowClient(tracking_uri=uri))
        if sqlite_path(uri) is not None:
            retry_locked(lambda: client.search_experiments(max_results=1))  # MLflow opens the store on first use
    return client


def get_experiment_id(client: Any, name: str, uri: str = "") -> str:
    """The experiment's id, created on first use (for a sqlite store `uri`, with its artifacts beside the store);
    safe when several trails race to create it."""

    def once() -> str:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            # The kind tag makes MLflow 3's UI open the experiment on its training-runs view, not the GenAI one.
            return client.create_experiment(name, artifact_location=artifact_location(uri, name) if uri else None,
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
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
