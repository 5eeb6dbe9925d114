"""`harness sweep areal_cpu`: real AReaL 1.0.4 trails on this CPU, end to end, Ctrl-C and resume included.

What is real: AReaL's trainer (FSDP on gloo), its local scheduler and data service, its vLLM CPU server, its weight
updates, staleness control, decoupled PPO loss and M2PO mask, its recover, its TensorBoard stats. What the harness
builds: the tiny model, tokenizer and dataset (offline). The sweep runs twice: the first run gets a Ctrl-C (SIGINT to
its process group, as a terminal sends it) once the first trail's AReaL has saved a recover checkpoint; the second
run (the same command) resumes that trail through AReaL's recover and runs the rest. Every assertion reads what AReaL
itself wrote (its TensorBoard events through the journals, its log, its processes), so a stand-in would not pass.

Cost: the venv (scripts/areal_cpu_venv.sh; a check of seconds when it is cached), then four AReaL start-ups (three
trails and the resumed one) of 4 to 6 minutes each on a two-core machine.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest
from areal_cpu import REPO, areal_cpu_venv
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from harness.engines.areal import processes
from harness.engines.areal.command import LOG_NAME, TENSORBOARD_DIR
from harness.engines.areal.ingest import EVENT_GLOB
from harness.engines.areal.rollout_stats import max_running
from harness.store.journal import read_records
from harness.store.rundir import load_config, read_status

# the first test also runs the module's sweep (the fixture): its limit covers both runs on a loaded machine
pytestmark = [pytest.mark.integration, pytest.mark.areal_real, pytest.mark.timeout(4 * 3600)]

SWEEP = "areal_cpu"
STEPS = 8
TRAILS = 3
CHECKPOINT_EVERY = 2                              # the sweep's ++recover.freq_steps
CHECKPOINT_SAVED = "Saved recover checkpoint"    # areal/utils/recover.py, RecoverHandler.dump
RECOVERED = "Recovering from"                     # areal/utils/recover.py, RecoverHandler.load
INTERRUPT_WAIT_S = 2400       # caps for a hang only; a trail starts in minutes on an idle 2-core machine
SWEEP_WAIT_S = 3 * 3600


@dataclass
class Runs:
    root: Path
    venv: Path
    db: Path
    first_rc: int
    second_rc: int
    interrupted: Path                      # the trail the Ctrl-C hit
    interrupted_status: Dict
    left_after_ctrl_c: List[str]           # AReaL processes alive after the interrupted sweep exited
    live: Set[str] = field(default_factory=set)   # trails whose journal had records while their AReaL ran
    seconds: Dict[str, float] = field(default_factory=dict)

    @property
    def trail_dirs(self) -> List[Path]:
        return sorted(p.parent for p in (self.root / SWEEP).glob("*/trail.json"))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> Set[int]:
    return {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}


def _areal_processes(root: Path, venv: Path, before: Set[int]) -> List[str]:
    """Processes of these runs still alive: marked with one of the root's run dirs, or started since `before` from
    AReaL's venv (found by their command line, whatever their environment)."""
    found = []
    for run_dir in (root / SWEEP).glob("*/"):
        found += [f"{pid} (marked {run_dir.name}): {_cmdline(pid)[:200]}" for pid in processes.marked(str(run_dir))]
    for pid in _pids() - before:
        line = _cmdline(pid)
        if str(venv) in line and not line.startswith(sys.executable):
            found.append(f"{pid}: {line[:200]}")
    return found


def _checkpointed_and_journaled(run_dir: Path, log_text: str) -> bool:
    """AReaL saved a recover checkpoint and the journal already holds the steps before it.

    Why both: AReaL's TensorBoard writer (tensorboardX) keeps up to a step of stats in its buffer, which a kill
    loses; AReaL's recover re-runs only the steps after its checkpoint, so a step before it whose stats were still
    buffered would stay incomplete for good. The harness journals a step once a later step's stats are on disk, so a
    journal that holds the checkpoint's step means that step's stats were flushed."""
    if CHECKPOINT_SAVED not in log_text:
        return False
    return len(read_records(run_dir)) >= CHECKPOINT_EVERY


def _watch(proc: subprocess.Popen, root: Path, runs_live: Set[str], timeout: float,
           interrupt: bool = False) -> Optional[Path]:
    """Follow a running sweep; note every trail whose journal has records while its AReaL runs. With `interrupt`,
    send Ctrl-C (SIGINT to the sweep's process group, as a terminal does) once a trail's AReaL has a recover
    checkpoint whose steps are journaled; return that trail."""
    deadline = time.monotonic() + timeout
    logs: Dict[Path, str] = {}
    offsets: Dict[Path, int] = {}
    while proc.poll() is None and time.monotonic() < deadline:
        for run_dir in (root / SWEEP).glob("*/"):
            log = run_dir / LOG_NAME
            if not log.exists():
                continue
            journal = run_dir / "journal.jsonl"
            if journal.exists() and journal.stat().st_size > 0 and processes.marked(str(run_dir.resolve())):
                runs_live.add(run_dir.name)
            if interrupt:
                with open(log, "rb") as fh:   # only what was appended since the last look (AReaL's logs are long)
                    fh.seek(offsets.get(log, 0))
                    logs[log] = logs.get(log, "")[-200:] + fh.read().decode(errors="replace")
                    offsets[log] = fh.tell()
                    if CHECKPOINT_SAVED in logs[log]:
                        logs[log] = CHECKPOINT_SAVED   # remember it, drop the rest
                if _checkpointed_and_journaled(run_dir, logs[log]):
                    os.killpg(proc.pid, signal.SIGINT)
                    return run_dir
        time.sleep(0.5)
    return None


def _children(pid: int) -> List[int]:
    """The sweep's child processes (its workers and tracker run in sessions of their own, not in its group)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _explain(proc: subprocess.Popen, base: Path, root: Path, output: str) -> str:
    """What a sweep that did not get where it should in time was doing: every thread's stack in it and its children
    (SIGUSR1, harness.logs.dump_stacks_on_sigusr1: into its output, the workers' trail logs, tracking.log), its output,
    each trail's status and the end of its logs."""
    for pid in [proc.pid] + _children(proc.pid):
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
    time.sleep(2)
    parts = [f"--- {output}\n" + (base / output).read_text(errors="replace")[-8000:]]
    for path in sorted((root / SWEEP).glob("*/status.json")) + sorted((root / SWEEP).glob("*/log.txt")) + \
            sorted((root / SWEEP).glob(f"*/{LOG_NAME}")) + [root / SWEEP / "tracking.log"]:
        if path.is_file():
            parts.append(f"--- {path.relative_to(root)}\n" + path.read_text(errors="replace")[-4000:])
    return "\n".join(parts)


def _wait(proc: subprocess.Popen, timeout: float, base: Path, root: Path, output: str) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the sweep did not end within {timeout:g} s\n" +
                             _explain(proc, base, root, output)) from None


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    started = time.monotonic()
    venv = areal_cpu_venv()
    venv_s = time.monotonic() - started
    base = tmp_path_factory.mktemp("areal_cpu")
    root, db = base / "runs", base / "mlflow.db"
    argv = [sys.executable, "-m", "harness.cli", "sweep", SWEEP, f"engine.python={venv}/bin/python",
            f"tracking.uri=sqlite:///{db}", "engine.poll_seconds=1", "--root", str(root)]
    live: Set[str] = set()
    before = _pids()
    t0 = time.monotonic()
    with open(base / "first.txt", "w") as out:
        first = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            interrupted = _watch(first, root, live, INTERRUPT_WAIT_S, interrupt=True)
            if interrupted is None and first.poll() is None:
                raise AssertionError(f"no trail had a journaled recover checkpoint within {INTERRUPT_WAIT_S} s\n" +
                                     _explain(first, base, root, "first.txt"))
            first_rc = _wait(first, 300, base, root, "first.txt")
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
    assert interrupted is not None, (base / "first.txt").read_text()[-3000:]
    left = _areal_processes(root, venv, before)
    status = read_status(interrupted)
    t1 = time.monotonic()
    with open(base / "second.txt", "w") as out:
        second = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _watch(second, root, live, SWEEP_WAIT_S)
            second_rc = _wait(second, 60, base, root, "second.txt")
        finally:
            if second.poll() is None:
                os.killpg(second.pid, signal.SIGKILL)
    seconds = {"venv": venv_s, "interrupted run": t1 - t0, "second run": time.monotonic() - t1}
    (base / "seconds.json").write_text(json.dumps(seconds))
    print(f"areal_cpu sweep: {seconds}")
    return Runs(root, venv, db, first_rc, second_rc, interrupted, status, left, live, seconds)


def _cfg(run_dir: Path):
    return load_config(run_dir)


def _staleness_max(records) -> List[float]:
    return [r["staleness/max"] for r in records if "staleness/max" in r]


def _unlogged(run_dir: Path) -> List[int]:
    """Steps AReaL ran without writing their stats, as the trail's status names them."""
    return list(read_status(run_dir).get("unlogged", []))


def _recovered_at(run_dir: Path) -> int:
    """The global step AReaL's recover resumed from (its log: 'Recovering from StepInfo(…, global_step=N, …)')."""
    log = (run_dir / LOG_NAME).read_text(errors="replace")
    found = re.findall(r"Recovering from StepInfo\(.*?global_step=(\d+)", log)
    assert found, f"{run_dir.name}: AReaL did not recover"
    return int(found[-1])


def test_sweep_finishes_with_every_trail_done_once_per_step(runs):
    assert runs.second_rc == 0, (runs.root.parent / "second.txt").read_text()[-3000:]
    assert len(runs.trail_dirs) == TRAILS
    for run_dir in runs.trail_dirs:
        status = read_status(run_dir)
        assert status["state"] == "done", (run_dir.name, status)
        unlogged = _unlogged(run_dir)
        steps = [r["step"] for r in read_records(run_dir)]
        assert steps == [s for s in range(1, STEPS + 1) if s not in unlogged], (run_dir.name, steps, unlogged)
        if unlogged:
            # only a step AReaL's recover resumed past (stopped between its checkpoint and its stats), and named
            assert run_dir == runs.interrupted and max(unlogged) <= _recovered_at(run_dir), (run_dir.name, unlogged)
            assert f"AReaL wrote no stats for step{'s' if len(unlogged) > 1 else ''} {unlogged[0]}" in status["reason"]


def test_ctrl_c_leaves_no_areal_process_behind(runs):
    assert runs.first_rc != 0
    assert runs.interrupted_status["state"] == "cancelled", runs.interrupted_status
    assert runs.left_after_ctrl_c == []


def test_interrupted_trail_resumes_through_areals_recover(runs):
    run_dir = runs.interrupted
    log = (run_dir / LOG_NAME).read_text(errors="replace")
    assert log.count("harness: cd ") == 2 and RECOVERED in log.split("harness: cd ")[-1]
    files = sorted((run_dir / TENSORBOARD_DIR).rglob(EVENT_GLOB))
    assert len(files) == 2, files
    # one event file per AReaL run: the resumed run's starts after the first run's steps, AReaL did not start over
    first_steps = sorted(min(e.step for e in EventFileLoader(str(path)).Load() if e.HasField("summary"))
                         for path in files)
    assert first_steps[0] == 0 and first_steps[1] >= CHECKPOINT_EVERY, first_steps


def test_realised_staleness_respects_stale(runs):
    stale_4_seen = []
    for run_dir in runs.trail_dirs:
        stale = int(_cfg(run_dir).stale)
        records = read_records(run_dir)
        realised = _staleness_max(records)
        assert len(realised) == len(records) == STEPS - len(_unlogged(run_dir)), run_dir.name
        assert max(realised) <= stale, (run_dir.name, realised)   # the resumed trail too: AReaL restores its count
        if stale == 4:
            stale_4_seen += realised
    assert max(stale_4_seen) > 0, "with η = 4 AReaL trained on samples of older policies"


def test_rollout_cap_shows_in_areals_own_counters(runs):
    by_cap: Dict[int, List[int]] = {}
    for run_dir in runs.trail_dirs:
        cfg = _cfg(run_dir)
        most = max_running(run_dir / LOG_NAME)
        assert most is not None, f"{run_dir.name}: no 'Submit rollout' line of AReaL's controller in its log"
        assert most <= cfg.rollout, (run_dir.name, most)
        by_cap.setdefault(int(cfg.rollout), []).append(most)
    # the cap binds: AReaL ran as many rollouts at once as it allowed, and the trails of the larger cap ran more
    assert by_cap[2] == [2] and max(by_cap[8]) == 8, by_cap


def test_m2po_logs_its_kept_tokens(runs):
    for run_dir in runs.trail_dirs:
        cfg = _cfg(run_dir)
        for record in read_records(run_dir):
            assert "areal/ppo_actor/update/n_valid_tokens" in record and "areal/ppo_actor/n_valid_tokens" in record
            frac = record["m2po/masked_frac"]
            assert 0.0 <= frac <= 1.0
            if cfg.algo.name == "grpo":
                assert frac == 0.0, (run_dir.name, record["step"])   # without M2PO's mask no token is dropped


def test_journals_fill_while_areal_runs(runs):
    assert runs.live == {p.name for p in runs.trail_dirs}


def test_mlflow_has_a_run_per_trail_and_the_report_covers_them(runs):
    with sqlite3.connect(runs.db) as db:
        rows = db.execute(
            "SELECT r.run_uuid, t.value FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id "
            "JOIN tags t ON t.run_uuid = r.run_uuid WHERE e.name = ? AND t.key = 'harness.trail'",
            (f"harness/{SWEEP}",)).fetchall()
        assert len(rows) == TRAILS, rows
        logged = {json.loads((d / "trail.json").read_text())["name"]: STEPS - len(_unlogged(d))
                  for d in runs.trail_dirs}
        for run_uuid, trail in rows:
            steps = db.execute("SELECT COUNT(DISTINCT step) FROM metrics WHERE run_uuid = ? AND key = ?",
                               (run_uuid, "train/grad_norm")).fetchone()[0]
            assert steps == logged[trail], (trail, steps)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "report", SWEEP, "--root", str(runs.root),
                           "--source", "mlflow"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report_dir = runs.root / SWEEP / "report"
    report = (report_dir / "REPORT.md").read_text()
    with open(report_dir / "trails.csv", newline="") as handle:
        table = {row["id"]: row for row in csv.DictReader(handle)}
    for run_dir in runs.trail_dirs:
        trail_id = json.loads((run_dir / "trail.json").read_text())["id"]
        assert table[trail_id]["state"] == "done" and table[trail_id]["steps"] == str(STEPS), table[trail_id]
        assert table[trail_id]["display"] in report  # its row in the report's trail table
