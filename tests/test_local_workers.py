"""The local backend's workers: warm workers run trail after trail in one process, each trail starting with the state
a fresh process would give it; a worker that dies fails only its trail; cancel and Ctrl-C stop them; a fresh process
per trail stays available (backend.workers=process)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest
from omegaconf import OmegaConf
from services import make_sweep, process_gone, wait_for_states

from harness import plugins
from harness.backends.local import LocalBackend
from harness.cli import main
from harness.errors import HarnessError
from harness.spec.compose import compose_trail
from harness.store.rundir import load_config, read_status
from harness.store.sweepdir import trail_dirs

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe engine, registered for this process and every worker it starts."""
    monkeypatch.setenv(plugins.ENV_VAR, "probe_engine:PLUGIN")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), str(REPO),
                                                                    os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(TESTS_DIR))


def seen(run_dir: Path) -> dict:
    return json.loads((run_dir / "probe.json").read_text())


def _sweep(root: Path, *overrides: str) -> List[Path]:
    assert main(["sweep", "engine=probe", "stale=1,2,3", "tracking=none", "backend.max_parallel=1", *overrides,
                 "--name", "p", "--root", str(root), "--no-report"]) == 0
    return trail_dirs(root / "p")


def test_warm_workers_run_trail_after_trail_each_from_a_fresh_state(probe: None, tmp_path: Path) -> None:
    run_dirs = _sweep(tmp_path / "runs", "engine.torch=true")
    records = [seen(d) for d in run_dirs]
    assert len({r["pid"] for r in records}) == 1 and records[0]["pid"] != os.getpid(), records
    assert [read_status(d)["pid"] for d in run_dirs] == [r["pid"] for r in records]
    assert {read_status(d)["node"] for d in run_dirs} == {socket.gethostname()}
    for run_dir, record in zip(run_dirs, records, strict=False):
        # what the previous trail in the same process changed is undone
        assert record["leak"] is None and record["cwd"] == os.getcwd(), record
        assert (record["torch_threads"], record["omp"], record["grad"], record["dtype"]) == \
            (1, "1", True, "torch.float32"), record
        log = (run_dir / "log.txt").read_text()
        assert log.count("probe output of") == 1 and f"probe output of {run_dir.name}" in log, log


def test_a_fresh_process_per_trail_is_an_option(probe: None, tmp_path: Path) -> None:
    run_dirs = _sweep(tmp_path / "runs", "backend.workers=process")
    assert len({seen(d)["pid"] for d in run_dirs}) == 3


def test_a_warm_worker_is_replaced_after_worker_max_trails(probe: None, tmp_path: Path) -> None:
    run_dirs = _sweep(tmp_path / "runs", "backend.worker_max_trails=2")
    pids = [seen(d)["pid"] for d in run_dirs]
    assert pids[0] == pids[1] != pids[2], pids


def test_a_trail_that_cannot_even_start_fails_and_its_worker_runs_the_next(probe: None, tmp_path: Path) -> None:
    run_dirs = make_sweep(tmp_path / "sweep", [["stale=1"], ["stale=2"]], common=["engine=probe", "tracking=none"])
    (run_dirs[0] / "config.yaml").write_text("engine: [this is not\n  a valid: config\n")
    backend = _backend(run_dirs[1:], max_parallel=1)
    try:
        handles = backend.submit(run_dirs)
        assert wait_for_states(backend.poll, handles, timeout=120, every=0.1) == ["failed", "done"]
    finally:
        backend.close()
    reason = read_status(run_dirs[0])["reason"]
    assert reason.startswith("worker exited with code 1: ") and "Error" in reason, reason
    assert backend.poll(handles[1]) == "done" and seen(run_dirs[1])["pid"] == handles[0].pid, "the same worker"


def test_workers_setting_is_checked_at_composition() -> None:
    with pytest.raises(HarnessError, match=r"invalid value for 'backend.workers': 'threads' \(allowed: warm \| "
                                           r"process\)"):
        compose_trail(["backend.workers=threads"])
    with pytest.raises(HarnessError, match="backend.worker_max_trails"):
        compose_trail(["backend.worker_max_trails=-1"])


def _backend(run_dirs: List[Path], **settings: object) -> LocalBackend:
    section = OmegaConf.load(run_dirs[0] / "config.yaml").backend
    for key, value in settings.items():
        section[key] = value
    return LocalBackend(section)


def _wait_for_probe(run_dir: Path, backend: LocalBackend, handle: object, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while not (run_dir / "probe.json").exists() or not read_status(run_dir).get("step"):
        assert time.monotonic() < deadline, read_status(run_dir)
        backend.poll(handle)
        time.sleep(0.1)
    return seen(run_dir)



@pytest.mark.parametrize("workers", ["warm", "process"])
def test_wait_returns_when_a_trail_ends_not_when_its_timeout_runs_out(workers: str, probe: None,
                                                                     tmp_path: Path) -> None:
    """The sweep's watch waits in backend.wait between two looks at its trails: it must learn of an ending at once
    (a warm worker's answer, a per-trail process's exit), not at the end of the wait's timeout."""
    run_dirs = make_sweep(tmp_path / "sweep", [["stale=1"]], common=["engine=probe", "tracking=none"])
    backend = _backend(run_dirs, workers=workers)
    try:
        (handle,) = backend.submit(run_dirs)
        started = time.monotonic()
        while backend.poll(handle) in ("pending", "running"):
            assert time.monotonic() - started < 45.0, read_status(run_dirs[0])
            backend.wait(60.0)
        waited = time.monotonic() - started
    finally:
        backend.close()
    assert read_status(run_dirs[0])["state"] == "done"
    assert waited < 45.0, f"the wait ran {waited:.0f} s: it did not wake when the trail ended"


def test_warm_up_starts_the_workers_the_first_trails_then_run_in(probe: None, tmp_path: Path) -> None:
    run_dirs = make_sweep(tmp_path / "sweep", [["stale=1"], ["stale=2"], ["stale=3"]],
                          common=["engine=probe", "tracking=none"])
    backend = _backend(run_dirs, max_parallel=2)
    try:
        backend.warm_up([_Trail(load_config(d)) for d in run_dirs])
        started = set(backend._workers.pids())
        assert len(started) == 2, "as many as the trails can use at once, before any trail is handed over"
        handles = backend.submit(run_dirs)
        assert wait_for_states(backend.poll, handles, timeout=120, every=0.1) == ["done"] * 3
    finally:
        backend.close()
    assert {seen(d)["pid"] for d in run_dirs} == started, "the trails ran in the workers started ahead"


@dataclass
class _Trail:
    cfg: object


def test_a_worker_killed_mid_trail_fails_that_trail_and_the_next_trail_runs(probe: None, tmp_path: Path) -> None:
    run_dirs = make_sweep(tmp_path / "sweep", [["engine.steps=100000", "engine.step_s=0.05"], ["stale=2"]],
                          common=["engine=probe", "tracking=none"])
    backend = _backend(run_dirs, max_parallel=1)
    try:
        handles = backend.submit(run_dirs)
        victim = _wait_for_probe(run_dirs[0], backend, handles[0])["pid"]
        os.kill(victim, signal.SIGKILL)  # as the OOM killer would
        assert wait_for_states(backend.poll, handles, timeout=120, every=0.1) == ["failed", "done"]
    finally:
        backend.close()
    assert read_status(run_dirs[0])["reason"] == "worker killed by signal 9"
    assert seen(run_dirs[1])["pid"] != victim


def test_cancel_stops_a_warm_workers_trail_and_the_pool_goes_on(probe: None, tmp_path: Path) -> None:
    run_dirs = make_sweep(tmp_path / "sweep", [["engine.steps=100000", "engine.step_s=0.05"], ["stale=2"]],
                          common=["engine=probe", "tracking=none"])
    backend = _backend(run_dirs, max_parallel=1)
    try:
        (long,) = backend.submit(run_dirs[:1])
        pid = _wait_for_probe(run_dirs[0], backend, long)["pid"]
        backend.cancel(long)
        assert backend.poll(long) == "cancelled" and process_gone(pid, 15.0), "cancel ends the worker running the trail"
        status = read_status(run_dirs[0])
        assert status["state"] == "cancelled" and status["reason"] == "cancelled by the sweep"
        assert int(status["step"]) >= 1, "its metrics so far are kept"
        (short,) = backend.submit(run_dirs[1:])
        assert wait_for_states(backend.poll, [short], timeout=120, every=0.1) == ["done"]
    finally:
        backend.close()


def _ctrl_c_enabled() -> None:
    """In the child: SIGINT back to its default, so Python installs its KeyboardInterrupt handler. A test run started
    in the background of a non-interactive shell (a CI script run as `cmd &`) inherits SIGINT ignored, and a Python
    that starts with SIGINT ignored keeps ignoring it, as a shell's background job should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_cancels_the_running_trails_and_ends_every_worker(probe: None, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    sweep = subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", "engine=probe", "stale=1,2,3",
                              "engine.steps=100000", "engine.step_s=0.05", "tracking=none", "backend.max_parallel=2",
                              "--name", "c", "--root", str(root), "--no-report"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                             preexec_fn=_ctrl_c_enabled)
    deadline = time.monotonic() + 120
    while sum((d / "probe.json").exists() for d in trail_dirs(root / "c")) < 2:
        assert time.monotonic() < deadline and sweep.poll() is None, "two trails never started"
        time.sleep(0.1)
    pids = {seen(d)["pid"] for d in trail_dirs(root / "c") if (d / "probe.json").exists()}
    sweep.send_signal(signal.SIGINT)
    out, _ = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, out
    states = sorted(read_status(d)["state"] for d in trail_dirs(root / "c"))
    assert states == ["cancelled", "cancelled", "cancelled"], states
    assert all(process_gone(pid, 15.0) for pid in pids), "no worker outlives the sweep"


def test_wait_exit_is_woken_by_the_exit_and_keeps_wait_s_contract() -> None:
    """A worker's end is waited for on a pidfd (no polling sleeps): the exit status, TimeoutExpired for a process
    still running, and the status again for one already reaped."""
    from harness.backends.pool import wait_exit

    quick = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert wait_exit(quick, 30.0) == 3
    assert wait_exit(quick, 0.0) == 3
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_exit(slow, 0.2)
    finally:
        slow.kill()
    assert wait_exit(slow, 30.0) == -signal.SIGKILL
