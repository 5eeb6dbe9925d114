"""Reliability and hostile inputs: sweep names stay under --root, one writer per sweep and per trail (OS file locks
released by the kernel when the holder dies), dead trails shown as interrupted, Slurm parameters that cannot inject
lines into the batch script, dry runs that execute nothing the sweep names."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FinishedSweep
from omegaconf import OmegaConf
from tiny_trail import tiny_trail

from harness.backends.runner import run_trail_dir
from harness.cli import main
from harness.errors import HarnessError
from harness.store.journal import read_records
from harness.store.locks import SWEEP_LOCK, TRAIL_LOCK, FileLock, LockHeld, is_locked, read_holder
from harness.store.rundir import read_status, record_outcome
from harness.store.states import TrailState
from harness.store.sweepdir import trail_dirs, write_sweep_meta

REPO = Path(__file__).resolve().parent.parent

HOLD = ("import fcntl, json, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, json.dumps({'pid': os.getpid(), 'host': 'elsewhere'}).encode())\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n")


def _hold(path: Path) -> subprocess.Popen:
    """Another live process holding the flock at `path` (as a running trail or sweep would)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


# --- names are names -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escape", "/x", "a/b", ".hidden", "..", "", "a b", "x\ny"])
def test_bad_sweep_names_are_refused_before_anything_is_written(name: str, tmp_path: Path, capsys) -> None:
    root = tmp_path / "deep" / "er" / "runs"
    rc = main(["sweep", "stale=0", "tracking=none", "--name", name, "--root", str(root)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("harness: error: invalid sweep name") and "one path component" in err
    assert not any(tmp_path.rglob("*")), "nothing is written anywhere"


def test_a_sweep_file_name_must_be_a_name(tmp_path: Path, capsys) -> None:
    sweep_file = tmp_path / "hostile.yaml"
    sweep_file.write_text("name: ../../..\noverrides: [stale=0, tracking=none]\n")
    rc = main(["sweep", str(sweep_file), "--root", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and "invalid sweep name '../../..' from 'name' in sweep file" in err
    assert [p.name for p in tmp_path.iterdir()] == ["hostile.yaml"]


def test_good_names_pass(tmp_path: Path, capsys) -> None:
    assert main(["sweep", "stale=0", "tracking=none", "--name", "run-1_v2.3", "--root", str(tmp_path),
                 "--dry-run"]) == 0
    assert "run-1_v2.3" in capsys.readouterr().out


# --- locks -----------------------------------------------------------------------------------------------------

def test_lock_names_its_holder_and_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / SWEEP_LOCK
    holder = _hold(path)
    assert is_locked(path)
    with pytest.raises(LockHeld, match=f"PID {holder.pid} on host elsewhere"):
        FileLock(path, "sweep 'x'").acquire()
    holder.kill()  # SIGKILL: the kernel releases the lock
    holder.wait()
    assert not is_locked(path)
    with FileLock(path) as lock:
        assert lock.held and read_holder(path)["pid"] == os.getpid() and is_locked(path)
    assert not is_locked(path)


def test_a_worker_never_runs_a_trail_another_process_holds(tmp_path: Path) -> None:
    run_dir = tmp_path / "trail"
    run_dir.mkdir()
    OmegaConf.save(OmegaConf.create({"engine": {"name": "embedded"}}), run_dir / "config.yaml")
    record_outcome(run_dir, TrailState.RUNNING, "", pid=12345)
    before = (run_dir / "status.json").read_bytes()
    holder = _hold(run_dir / TRAIL_LOCK)
    try:
        with pytest.raises(LockHeld, match=f"trail 'trail' is in use by PID {holder.pid}"):
            run_trail_dir(run_dir)
        worker = subprocess.run([sys.executable, "-m", "harness.backends.worker", str(run_dir)], capture_output=True,
                                text=True, timeout=120)
        assert worker.returncode == 75 and "harness: error: trail 'trail' is in use" in worker.stderr
    finally:
        holder.kill()
        holder.wait()
    assert (run_dir / "status.json").read_bytes() == before, "the refused worker wrote nothing"
    assert not (run_dir / "journal.jsonl").exists()


def _running_trail(sweep_dir: Path, name: str) -> Path:
    run_dir = sweep_dir / name
    run_dir.mkdir(parents=True)
    (run_dir / "trail.json").write_text(json.dumps({"name": name, "id": name}))
    record_outcome(run_dir, TrailState.RUNNING, "", step=3, total_steps=6, pid=999999, host=socket.gethostname())
    return run_dir


def test_status_shows_a_running_trail_whose_holder_died_as_interrupted(tmp_path: Path, capsys) -> None:
    sweep_dir = tmp_path / "runs" / "s"
    dead, alive = _running_trail(sweep_dir, "dead"), _running_trail(sweep_dir, "alive")
    write_sweep_meta(sweep_dir, name="s", trails=["dead", "alive"], backend="local")
    holder = _hold(alive / TRAIL_LOCK)
    try:
        assert main(["status", "s", "--root", str(tmp_path / "runs")]) == 0
    finally:
        holder.kill()
        holder.wait()
    out = capsys.readouterr().out
    assert "interrupted" in out
    assert read_status(dead)["state"] == "interrupted" and "rerun" in read_status(dead)["reason"]
    assert read_status(alive)["state"] == "running", "a trail whose process lives is left alone"
    assert not TrailState.INTERRUPTED.finished and TrailState.INTERRUPTED.terminal


def _sweep_cmd(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "sweep", "stale=0", "algo=grpo,m2po",
            *tiny_trail("engine.steps=30", "engine.checkpoint_every=5"), "backend.max_parallel=1", "--name", "same",
            "--root", str(root), "--no-report", *extra]


@pytest.mark.e2e
def test_two_sweeps_on_the_same_name_one_runs_the_other_refuses(root: Path) -> None:
    procs = [subprocess.Popen(_sweep_cmd(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=REPO) for _ in range(2)]
    waiting = None
    deadline = time.time() + 60
    while time.time() < deadline and not is_locked(root / "same" / SWEEP_LOCK):
        time.sleep(0.1)
    if is_locked(root / "same" / SWEEP_LOCK):  # a third one that waits for the sweep instead of refusing
        waiting = subprocess.Popen(_sweep_cmd(root, "--wait"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, cwd=REPO)
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for rc, _, err in results if rc == 2)
    winner = next(p for p, (rc, _, _) in zip(procs, results, strict=True) if rc == 0)
    assert f"harness: error: sweep 'same' is in use by PID {winner.pid} on host {socket.gethostname()}" in refused
    for run_dir in trail_dirs(root / "same"):
        steps = [r["step"] for r in read_records(run_dir)]
        assert steps == list(range(0, 31)), f"{run_dir.name}: every step exactly once, got {steps}"
        assert read_status(run_dir)["state"] == "done"
    assert waiting is not None, "the first sweep ended before a waiting one could start"
    rc, out, err = waiting.wait(timeout=300), *waiting.communicate()
    assert rc == 0 and "waiting for it to end (--wait)" in out and "2 already finished" in out, (out, err)


def test_a_step_written_again_replaces_the_later_records(tmp_path: Path) -> None:
    """A trail restarted from scratch (killed before its first checkpoint) rewrites its steps, never doubles them."""
    from harness.store.journal import Journal

    with Journal(tmp_path) as journal:
        for step in (1, 2, 3):
            journal.append(step, {"x": step})
    with Journal(tmp_path) as journal:  # a new process, no checkpoint: starts again at step 1
        for step in (1, 2):
            journal.append(step, {"x": 10 * step})
    assert [(r["step"], r["x"]) for r in read_records(tmp_path)] == [(1, 10.0), (2, 20.0)]


# --- Slurm parameters and dry runs -----------------------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("+backend.additional_parameters.qos='high\n#SBATCH --wrap=evil'",
     "'backend.additional_parameters.qos': 'high\\n#SBATCH --wrap=evil' (allowed: text without newlines"),
    ("+backend.additional_parameters.setup=x", "'backend.additional_parameters.setup': 'x' (allowed: keys that "
                                               "submitit writes as sbatch options: account,"),
    ("+backend.additional_parameters.reservation=r", "'backend.additional_parameters.reservation'"),
    ("backend.partition='gpu\rx'", "'backend.partition': 'gpu\\rx' (allowed: text without newlines"),
    ("backend.gres='gpu:1\x07'", "'backend.gres'"),
    ("root='runs\n#SBATCH --x'", "'root': 'runs\\n#SBATCH --x' (allowed: text without newlines"),
])
def test_slurm_parameters_that_would_reach_the_sbatch_script_are_checked(override: str, message: str) -> None:
    from harness.spec.compose import compose_trail

    with pytest.raises(HarnessError) as info:
        compose_trail(["backend=slurm", override])
    assert message in str(info.value), str(info.value)
    cfg = compose_trail(["backend=slurm", "+backend.additional_parameters.qos=high",
                         "+backend.additional_parameters.mail-type=END"])
    assert cfg.backend.additional_parameters == {"qos": "high", "mail-type": "END"}


@pytest.mark.parametrize("backend, module", [("slurm", "submitit"), ("ray", "ray")])
def test_a_backend_whose_library_is_missing_is_named_before_anything_is_written(
        backend: str, module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from harness.backends import checks

    real = checks.installed
    monkeypatch.setattr(checks, "installed", lambda name: name != module and real(name))
    rc = main(["sweep", f"backend={backend}", "tracking=none", "--name", "x", "--root", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"harness: error: backend={backend} needs the '{module}' package")
    assert len(err.strip().splitlines()) == 1 + ("in trail with overrides" in err)
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_executes_nothing_the_sweep_file_names(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    sweep_file = tmp_path / "areal.yaml"
    sweep_file.write_text(f"overrides: [engine=areal, 'engine.python={script}', 'engine.areal_path={tmp_path}', "
                          f"tracking=none]\n")
    rc = main(["sweep", str(sweep_file), "--root", str(tmp_path / "runs"), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and not marker.exists(), "a dry run ran the sweep's engine.python"
    assert "areal's own validation of the trails was skipped" in out and "--preflight" in out
    rc = main(["sweep", str(sweep_file), "--root", str(tmp_path / "runs"), "--dry-run", "--preflight"])
    assert rc == 2 and marker.exists(), "--preflight runs AReaL's parser with engine.python"
    assert not (tmp_path / "runs").exists()


# --- a full disk ---------------------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path):
    """A tmpfs of 8 KiB mounted for the test (resizable with `mount -o remount,size=…`); skipped where this process
    may not mount file systems (not root, or a container without CAP_SYS_ADMIN)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): a full disk is not tested")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _resize(mnt: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)


def _harness(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`harness ARGS` in this process (its workers are processes of their own): exit code, stdout, stderr. An
    exception that escapes the command fails the test as a traceback would."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.e2e
def test_a_full_disk_ends_the_sweep_cleanly_and_a_rerun_completes_once(small_disk: Path, tiny: list[str],
                                                                        capsys) -> None:
    args = ["sweep", "stale=0,1", *tiny, "backend.max_parallel=1", "--name", "full", "--root", str(small_disk),
            "--no-report"]
    # no room for the run dirs: one line naming the path and the errno
    code, _, err = _harness(capsys, *args)
    assert code != 0, err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    assert line.startswith(f"harness: error: {small_disk}/full") and "(errno 28, ENOSPC)" in line, line
    # room for the run dirs, not for the checkpoints: the trails fail with the reason, no temp file is left
    _resize(small_disk, "128k")
    code, out, err = _harness(capsys, *args)
    assert code != 0 and "Traceback" not in out + err, out
    assert not list(small_disk.rglob("*.tmp")), "temp files are removed"
    for run_dir in trail_dirs(small_disk / "full"):
        status = read_status(run_dir)
        assert status["state"] in ("failed", "done"), status
    assert "did not finish cleanly" in out and "full disk" in out
    # with space, a rerun completes every trail, each step exactly once
    _resize(small_disk, "4m")
    code, out, err = _harness(capsys, *args)
    assert code == 0, out + err
    for run_dir in trail_dirs(small_disk / "full"):
        assert [r["step"] for r in read_records(run_dir)] == [0, 1, 2, 3, 4, 5, 6]


# --- clean errors ------------------------------------------------------------------------------------------------

def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), err
    return lines[0]


@pytest.mark.parametrize("overrides, message", [
    (["stale=${oops}"], "invalid value for 'stale': '${oops}' cannot be resolved (Interpolation key 'oops' not found)"),
    (["algo="], "invalid value for 'algo': '' (allowed: grpo | is | m2po)"),
    (["=3"], "invalid override '=3' (command line): no key before '='"),
    (["stale=1", "stale=2"], "multiple values for 'stale' (command line): 'stale=1' and 'stale=2'"),
    (["stale=range(0,1001)"], "the sweep has 1001 trails, more than sweep.max_trails=1000 (allowed: pass --yes"),
])
def test_bad_overrides_end_in_one_line_naming_the_override(overrides: list[str], message: str, tmp_path: Path,
                                                           capsys) -> None:
    rc = main(["sweep", *overrides, "tracking=none", "--root", str(tmp_path / "runs"), "--dry-run"])
    line = _one_error_line(capsys)
    assert rc == 2 and message in line, line
    assert "tracking=none" not in line, "only the bad override is named, not the whole list"


def test_max_trails_is_a_setting_and_yes_confirms(tmp_path: Path, capsys) -> None:
    args = ["sweep", "stale=range(0,3)", "tracking=none"]
    flags = ["--root", str(tmp_path), "--dry-run"]
    assert main([*args, "sweep.max_trails=2", *flags]) == 2
    assert "more than sweep.max_trails=2" in _one_error_line(capsys)
    assert main([*args, "sweep.max_trails=2", *flags, "--yes"]) == 0
    assert main([*args, *flags]) == 0


def test_duplicate_keys_within_a_sweep_file_are_refused_but_the_command_line_overrides_the_file(
        tmp_path: Path, capsys) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("overrides: [stale=1, stale=2]\n")
    assert main(["sweep", str(dup), "--root", str(tmp_path), "--dry-run"]) == 2
    assert "multiple values for 'stale' (sweep file" in _one_error_line(capsys)
    ok = tmp_path / "ok.yaml"
    ok.write_text("overrides: [stale=1, tracking=none]\n")
    assert main(["sweep", str(ok), "stale=2", "--root", str(tmp_path), "--dry-run"]) == 0


@pytest.mark.parametrize("kind", ["binary", "directory"])
def test_a_sweep_file_that_is_not_one_is_named(kind: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "sweep.yaml"
    if kind == "binary":
        path.write_bytes(b"\x00\x01\xff\xfe\x80")
    else:
        path.mkdir()
    assert main(["sweep", str(path), "--root", str(tmp_path / "runs"), "--dry-run"]) == 2
    line = _one_error_line(capsys)
    assert str(path) in line and ("not a text file" if kind == "binary" else "is a directory") in line


def test_a_root_that_is_a_file_or_read_only_is_named(tmp_path: Path, capsys) -> None:
    assert main(["sweep", "stale=0", "tracking=none", "--root", f"{tmp_path}/a\nb", "--name", "x"]) == 2
    assert "invalid value for '--root'" in _one_error_line(capsys) and not any(tmp_path.iterdir())
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["sweep", "stale=0", "tracking=none", "--root", str(afile), "--name", "x"]) == 2
    assert f"root {afile} is not a directory" in _one_error_line(capsys)
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=8k", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        assert main(["sweep", "stale=0", "tracking=none", "--root", str(ro), "--name", "x"]) == 2
        assert "Read-only file system (errno 30, EROFS)" in _one_error_line(capsys)
    finally:
        subprocess.run(["umount", str(ro)], check=False)


# --- no code from data files -----------------------------------------------------------------------------------

class _Payload:
    """A pickle that, if ever unpickled, creates `marker` (stands in for any code a planted file would run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _trail_dir(tmp_path: Path, *extra: str) -> Path:
    from harness.spec.compose import compose_trail
    from harness.store.rundir import save_config

    overrides = tiny_trail(*extra)
    run_dir = tmp_path / "trail"
    save_config(run_dir, compose_trail(overrides), overrides)
    return run_dir


def _plant(path: Path, marker: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": _Payload(marker), "info": {}, "step": _Payload(marker)}, path)


def test_a_planted_checkpoint_never_runs_and_the_trail_fails_naming_it(tmp_path: Path) -> None:
    run_dir = _trail_dir(tmp_path)
    marker, ckpt = tmp_path / "pwned", run_dir / "checkpoint" / "state.pt"
    _plant(ckpt, marker)
    assert run_trail_dir(run_dir) == TrailState.FAILED
    reason = read_status(run_dir)["reason"]
    assert not marker.exists(), "the checkpoint's pickle payload ran"
    assert str(ckpt) in reason and "Python objects" in reason and "Traceback" not in reason, reason
    assert f"Delete the trail's checkpoint directory {ckpt.parent}" in reason, reason


def test_a_planted_base_model_cache_never_runs_and_is_named_with_what_to_do(tmp_path: Path) -> None:
    from harness.engines.embedded.base_model import cache_path
    from harness.store.rundir import load_config

    run_dir = _trail_dir(tmp_path, f"engine.cache_dir={tmp_path / 'cache'}")  # its own cache, to plant a file in
    marker, cached = tmp_path / "pwned", cache_path(load_config(run_dir).engine)
    _plant(cached, marker)
    assert run_trail_dir(run_dir) == TrailState.FAILED
    reason = read_status(run_dir)["reason"]
    assert not marker.exists(), "the cached base model's pickle payload ran"
    assert str(cached) in reason and f"Delete {cached}: the next run rebuilds it" in reason, reason
    cached.unlink()
    assert run_trail_dir(run_dir) == TrailState.DONE


def test_a_truncated_checkpoint_is_named_as_corrupt_with_what_to_do(tmp_path: Path) -> None:
    run_dir = _trail_dir(tmp_path)
    assert run_trail_dir(run_dir) == TrailState.DONE
    ckpt = run_dir / "checkpoint" / "state.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    assert run_trail_dir(run_dir) == TrailState.FAILED
    reason = read_status(run_dir)["reason"]
    assert str(ckpt) in reason and "corrupt or truncated" in reason and "Delete the trail's checkpoint" in reason
    assert "weights_only=False" not in reason, "never advise loading it unsafely"
    import shutil

    shutil.rmtree(ckpt.parent)
    assert run_trail_dir(run_dir) == TrailState.DONE
    assert [r["step"] for r in read_records(run_dir)] == list(range(0, 7))


# --- finished means complete -----------------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_done_trail_whose_journal_lost_lines_is_flagged_and_a_rerun_repairs_it(
        finished_sweep: FinishedSweep, root: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.orchestration import sweep

    monkeypatch.setattr(sweep.console, "width", 250)  # one table row per trail
    sweep_dir = finished_sweep.copy_to(root)
    torn, middle, *_ = trail_dirs(sweep_dir)
    lines = (torn / "journal.jsonl").read_bytes().splitlines(keepends=True)
    (torn / "journal.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][:10])   # a torn last line
    lines = (middle / "journal.jsonl").read_bytes().splitlines(keepends=True)
    (middle / "journal.jsonl").write_bytes(b"".join(lines[:3] + lines[4:]))         # step 3 lost (line 0: step 0)
    capsys.readouterr()
    name = finished_sweep.name
    assert main(["status", name, "--root", str(root)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "2/4 done" in out and "lacks step 6 of 6" in out and "lacks step 3 of 6" in out, out
    assert main(finished_sweep.args(root)) == 0
    for run_dir in (torn, middle):
        assert [r["step"] for r in read_records(run_dir)] == [0, 1, 2, 3, 4, 5, 6]
        assert read_status(run_dir)["state"] == "done"
    assert main(["status", name, "--root", str(root)]) == 0
    assert "4/4 done" in " ".join(capsys.readouterr().out.split())


# --- sweep.json has more than one writer --------------------------------------------------------------------------

def _write_keys(sweep_dir: str, prefix: str, n: int) -> None:
    for i in range(n):
        write_sweep_meta(Path(sweep_dir), **{f"{prefix}{i}": i})


def test_fields_written_to_sweep_json_by_two_processes_at_once_are_all_kept(tmp_path: Path) -> None:
    """The sweep command and its tracker process both merge fields into sweep.json: neither loses the other's."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    writers = [ctx.Process(target=_write_keys, args=(str(tmp_path), prefix, 40)) for prefix in ("a", "b")]
    for proc in writers:
        proc.start()
    for proc in writers:
        proc.join(120)
        assert proc.exitcode == 0
    meta = json.loads((tmp_path / "sweep.json").read_text())
    assert {f"{p}{i}" for p in "ab" for i in range(40)} <= set(meta)
