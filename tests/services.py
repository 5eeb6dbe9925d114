"""Fixtures and helpers for the integration tests that need real services: a single-node Slurm cluster with
accounting (scripts/slurm_cluster.sh) and a Ray head on 127.0.0.1 (scripts/ray_head.sh).

A fixture uses a service that is already running (SLURM_CONF set and answering) or starts it with the script and
stops what it started. Import the fixtures into a test module (`from services import slurm_cluster`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence

import pytest

from harness.spec.compose import compose_trail
from harness.spec.trails import make_trails
from harness.store.journal import read_records
from harness.store.rundir import read_status, save_config
from harness.store.states import TERMINAL
from harness.store.sweepdir import write_sweep_meta, write_trail_meta

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
FINAL = tuple(s.value for s in TERMINAL)

# Metrics that depend on the machine's speed, not on the computation.
TIMING_KEYS = ("time", "perf/tokens_per_s", "perf/sec_per_step")


def make_sweep(sweep_dir: Path, trail_overrides: Sequence[Sequence[str]], common: Sequence[str] = ()) -> List[Path]:
    """Compose, name and lay out trails as `harness sweep` does; return their run dirs."""
    configs = [(compose_trail([*common, *o]), [*common, *o]) for o in trail_overrides]
    trails = make_trails(configs)
    write_sweep_meta(sweep_dir, name=sweep_dir.name, trails=[t.dirname for t in trails])
    run_dirs = []
    for trail in trails:
        run_dir = trail.run_dir(sweep_dir)
        save_config(run_dir, trail.cfg, trail.overrides)
        write_trail_meta(run_dir, trail, sweep_dir.name)
        run_dirs.append(run_dir)
    return run_dirs


def wait_for_states(poll: Callable[[object], str], handles: Sequence[object], until: Sequence[str] = FINAL,
                    timeout: float = 240.0, every: float = 0.5) -> List[str]:
    """Poll until every handle is in one of `until`; fail the test with the states seen if it takes too long."""
    deadline = time.monotonic() + timeout
    states: List[str] = []
    while time.monotonic() < deadline:
        states = [poll(h) for h in handles]
        if all(s in until for s in states):
            return states
        time.sleep(every)
    pytest.fail(f"states {states} did not all reach {list(until)} within {timeout:.0f}s")


def final_metrics(run_dir: Path) -> Dict[str, float]:
    """The last journal record without its timing fields (the part that must not depend on where it ran)."""
    records = read_records(run_dir)
    assert records, f"no journal in {run_dir}"
    return {k: v for k, v in records[-1].items() if k not in TIMING_KEYS}


def run_directly(run_dir: Path, dest: Path) -> Path:
    """Run a copy of a trail's config in a fresh process (python -m harness.backends.worker), as the local backend
    does."""
    dest.mkdir(parents=True)
    for name in ("config.yaml", "overrides.yaml", "trail.json"):
        shutil.copy(run_dir / name, dest / name)
    subprocess.run([sys.executable, "-m", "harness.backends.worker", str(dest)], check=False, timeout=300, cwd=REPO)
    assert read_status(dest)["state"] == "done", read_status(dest)
    return dest


def corrupt_config(run_dir: Path) -> None:
    """Make a trail fail at run time, after launch: its config.yaml no longer parses."""
    (run_dir / "config.yaml").write_text("engine: [this is not\n  a valid: config\n")


def process_gone(pid: int, within_s: float) -> bool:
    """Whether process `pid` has ended within `within_s` seconds (polled with signal 0)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _run_script(*args: str, env: Dict[str, str] | None = None) -> str:
    """Run a service script with this interpreter's bin directory first on PATH, so that it finds the tools (`ray`)
    of the environment running the tests (the project's .venv) even when that environment is not activated."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run(["bash", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _exports(stdout: str) -> Dict[str, str]:
    """KEY=VALUE pairs of the `export …` line a service script prints last."""
    line = [ln for ln in stdout.splitlines() if ln.startswith("export ")][-1]
    return dict(item.split("=", 1) for item in line[len("export "):].split())


def _slurm_answers(env: Dict[str, str]) -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Dict[str, str]]:
    """A running Slurm cluster with slurmdbd; yields {"SLURM_CONF": path} and sets it in os.environ."""
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        pytest.skip("slurm-wlm is not installed (apt-get install -y slurm-wlm munge slurmdbd mariadb-server)")
    started = False
    if os.environ.get("SLURM_CONF") and _slurm_answers(dict(os.environ)):
        env = {"SLURM_CONF": os.environ["SLURM_CONF"]}
    else:
        directory = os.environ.get("HARNESS_SLURM_DIR", "/tmp/harness-slurm")
        env = _exports(_run_script(str(SCRIPTS / "slurm_cluster.sh"), "start", directory))
        started = True
    previous = os.environ.get("SLURM_CONF")
    os.environ.update(env)
    try:
        yield env
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if started:
            _run_script(str(SCRIPTS / "slurm_cluster.sh"), "stop", directory)


def _stop_ray(nodes: Sequence[Path], auth_mode: str | None, directory: Path) -> None:
    """Disconnect this process, stop each node (in the order given) and check it stopped, restore RAY_AUTH_MODE as it
    was (`auth_mode`), remove the nodes' directory."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    for node in nodes:
        _run_script(str(SCRIPTS / "ray_head.sh"), "stop", str(node))
        status = _run_script(str(SCRIPTS / "ray_head.sh"), "status", str(node))
        assert status.strip() == "stopped", status
    if auth_mode is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = auth_mode
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head() -> Iterator[str]:
    """A real `ray start --head` on 127.0.0.1 in a process group of its own, stopped by that group at the end.
    Yields its address; RAY_AUTH_MODE=disabled is set for this process (the head was started with it)."""
    pytest.importorskip("ray")
    # a short path: Ray's unix sockets live under it and a socket path may not exceed 107 characters
    directory = Path(tempfile.mkdtemp(prefix="hray-", dir="/tmp"))
    port = os.environ.get("HARNESS_TEST_RAY_PORT", "26400")
    out = _run_script(str(SCRIPTS / "ray_head.sh"), "start", str(directory), env={"RAY_HEAD_PORT": port})
    env = _exports(out)
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = env["RAY_AUTH_MODE"]
    try:
        yield env["RAY_ADDRESS"]
    finally:
        _stop_ray([directory], previous, directory)


@pytest.fixture(scope="module")
def ray_two_nodes() -> Iterator[str]:
    """A Ray cluster of two nodes on this machine: a head with 1 CPU (scripts/ray_head.sh start) and a second node
    with 1 CPU and a custom resource `node2` (scripts/ray_head.sh join), each in a process group of its own, both
    stopped by those groups at the end. Yields the head's address; RAY_AUTH_MODE=disabled is set for this process."""
    pytest.importorskip("ray")
    directory = Path(tempfile.mkdtemp(prefix="hray2-", dir="/tmp"))
    head, node = directory / "head", directory / "node2"
    port = os.environ.get("HARNESS_TEST_RAY2_PORT", "26420")
    started: List[Path] = []
    previous = os.environ.get("RAY_AUTH_MODE")
    try:
        env = _exports(_run_script(str(SCRIPTS / "ray_head.sh"), "start", str(head),
                                   env={"RAY_HEAD_PORT": port, "RAY_HEAD_CPUS": "1"}))
        started.append(head)
        os.environ["RAY_AUTH_MODE"] = env["RAY_AUTH_MODE"]
        _run_script(str(SCRIPTS / "ray_head.sh"), "join", str(node), env["RAY_ADDRESS"],
                    env={"RAY_NODE_CPUS": "1", "RAY_NODE_RESOURCES": '{"node2": 1}', **env})
        started.append(node)
        yield env["RAY_ADDRESS"]
    finally:
        _stop_ray(list(reversed(started)), previous, directory)  # the second node before the head it joined


def job_meta(run_dir: Path) -> Dict[str, str]:
    return json.loads((run_dir / "job.json").read_text())
