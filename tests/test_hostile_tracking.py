"""MLflow under an adversary: a sweep deleted and run again under its name, a copied sweep directory, a server that
accepts connections and never answers, a tracker that is stopped (SIGSTOP), a store whose creation was cut short or
that is not a database, a launch directory named with URI characters, and a report read from another directory.
Real sqlite stores and real tracker processes throughout."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from tiny_trail import ENGINE, tiny_trail
from tracking_support import cache_dir_of, fresh_store, template_db

from harness.cli import main
from harness.store.locks import read_holder
from harness.store.rundir import read_status
from harness.store.sweepdir import trail_dirs

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def _tracked(uri: str, *extra: str) -> list[str]:
    """The tiny trail, tracked to `uri` (later overrides of a key replace earlier ones)."""
    return tiny_trail("tracking=mlflow", f"tracking.uri={uri}", "tracking.sync_every_s=0.2", *extra)


def _harness(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _runs(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def _trail_steps(uri: str, experiment: str) -> dict:
    """trail id -> the steps of train/loss that MLflow holds for the trail's run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return {r.data.tags["harness.trail_id"]: sorted(m.step for m in client.get_metric_history(r.info.run_id,
                                                                                                "train/loss"))
            for r in _runs(uri, experiment) if "harness.trail_id" in r.data.tags}


@pytest.fixture
def store(tmp_path: Path, request) -> str:
    return fresh_store(cache_dir_of(request), tmp_path / "store")


# --- identity in MLflow ---------------------------------------------------------------------------------------------

def test_a_deleted_sweep_runs_are_never_read_as_those_of_its_successor(tmp_path: Path, store: str, capsys) -> None:
    import shutil

    root = tmp_path / "runs"
    code, out, err = _harness(capsys, "sweep", *_tracked(store, "tracking.live=off", "stale=0,1"), "--name", "d",
                              "--root", str(root), "--no-report")
    assert code == 0, out + err
    shutil.rmtree(root / "d")
    code, out, err = _harness(capsys, "sweep", *_tracked(store, "tracking.live=off", "stale=2"), "--name", "d",
                              "--root", str(root), "--no-report")
    assert code == 0, out + err
    code, out, err = _harness(capsys, "report", "d", "--root", str(root), "--source", "mlflow")
    assert code == 0, out + err
    trails = pd.read_csv(root / "d" / "report" / "trails.csv")
    assert list(trails["stale"]) == [2], trails[["trail", "id"]]


def test_a_copied_sweep_directory_never_replaces_the_sweep_own_report_in_mlflow(tmp_path: Path, store: str,
                                                                               capsys) -> None:
    import shutil

    from mlflow.tracking import MlflowClient

    root = tmp_path / "runs"
    code, out, err = _harness(capsys, "sweep", *_tracked(store, "stale=0,1"), "--name", "o", "--root", str(root))
    assert code == 0, out + err
    summary = json.loads((root / "o" / "sweep.json").read_text())["mlflow_summary_run_id"]
    client = MlflowClient(tracking_uri=store)

    def attached() -> str:
        local = client.download_artifacts(summary, "report/REPORT.md", str(tmp_path / f"dl{time.monotonic_ns()}"))
        return Path(local).read_text()

    original = attached()
    copy = Path(shutil.copytree(root / "o", tmp_path / "elsewhere" / "o", symlinks=True))
    (trail_dirs(copy)[0] / "journal.jsonl").unlink()  # the copy's report differs from the sweep's
    code, out, err = _harness(capsys, "report", str(copy))
    assert code == 0, out + err
    assert "is a copy of the sweep's directory" in out and "attached" not in out.split("copy")[0], out
    assert attached() == original
    code, out, err = _harness(capsys, "report", "o", "--root", str(root))
    assert code == 0 and "report attached to the sweep's MLflow summary run" in out, out + err


def test_the_mlflow_report_reads_the_store_tracking_used_from_any_directory(tmp_path: Path, request,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            capsys) -> None:
    launch, elsewhere, root = tmp_path / "launch", tmp_path / "elsewhere", tmp_path / "runs"
    launch.mkdir()
    elsewhere.mkdir()
    (launch / "mlflow.db").write_bytes(template_db(cache_dir_of(request)).read_bytes())
    monkeypatch.chdir(launch)  # the default store, sqlite:///mlflow.db, is this directory's
    code, out, err = _harness(capsys, "sweep", *ENGINE, "tracking=mlflow", "tracking.live=off", "stale=0,1",
                              "--name", "u", "--root", str(root), "--no-report")
    assert code == 0, out + err
    for cwd, out_dir in ((launch, "from-launch"), (elsewhere, "from-elsewhere")):  # fresh processes: no cached store
        done = subprocess.run([sys.executable, "-m", "harness.cli", "report", "u", "--root", str(root), "--source",
                               "mlflow", "--out", str(tmp_path / out_dir)], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stdout + done.stderr
    assert list(elsewhere.iterdir()) == [], "nothing is created in the working directory"
    for name in ("trails.csv", "cells.csv"):
        keep = ["trail", "id", "stale", "state", "eval_final"] if name == "trails.csv" else ["stale", "metric", "mean"]
        a = pd.read_csv(tmp_path / "from-launch" / name)[keep]
        b = pd.read_csv(tmp_path / "from-elsewhere" / name)[keep]
        pd.testing.assert_frame_equal(a, b)


# --- hangs ----------------------------------------------------------------------------------------------------------

class BlackHole:
    """A TCP server that accepts every connection and never answers (a wedged proxy, a stopped server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_server_that_never_answers_costs_the_sweep_one_deadline_not_one_per_trail(tmp_path: Path, capsys) -> None:
    hole = BlackHole()
    try:
        started = time.monotonic()
        code, out, err = _harness(capsys, "sweep", *_tracked(f"http://127.0.0.1:{hole.port}",
                                                             "tracking.http_timeout_s=2", "tracking.deadline_s=8"),
                                  "seed=1,2,3,4,5,6,7,8", "--name", "bh", "--root", str(tmp_path / "runs"),
                                  "--no-report")
        took = time.monotonic() - started
    finally:
        hole.close()
    assert code == 0, out + err
    wrap_up = [ln for ln in out.splitlines() if ln.startswith("wall time")]
    assert wrap_up and "MLflow" in wrap_up[0], out
    mlflow_s = wrap_up[0].split("MLflow")[-1]
    seconds = int(mlflow_s.split("s")[0].split()[-1]) if "min" not in mlflow_s else 999
    assert seconds <= 8 + 15 + 20, f"{wrap_up[0]} (whole sweep {took:.0f} s)"  # deadline, wrap-up, slack


def _tracker_pid(sweep_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        pid = read_holder(sweep_dir / "tracker.lock").get("pid")
        if pid:
            return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"no tracker took the lock: {proc.communicate() if proc.poll() is not None else ''}")


def test_a_stopped_tracker_is_replaced_and_mlflow_gets_every_step(tmp_path: Path, store: str) -> None:
    root = tmp_path / "runs"
    args = [sys.executable, "-m", "harness.cli", "sweep",
            *_tracked(store, "tracking.heartbeat_timeout_s=3", "engine.steps=30", "seed=1,2"), "--name", "st",
            "--root", str(root), "--no-report"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    pid = _tracker_pid(root / "st", proc)
    os.kill(pid, signal.SIGSTOP)
    try:
        out, _ = proc.communicate(timeout=1200)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, out
    steps = _trail_steps(store, "harness/st")
    assert len(steps) == 2 and all(s == list(range(1, 31)) for s in steps.values()), steps
    assert "has not beaten for over 3 s (stopped or hung): killing it" in out, out


def test_a_stopped_tracker_of_an_earlier_command_is_taken_over(tmp_path: Path, store: str, capsys) -> None:
    root = tmp_path / "runs"
    args = ["sweep", *_tracked(store, "tracking.heartbeat_timeout_s=3"), "seed=1,2", "--name", "old",
            "--root", str(root), "--no-report"]
    code, out, err = _harness(capsys, *args)
    assert code == 0, out + err
    cfg = json.dumps({"uri": store, "sync_every_s": 0.2, "heartbeat_timeout_s": 3})
    stale = subprocess.Popen([sys.executable, "-m", "harness.tracking.tracker", str(root / "old"), "--config", cfg],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert stale.stdout is not None and stale.stdout.readline().strip() == b"ready"
        os.kill(stale.pid, signal.SIGSTOP)
        for run_dir in trail_dirs(root / "old"):
            (run_dir / "status.json").write_text(json.dumps(read_status(run_dir) | {"state": "failed"}))
        started = time.monotonic()
        code, out, err = _harness(capsys, *args)
        assert code == 0, out + err
        assert time.monotonic() - started < 60, out
        assert stale.wait(10) == -signal.SIGKILL, "the stopped tracker was killed, its lock taken over"
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()
    steps = _trail_steps(store, "harness/old")
    assert len(steps) == 2 and all(s == list(range(1, 7)) for s in steps.values()), steps


# --- stores MLflow cannot use ---------------------------------------------------------------------------------------

def _finished(tmp_path: Path, capsys, uri: str) -> Path:
    """A finished sweep whose store (sweep.json's, as tracking records it) is `uri`."""
    root = tmp_path / "runs"
    code, out, err = _harness(capsys, "sweep", *ENGINE, "tracking=none", "seed=1,2", "--name", "s", "--root",
                              str(root), "--no-report")
    assert code == 0, out + err
    meta = json.loads((root / "s" / "sweep.json").read_text())
    (root / "s" / "sweep.json").write_text(json.dumps(meta | {"mlflow_uri": uri}))
    return root


def test_a_half_created_store_is_named_with_the_fix_at_once(tmp_path: Path, capsys) -> None:
    from mlflow.store.tracking.dbmodels.initial_models import Base as Initial
    from mlflow.store.tracking.dbmodels.models import Base
    from sqlalchemy import create_engine

    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    # what a process killed while MLflow migrated a new store leaves: its first tables, the table one migration made,
    # and no schema version (MLflow then meets 'table latest_metrics already exists' on every later open)
    engine = create_engine(f"sqlite:///{db}")
    Initial.metadata.create_all(engine)
    Base.metadata.tables["latest_metrics"].create(engine)
    engine.dispose()
    with sqlite3.connect(db) as con:
        assert "alembic_version" not in {r[0] for r in con.execute("select name from sqlite_master")}
    root = _finished(tmp_path, capsys, f"sqlite:///{db}")
    started = time.monotonic()
    code, out, err = _harness(capsys, "sync", "s", "--root", str(root))
    assert code != 0 and time.monotonic() - started < 30, out + err
    assert f"MLflow store {db} was left half-created" in out + err and "delete it" in out + err, out + err


def test_a_store_that_is_not_a_database_is_named_with_a_fix_that_works(tmp_path: Path, capsys) -> None:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(b"this is not a database, whatever its name" * 100)
    root = _finished(tmp_path, capsys, f"sqlite:///{db}")
    code, out, err = _harness(capsys, "sync", "s", "--root", str(root))
    assert code != 0, out + err
    assert f"MLflow store {db} is not an SQLite database" in out + err and "move it aside" in out + err, out + err


# --- URIs and commands are escaped -----------------------------------------------------------------------------------

def test_a_launch_directory_named_with_uri_characters_keeps_mlflow_in_it(tmp_path: Path, request,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys) -> None:
    launch = tmp_path / "we?ird#dir%41 x"
    launch.mkdir()
    (launch / "mlflow.db").write_bytes(template_db(cache_dir_of(request)).read_bytes())
    monkeypatch.chdir(launch)
    code, out, err = _harness(capsys, "sweep", *ENGINE, "seed=1,2", "tracking=mlflow", "tracking.live=off",
                              "--name", "q", "--root", str(tmp_path / "runs"))  # two trails: a report, as artifacts
    assert code == 0, out + err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", launch.name], "nothing beside the launch dir"
    (line,) = [ln for ln in out.splitlines() if "mlflow ui --backend-store-uri" in ln]
    words = shlex.split(line.split("`")[1])
    assert words[:3] == ["mlflow", "ui", "--backend-store-uri"]
    runs = _runs(words[3], "harness/q")
    assert len(runs) == 3, "the printed URI opens the store the sweep wrote"
    summary = next(r for r in runs if r.data.tags.get("harness.kind") == "summary")
    assert summary.info.artifact_uri.startswith(launch.as_uri()), summary.info.artifact_uri
    assert (launch / "mlruns").is_dir()


# --- Ctrl-C while the tracker starts ---------------------------------------------------------------------------------

HOLD = ("import fcntl, json, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, json.dumps({'pid': os.getpid(), 'host': 'elsewhere'}).encode())\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")


def test_ctrl_c_while_the_tracker_starts_is_one_line_and_recorded(tmp_path: Path, store: str) -> None:
    root = tmp_path / "runs"
    (root / "i").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root / "i" / "tracker.lock")], stdout=subprocess.PIPE,
                              text=True)  # a tracker on another host: the new one waits for it, the sweep for both
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", *_tracked(store), "--name", "i",
                                 "--root", str(root), "--no-report"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 120
        while not (root / "i" / "tracking.log").exists() or not (root / "i" / "sweep.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(2)  # the tracker is started and waits for the lock; the sweep waits for it to say ready
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 130 and "Traceback" not in out + err, out + err
    assert json.loads((root / "i" / "sweep.json").read_text())["state"] == "cancelled"
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"harness.tracking.tracker {root / 'i'}" not in ps, "no tracker is left behind"
