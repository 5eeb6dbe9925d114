"""Shared pieces of the tracking tests: a pre-migrated sqlite store (creating MLflow's schema takes ~10 s here, so
it is built once and copied), hand-written trails, free ports, and MLflow read-back helpers."""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from harness.store.journal import Journal
from harness.store.rundir import write_json_atomic
from harness.store.sweepdir import write_sweep_meta

KEYS = ["train/loss", "train/grad_norm", "train/clip_frac", "train/entropy", "train/approx_kl",
        "train/is_ratio_mean", "train/version", "rollout/reward", "m2po/m2_before", "m2po/m2_after",
        "m2po/masked_frac", "staleness/mean", "staleness/max", "perf/tokens_per_s", "perf/sec_per_step"]
EVAL_KEYS = ["eval/reward", "eval/reward_sampled"]
EVAL_EVERY = 25


def template_db(cache_dir: Path) -> Path:
    """A migrated, empty MLflow sqlite store, built once per MLflow version and reused across runs."""
    import mlflow.version
    from mlflow.tracking import MlflowClient

    folder = Path(cache_dir) / f"mlflow-template-{mlflow.version.VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "mlflow.db"
    if not db.exists():
        tmp = folder / f"build-{os.getpid()}.db"
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()
        os.replace(tmp, db)
    return db


def cache_dir_of(request) -> Path:
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("harness-tracking")) if cache is not None else Path(tempfile.gettempdir())


def fresh_store(cache_dir: Path, where: Path) -> str:
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(template_db(cache_dir), where / "mlflow.db")
    return f"sqlite:///{where / 'mlflow.db'}"


def metric_values(step: int, seed: int = 0) -> Dict[str, float]:
    values = {k: round(math.sin(step * 0.1 + i + seed) + i, 6) for i, k in enumerate(KEYS)}
    if step % EVAL_EVERY == 0:
        values.update({k: round(0.5 + 0.001 * step + 0.01 * i, 6) for i, k in enumerate(EVAL_KEYS)})
    return values


def make_sweep(root: Path, name: str = "demo", trails: Iterable[str] = ("t1",)) -> Path:
    sweep_dir = root / name
    write_sweep_meta(sweep_dir, name=name, trails=list(trails), description="tracking test sweep")
    for i, trail in enumerate(trails):
        run_dir = sweep_dir / trail
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "trail.json", {
            "id": f"id{i:04d}{trail}", "name": f"stale 256 d2+d1 rollout 96 {trail}", "sweep": name,
            "dirname": trail, "axes": {"stale": 256, "alloc": "d2+d1", "rollout": 96, "algo": "m2po", "seed": i},
            "engine": "embedded", "backend": "local"})
    return sweep_dir


def append_steps(run_dir: Path, steps: Iterable[int], seed: int = 0, time_offset: float = 0.0) -> None:
    with Journal(run_dir) as journal:
        for step in steps:
            journal.append(step, metric_values(step, seed), time=1.7e9 + step + time_offset)


def expected_count(steps: Iterable[int]) -> int:
    return sum(len(metric_values(s)) for s in steps)


def history(client, run_id: str, key: str) -> List[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def assert_exactly_once(client, run_id: str, last_step: int, first_step: int = 1, seed: int = 0) -> None:
    """Every key at every step of [first_step, last_step] exactly once, with the journal's value."""
    steps = list(range(first_step, last_step + 1))
    for key in KEYS + EVAL_KEYS:
        want = [s for s in steps if key in metric_values(s)]
        got = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in got) == want, f"{key}: steps differ from the journal"
        for m in got:
            assert abs(m.value - metric_values(m.step, seed)[key]) < 1e-9, f"{key}@{m.step} has a wrong value"


def group_cpu_s(pgid: int) -> float:
    """User + system CPU of every live process of a process group, their reaped children included (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime(11) stime cutime cstime
            total += sum(int(v) for v in fields[11:15])
    return total / tick


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout_s: float = 90.0, proc=None) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def closed_port_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"


def read_log(run_dir: Path) -> str:
    path = Path(run_dir) / "log.txt"
    return path.read_text() if path.exists() else ""


def run_id_of(run_dir: Path, uri: str) -> Optional[str]:
    from harness.tracking.client import resolve_uri
    from harness.tracking.cursor import read_cursor

    return read_cursor(run_dir, resolve_uri(uri)).get("run_id")


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 over a sqlite file, started and stopped by PID (its own process group:
    the server runs its web workers as children, which must go with it)."""

    def __init__(self, db_path: Path, workdir: Path, port: Optional[int] = None):
        self.db_path, self.workdir = Path(db_path), Path(workdir)
        self.port = port or free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> MlflowServer:
        import subprocess
        import sys

        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"server-{self.port}.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.db_path}",
             "--default-artifact-root", str(self.workdir / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"{self.url}/health", timeout_s, self.proc)
        return self

    def kill(self, sig: int = 9) -> None:
        """SIGKILL (default) the server's process group, whose id is the server's PID."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        import signal

        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except Exception:  # noqa: BLE001 - fall back to SIGKILL of the same group
                self.kill()
            self.proc = None
