"""engine=areal: run one trail as an AReaL subprocess and bring its TensorBoard metrics into the journal as it goes.

AReaL runs in its own Python inside its checkout (`engine.python`, `engine.areal_path`); its stdout/stderr go to
<run_dir>/areal.log. While it runs, its event files are read every `engine.poll_seconds`; after it exits they are
read once more to the end. A non-zero exit raises, so the runner marks the trail failed with AReaL's last log lines.
A re-run of the same trail reuses experiment/trial name and fileroot, so AReaL's `recover.mode=auto` resumes it.
AReaL runs in a process session of its own, and every way the trail ends — AReaL's exit, a failure, the harness
cancelling the trail (SIGTERM, Ctrl-C) or `engine.timeout_s` passing — ends with its whole process tree stopped
(processes.py).
A step whose stats AReaL never wrote (stopped between its recover checkpoint and its stats, see describe_unlogged)
is named in the trail's status as unlogged, not left as a hole that a rerun would be expected to fill.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from omegaconf import DictConfig

from harness.engines import EngineResult, StepCallback
from harness.engines.areal import processes
from harness.engines.areal.command import LOG_NAME, TENSORBOARD_DIR, AReaLCommand, command_for_run_dir
from harness.engines.areal.ingest import JournalSync
from harness.engines.areal.preflight import preflight as _preflight
from harness.engines.areal.tiny_task import ensure_built
from harness.spec.trails import Trail
from harness.store.journal import Journal, missing_steps
from harness.store.rundir import name_steps
from harness.store.states import TrailState

COMMAND_NAME = "areal_command.sh"   # <run_dir>/areal_command.sh: the exact command, to rerun by hand
_PROGRESS_RE = re.compile(rb"Train step (\d+)/(\d+) done")


class AReaLFailed(RuntimeError):
    """AReaL exited non-zero; the message carries its last log lines."""


def preflight(trails: Sequence[Trail], sweep_dir: Optional[Path] = None) -> List[str]:
    """Validate every trail's AReaL command with AReaL's own parser (see preflight.py)."""
    return _preflight(trails, sweep_dir)


def _log_tail(path: Path, n_bytes: int = 65536) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - n_bytes))
            return fh.read()
    except OSError:
        return b""


def _total_from_log(log: Path) -> Optional[int]:
    """AReaL logs 'Train step k/N done.' each step: N is the run's total, known only once AReaL has started."""
    matches = _PROGRESS_RE.findall(_log_tail(log))
    return int(matches[-1][1]) if matches else None


def _launch(cmd: AReaLCommand, log: Path, mark: str) -> subprocess.Popen:
    if not Path(cmd.cwd).is_dir():
        raise AReaLFailed(f"AReaL checkout {cmd.cwd} does not exist (set engine.areal_path)")
    env: Dict[str, str] = {**os.environ, **cmd.env, processes.MARK: mark}
    with open(log, "ab") as out:
        out.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} harness: {cmd.shell()}\n".encode())
        out.flush()
        try:
            return subprocess.Popen(cmd.argv, cwd=cmd.cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except FileNotFoundError as exc:
            raise AReaLFailed(f"cannot start AReaL: {exc} (engine.python={cmd.argv[0]!r})") from exc


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a backend cancelling the trail) becomes an interrupt, so AReaL is stopped and the trail cancelled."""


def run(cfg: DictConfig, run_dir: Path, journal: Journal, on_step: StepCallback) -> EngineResult:
    run_dir = Path(run_dir)
    cmd = command_for_run_dir(cfg, run_dir)
    if cfg.engine.get("tiny_task"):
        ensure_built(cfg.engine)   # built by the sweep before launch where it could; else here, once, under a lock
    (run_dir / COMMAND_NAME).write_text("#!/bin/sh\n" + cmd.shell() + "\n", encoding="utf-8")
    (run_dir / TENSORBOARD_DIR).mkdir(parents=True, exist_ok=True)
    log = run_dir / LOG_NAME
    total = [int(cfg.engine.total_train_steps or 0)]
    fixed_total = bool(total[0])

    def from_log() -> int:
        """AReaL's progress line names the epochs' length ("Train step 1/160"), which total_train_steps cuts short:
        the log is read only when the trail sets no total_train_steps."""
        return total[0] if fixed_total else _total_from_log(log) or total[0]

    def on_record(step: int, metrics: Dict[str, float]) -> None:
        on_step(step, max(total[0], step), metrics)

    sync = JournalSync(run_dir, journal, run_dir / TENSORBOARD_DIR, on_record)
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        def _on_term(signum: int, frame: object) -> None:
            raise _Terminated()
        old_handler = signal.signal(signal.SIGTERM, _on_term)
    mark = str(run_dir.resolve())
    timeout = cfg.engine.get("timeout_s")
    deadline = time.monotonic() + float(timeout) if timeout else float("inf")
    timed_out = False
    proc = _launch(cmd, log, mark)
    try:
        while True:
            try:
                proc.wait(timeout=max(0.0, min(float(cfg.engine.poll_seconds), deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                pass
            total[0] = from_log()
            sync.sync()
            if time.monotonic() >= deadline:
                timed_out = True
                break
        processes.stop(proc, mark)
        total[0] = from_log()
        sync.sync(final=not timed_out)
    finally:
        processes.stop(proc, mark)
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
        if sync.journal is not journal:   # a resume rewrote the journal and reopened it
            sync.journal.close()
    if timed_out:
        raise AReaLFailed(f"AReaL ran past engine.timeout_s={timeout:g} s and was stopped (see {log})")
    if proc.returncode != 0:
        tail = _log_tail(log, 4096).decode("utf-8", "replace").strip().splitlines()[-8:]
        raise AReaLFailed(f"AReaL exited with code {proc.returncode} (see {log}): " + " | ".join(tail))
    unlogged = tuple(missing_steps(run_dir, sync.cursor))
    return EngineResult(TrailState.DONE, sync.cursor, describe_unlogged(unlogged), unlogged)


def describe_unlogged(steps: Sequence[int]) -> str:
    """Why a finished AReaL run can lack a step's stats for good: AReaL saves its recover checkpoint before it writes
    the step's stats (areal 1.0.4, areal/trainer/rl_trainer.py, PPOTrainer.train: checkpoint_for_recover, then eval,
    then _export_and_commit_stats), so a run stopped in between resumes after a step whose stats were never written."""
    if not steps:
        return ""
    return (f"AReaL wrote no stats for {name_steps(steps)}: it was stopped after saving its recover checkpoint "
            f"and before writing them, and its recover resumed after the checkpoint")
