"""Reliability benchmark: a sweep SIGKILLed at random moments loses and duplicates no step, its MLflow store holds
every step exactly once however the MLflow and report phases are cut short or its tracker is stopped, and hostile
inputs are refused before anything is written.

    python benchmarks/chaos_bench.py [--kills 20] [--steps 30] [--tracked-rounds 8] [--seed 0]
                                                                                 → reports/bench_chaos.md

Chaos: a sweep of 6 tiny trails runs once uninterrupted (the reference), then again under another name, killed
`--kills` times as a whole process group (the sweep and its workers, as a crashed node or an OOM killer would) at a
seeded random moment, each kill followed by a rerun of the same command; a last rerun runs to the end. Every journal
is then read line by line: a step of 1..steps it lacks is lost, a step on two lines is duplicated, and the curves are
compared with the reference (every metric but times). Why kill the group: killing only the sweep process leaves its
workers to finish their trails, which tests less.

Tracked chaos: a sweep that tracks to a sqlite store (its tracker on, a heartbeat timeout of 3 s) grows by one new
seed a round (`--extend`), and each round meets a seeded fault: the sweep SIGKILLed after its trails ended, while it
catches MLflow up and writes its report; `harness report` or `harness sync` SIGKILLed part-way; or its tracker
SIGSTOPped while trails run (the sweep must replace it). A last rerun and `harness sync` follow; then every trail's
MLflow history is compared with its journal (a (metric, step) missing is lost, one logged twice is duplicated), the
report must be whole, and no file may be written outside the sweep's directory, its store and the base-model cache.

Hostile inputs: the bad sweep names, overrides and sweep files the tests try, each through `harness sweep … --dry-run`
in its own process; and hostile sweep directories (links and FIFOs where files belong, damaged records, a run dir of
another trail, a sweep name reused with another config), each a copy of the reference sweep given to `harness
sweep`, `status` or `report`. Refused = exit code 2, one `harness: error:` line, nothing written (a link's target
unchanged, the copy as it was).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from test_config_validation import BAD_OVERRIDES  # noqa: E402
from tiny_trail import tiny_trail  # noqa: E402

from harness.store.locks import read_holder  # noqa: E402
from harness.store.rundir import read_status, record_outcome  # noqa: E402
from harness.store.states import TrailState  # noqa: E402
from harness.store.sweepdir import read_trail_meta, trail_dirs  # noqa: E402

CLI = [sys.executable, "-m", "harness.cli"]
AXES = ["stale=0,2", "algo=grpo,m2po,is"]
TRAILS = 6                                                 # 2 lags × 3 algorithms
BAD_NAMES = ["../../escape", "/x", "a/b", ".hidden", "..", "", "a b", "x\ny"]
BAD_CLI = [
    ["stale=${oops}"], ["algo="], ["=3"], ["stale=1", "stale=2"], ["stale=range(0,1001)"],
    ["backend=slurm", "+backend.additional_parameters.qos='high\n#SBATCH --wrap=evil'"],
    ["backend=slurm", "+backend.additional_parameters.setup=x"],
    ["backend=slurm", "+backend.additional_parameters.reservation=r"],
    ["backend=slurm", "backend.partition='gpu\rx'"], ["backend=slurm", "backend.gres='gpu:1\x07'"],
    ["backend=slurm", "root='runs\n#SBATCH --x'"],
]
BAD_SWEEP_FILES: List[Tuple[str, object]] = [        # (label, text | bytes | None for a directory)
    ("name escapes the root", "name: ../../..\noverrides: [stale=0, tracking=none]\n"),
    ("not YAML", "overrides: [stale=1\n"), ("not a mapping", "- just a list\n"),
    ("unknown key", "overides: [stale=1]\n"), ("trails not a list", "trails: {algo: grpo}\n"),
    ("bad value", "overrides: [stale=oops]\n"), ("duplicate keys", "overrides: [stale=1, stale=2]\n"),
    ("binary", b"\x00\x01\xff\xfe\x80"), ("a directory", None),
    ("nested 50,000 deep", "overrides: " + "[" * 50_000 + "]" * 50_000 + "\n"),
]
HOSTILE_TIMEOUT_S = 600  # a command that takes longer hangs (a FIFO read, a range enumerated)


def tiny(steps: int) -> List[str]:
    """The test suite's tiny trail with `steps` steps."""
    return tiny_trail(f"engine.steps={steps}")


def sweep_cmd(root: Path, name: str, steps: int) -> List[str]:
    return [*CLI, "sweep", *AXES, *tiny(steps), "backend.max_parallel=2", "--name", name, "--root", str(root),
            "--no-report"]


def run_to_end(cmd: List[str], env: Dict[str, str]) -> Tuple[float, float]:
    """(seconds the command took, unix time it was launched)."""
    launched, start = time.time(), time.perf_counter()
    subprocess.run(cmd, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, launched


def start_up_s(sweep_dir: Path, launched: float) -> float:
    """From launching the sweep to its first journal line: imports and worker start, before any step."""
    firsts = []
    for run_dir in trail_dirs(sweep_dir):
        with open(run_dir / "journal.jsonl", encoding="utf-8") as fh:
            firsts.append(float(json.loads(fh.readline())["time"]))
    return max(0.0, min(firsts) - launched)


def journal_steps(run_dir: Path) -> List[int]:
    """Every step on a complete journal line, in file order (a torn last line is not a step)."""
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            steps.append(int(json.loads(line)["step"]))
    return steps


def curves(run_dir: Path) -> List[dict]:
    path = run_dir / "journal.jsonl"
    return [{k: v for k, v in json.loads(line).items() if k != "time" and not k.startswith("perf/")}
            for line in path.read_text(encoding="utf-8").splitlines()]


def total_steps(sweep_dir: Path) -> int:
    return sum(len(journal_steps(d)) for d in trail_dirs(sweep_dir)) if sweep_dir.exists() else 0


def wait_for_moment(proc: subprocess.Popen, sweep_dir: Path, moment: Tuple[str, float]) -> None:
    """Return at the moment to kill: after a delay ("start-up", seconds), or once the sweep's journals hold
    `lines` more lines than when it was launched ("training", lines); earlier if the sweep ends."""
    kind, value = moment
    if kind == "start-up":
        try:
            proc.wait(timeout=value)
        except subprocess.TimeoutExpired:
            pass
        return
    target, deadline = total_steps(sweep_dir) + value, time.monotonic() + 300
    while proc.poll() is None and total_steps(sweep_dir) < target and time.monotonic() < deadline:
        time.sleep(0.02)


def draw_moment(rng: random.Random, startup_s: float, lines: int) -> Tuple[str, float]:
    """One kill in five lands in the start-up (imports, workers starting), the rest mid-training after a random
    number of new journal lines: a time alone would mostly land in the start-up or after the end of a sweep this
    small."""
    if rng.random() < 0.2:
        return "start-up", rng.uniform(0.0, startup_s)
    return "training", rng.randint(1, max(1, lines))


def chaos(root: Path, env: Dict[str, str], kills: int, steps: int, rng: random.Random, startup_s: float,
          trails: int) -> List[dict]:
    """Start the sweep and SIGKILL its process group at a random moment, `kills` times; a kill log per kill."""
    log = []
    sweep_dir = root / "chaos"
    for k in range(kills):
        before = total_steps(sweep_dir)
        moment = draw_moment(rng, startup_s, trails * steps // kills)  # the kills spread over the whole sweep
        proc = subprocess.Popen(sweep_cmd(root, "chaos", steps), env=env, cwd=REPO, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        launched = time.perf_counter()
        wait_for_moment(proc, sweep_dir, moment)
        ended = proc.poll() is not None
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the group outlives its leader when workers are still running
        except ProcessLookupError:
            pass
        proc.wait()
        log.append({"kill": k + 1, "moment": moment, "delay_s": time.perf_counter() - launched,
                    "steps_before": before, "steps_after": total_steps(sweep_dir), "sweep_had_ended": ended})
    return log


def check_trails(root: Path, steps: int) -> List[dict]:
    """Per trail of the killed sweep: lost and duplicated steps, state, and whether its curves equal the
    reference's (trails are matched by name)."""
    reference = {read_trail_meta(d).get("name"): d for d in trail_dirs(root / "reference")}
    rows = []
    for run_dir in trail_dirs(root / "chaos"):
        seen = journal_steps(run_dir)
        name = read_trail_meta(run_dir).get("name")
        status = read_status(run_dir)
        rows.append({"trail": name, "state": status.get("state"), "attempts": status.get("attempts", 0),
                     "lines": len(seen), "lost": len(set(range(0, steps + 1)) - set(seen)),  # step 0: the base eval
                     "duplicated": len(seen) - len(set(seen)),
                     "same_curves": name in reference and curves(run_dir) == curves(reference[name])})
    return rows


def _written(root: Path, cwd: Path) -> bool:
    return root.exists() or any(cwd.iterdir())


def _refused(proc: Optional[subprocess.CompletedProcess]) -> bool:
    """Exit code 2 and exactly one line on stderr, `harness: error: …`."""
    if proc is None:
        return False
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("harness: error: ")


def _run(args: List[str], cwd: Path, env: Optional[Dict[str, str]] = None) -> Optional[subprocess.CompletedProcess]:
    """A harness command in its own process; None when it ran past HOSTILE_TIMEOUT_S (a hang)."""
    try:
        return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=HOSTILE_TIMEOUT_S,
                              env=env or dict(os.environ, PYTHONPATH=str(REPO)))
    except subprocess.TimeoutExpired:
        return None


def try_hostile(args: List[str], tmp: Path) -> bool:
    """Run `harness sweep <args> --dry-run` in a fresh directory; True when refused cleanly and nothing written."""
    cwd = Path(tempfile.mkdtemp(dir=tmp))
    root = cwd.parent / f"{cwd.name}-root"
    proc = _run(["sweep", *args, "--root", str(root), "--dry-run"], cwd)
    ok = _refused(proc) and not _written(root, cwd)
    if not ok:
        said = f"rc {proc.returncode}, {proc.stderr[-300:]!r}" if proc else "hung"
        print(f"NOT REFUSED: {str(args)[:200]}: {said}", file=sys.stderr)
    return ok


def snapshot(top: Path) -> Dict[str, Tuple[str, int, int]]:
    """Every entry under `top` (links not followed, a FIFO not opened): kind, size, mtime."""
    out: Dict[str, Tuple[str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            out[str(path.relative_to(top))] = (kind, st.st_size if kind == "file" else 0, st.st_mtime_ns)
    return out


Damage = Callable[[Path, Path], List[str]]  # (copied sweep dir, victim file) -> the harness command to run


def _link(name: str, in_trail: bool = False, failed: bool = False) -> Damage:
    def damage(sweep_dir: Path, victim: Path) -> List[str]:
        run_dir = trail_dirs(sweep_dir)[0]
        if failed:
            record_outcome(run_dir, TrailState.FAILED, "to be run again")
        path = (run_dir if in_trail else sweep_dir) / name
        path.unlink(missing_ok=True)
        path.symlink_to(victim)
        return ["rerun"]
    return damage


def _fifo(command: str) -> Damage:
    def damage(sweep_dir: Path, victim: Path) -> List[str]:
        journal = trail_dirs(sweep_dir)[0] / "journal.jsonl"
        journal.unlink()
        os.mkfifo(journal)
        return [command]
    return damage


def _bytes(name: str, content: bytes, in_trail: bool = False) -> Damage:
    def damage(sweep_dir: Path, victim: Path) -> List[str]:
        ((trail_dirs(sweep_dir)[0] if in_trail else sweep_dir) / name).write_bytes(content)
        return ["status"]
    return damage


def _other_trail(sweep_dir: Path, victim: Path) -> List[str]:
    run_dir = trail_dirs(sweep_dir)[0]
    record_outcome(run_dir, TrailState.FAILED, "to be run again")
    meta = json.loads((run_dir / "trail.json").read_text())
    (run_dir / "trail.json").write_text(json.dumps(meta | {"id": "0123456789abcdef"}))
    return ["rerun"]


def _rebound(sweep_dir: Path, victim: Path) -> List[str]:
    return ["rerun", "engine.lr=0.5"]


HOSTILE_DIRS: List[Tuple[str, Damage]] = [
    ("journal.jsonl a link", _link("journal.jsonl", in_trail=True)),
    ("status.json a link", _link("status.json", in_trail=True)),
    ("sweep.lock a link", _link("sweep.lock")),
    (".sweep.json.lock a link", _link(".sweep.json.lock")),
    ("trail.lock a link", _link("trail.lock", in_trail=True, failed=True)),
    ("journal.jsonl a FIFO (status)", _fifo("status")),
    ("journal.jsonl a FIFO (report)", _fifo("report")),
    ("sweep.json a JSON list", _bytes("sweep.json", b"[1, 2]")),
    ("sweep.json not UTF-8", _bytes("sweep.json", b"\xff\xfe{}")),
    ("sweep.json trails not a list", _bytes("sweep.json", b'{"name": "reference", "trails": "abc"}')),
    ("status.json not UTF-8", _bytes("status.json", b'{"state": "done\xff"}', in_trail=True)),
    ("trail.json a JSON list", _bytes("trail.json", b"[]", in_trail=True)),
    ("a run dir of another trail", _other_trail),
    ("the name with another config", _rebound),
]


def try_hostile_dir(label: str, damage: Damage, tmp: Path, steps: int) -> bool:
    """Copy the reference sweep, damage the copy, run the command: refused in one line, nothing written (the copy
    as it was after the damage, the victim as it was)."""
    case = Path(tempfile.mkdtemp(dir=tmp))
    root, cwd, victim = case / "runs", case / "cwd", case / "victim.txt"
    cwd.mkdir()
    victim.write_text("outside the sweep\n")
    sweep_dir = Path(shutil.copytree(tmp / "runs" / "reference", root / "reference", symlinks=True))
    command, *extra = damage(sweep_dir, victim)
    before = snapshot(case)
    if command == "rerun":
        args = ["sweep", *AXES, *tiny(steps), *extra, "backend.max_parallel=2", "--name", "reference", "--root",
                str(root), "--no-report"]
    else:
        args = [command, "reference", "--root", str(root)]
    proc = _run(args, cwd)
    ok = _refused(proc) and snapshot(case) == before and victim.read_text() == "outside the sweep\n"
    if not ok:
        said = f"rc {proc.returncode}, {(proc.stdout + proc.stderr)[-300:]!r}" if proc else "hung"
        print(f"NOT REFUSED: {label}: {said}", file=sys.stderr)
    return ok


def hostile(tmp: Path, steps: int) -> Dict[str, Tuple[int, int]]:
    """(tried, refused) per kind of hostile input."""
    files = tmp / "sweep-files"
    files.mkdir()
    cases: Dict[str, List[List[str]]] = {
        "sweep names": [["stale=0", "tracking=none", "--name", n] for n in BAD_NAMES],
        "overrides": [[*o, "tracking=none"] for o, _ in BAD_OVERRIDES] + [[*o, "tracking=none"] for o in BAD_CLI]
        + [["seed=range(0,50000000)", "tracking=none"], ["seed=range(0,50000000)", "tracking=none", "--yes"]],
        "sweep files": [],
    }
    for i, (_, content) in enumerate(BAD_SWEEP_FILES):
        path = files / f"sweep{i}.yaml"
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        cases["sweep files"].append([str(path)])
    tried = {kind: (len(runs), sum(try_hostile(a, tmp) for a in runs)) for kind, runs in cases.items()}
    tried["sweep directories"] = (len(HOSTILE_DIRS),
                                  sum(try_hostile_dir(label, damage, tmp, steps) for label, damage in HOSTILE_DIRS))
    return tried


FAULTS = ("sweep killed in its MLflow and report phase", "`harness report` killed", "`harness sync` killed",
          "tracker stopped (SIGSTOP)")


def tracked_args(root: Path, store: Path, steps: int, seeds: int) -> List[str]:
    """`harness sweep` of seeds 1..`seeds` at lag 2, tracked to the sqlite `store` by the sweep's tracker."""
    overrides = tiny_trail(f"engine.steps={steps}", "tracking=mlflow", f"tracking.uri=sqlite:///{store}",
                           "tracking.sync_every_s=0.5", "tracking.heartbeat_timeout_s=3", "tracking.deadline_s=30")
    return ["sweep", "stale=2", f"seed=range(1,{seeds + 1})", *overrides, "backend.max_parallel=2", "--name",
            "tracked", "--root", str(root), "--extend"]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _tracker_pid(sweep_dir: Path, proc: subprocess.Popen, old: int) -> Optional[int]:
    """The PID of the tracker the running sweep started (not `old`, an earlier one), once it holds its lock."""
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        pid = int(read_holder(sweep_dir / "tracker.lock").get("pid") or 0)
        if pid and pid != old and _alive(pid):
            return pid
        time.sleep(0.05)
    return None


def tracked_round(fault: str, cwd: Path, root: Path, store: Path, steps: int, seeds: int, env: Dict[str, str],
                  rng: random.Random) -> dict:
    """One round: the sweep grown by a seed, and one fault; returns what happened."""
    sweep_dir = root / "tracked"
    args = tracked_args(root, store, steps, seeds)
    entry: dict = {"seeds": seeds, "fault": fault, "note": ""}
    if fault == FAULTS[0]:  # killed after its trails ended: in the tracker's final pass, the report, the summary run
        proc = subprocess.Popen([*CLI, *args], cwd=cwd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("trails ended"):
                delay = rng.uniform(0.0, 4.0)
                time.sleep(delay)
                entry["note"] = f"{delay:.1f} s after the trails ended"
                break
        _kill_group(proc)
        return entry
    if fault == FAULTS[3]:
        old = int(read_holder(sweep_dir / "tracker.lock").get("pid") or 0) if sweep_dir.exists() else 0
        proc = subprocess.Popen([*CLI, *args], cwd=cwd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        pid = _tracker_pid(sweep_dir, proc, old)
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)
        proc.wait()
        replaced = pid is not None and not _alive(pid)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        entry["note"] = (f"tracker {pid} stopped; " + ("killed and replaced by the sweep" if replaced else
                                                        "NOT replaced")) if pid else "no tracker seen"
        entry["replaced"] = replaced
        return entry
    subprocess.run([*CLI, *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    command = ["report", "tracked", "--root", str(root)] if fault == FAULTS[1] else ["sync", "tracked", "--root",
                                                                                     str(root)]
    proc = subprocess.Popen([*CLI, *command], cwd=cwd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    delay = rng.uniform(0.5, 8.0)
    try:
        proc.wait(timeout=delay)
        entry["note"] = f"it ended before the kill at {delay:.1f} s"
    except subprocess.TimeoutExpired:
        entry["note"] = f"killed after {delay:.1f} s"
    _kill_group(proc)
    return entry


def mlflow_steps(store: Path, sweep_id: str) -> Tuple[Dict[str, Dict[Tuple[str, int], int]], Dict[str, int]]:
    """trail id -> {(metric, step): how many times MLflow holds it}, and trail id -> how many runs it has, for the
    runs of the sweep whose id is `sweep_id` (read from the store's tables directly)."""
    with sqlite3.connect(store) as con:
        runs = dict(con.execute("select t.run_uuid, t.value from tags t join tags s on s.run_uuid = t.run_uuid "
                                "where t.key = 'harness.trail_id' and s.key = 'harness.sweep_id' and s.value = ?",
                                (sweep_id,)).fetchall())
        counts: Dict[str, Dict[Tuple[str, int], int]] = {}
        for run, key, step, n in con.execute("select run_uuid, key, step, count(*) from metrics "
                                             "group by run_uuid, key, step"):
            if run in runs:
                counts.setdefault(runs[run], {})[(key, int(step))] = int(n)
    per_trail: Dict[str, int] = {}
    for tid in runs.values():
        per_trail[tid] = per_trail.get(tid, 0) + 1
    return counts, per_trail


def check_tracked(sweep_dir: Path, store: Path) -> List[dict]:
    """Per trail: journal records vs MLflow's (metric, step) pairs, and the runs it has in MLflow."""
    from harness.store.journal import read_records

    sweep_id = json.loads((sweep_dir / "sweep.json").read_text())["sweep_id"]
    counts, runs = mlflow_steps(store, sweep_id)
    rows = []
    for run_dir in trail_dirs(sweep_dir):
        meta = read_trail_meta(run_dir)
        expected = {(k, int(r["step"])) for r in read_records(run_dir) for k, v in r.items()
                    if k not in ("step", "time") and isinstance(v, (int, float))}
        held = counts.get(meta["id"], {})
        rows.append({"trail": meta["name"], "state": read_status(run_dir).get("state"), "values": len(expected),
                     "lost": len(expected - set(held)), "duplicated": sum(n - 1 for n in held.values() if n > 1),
                     "extra": len(set(held) - expected), "runs": runs.get(meta["id"], 0)})
    return rows


def report_whole(sweep_dir: Path) -> bool:
    """REPORT.md and every CSV there and readable, and no partial file or staging directory left in the sweep."""
    import pandas as pd

    out = sweep_dir / "report"
    try:
        whole = (out / "REPORT.md").read_text().startswith("# Trail report") and all(
            len(pd.read_csv(out / name)) > 0 for name in ("trails.csv", "cells.csv"))
    except (OSError, ValueError):
        return False
    return whole and not list(sweep_dir.rglob("*.tmp"))


def outside(before: Dict[str, Tuple[str, int, int]], after: Dict[str, Tuple[str, int, int]],
            allowed: Tuple[str, ...]) -> List[str]:
    """Entries created or changed between two snapshots, other than the `allowed` paths, what is under them, and
    the directories that hold them."""
    def fine(path: str) -> bool:
        return any(path == a or path.startswith(a + "/") or a.startswith(path + "/") for a in allowed)

    return sorted(p for p, v in after.items() if before.get(p) != v and not fine(p))


def tracked(tmp: Path, env: Dict[str, str], rounds: int, steps: int, rng: random.Random) -> dict:
    """The tracked chaos: rounds of faults, a last rerun and sync, then MLflow against the journals."""
    root, store, cwd = tmp / "tracked-runs", tmp / "store" / "mlflow.db", tmp / "tracked-cwd"
    store.parent.mkdir()
    cwd.mkdir()
    before = snapshot(tmp)
    allowed = ("tracked-runs/tracked", "store", "cache")
    start = time.perf_counter()
    subprocess.run([*CLI, *tracked_args(root, store, steps, 2)], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = [tracked_round(FAULTS[i % len(FAULTS)] if i < len(FAULTS) else rng.choice(FAULTS), cwd, root, store, steps,
                         3 + i, env, rng) for i in range(rounds)]
    final = subprocess.run([*CLI, *tracked_args(root, store, steps, 2 + rounds)], cwd=cwd, env=env,
                           capture_output=True, text=True)
    synced = subprocess.run([*CLI, "sync", "tracked", "--root", str(root)], cwd=cwd, env=env, capture_output=True,
                            text=True)
    return {"log": log, "rows": check_tracked(root / "tracked", store), "final_rc": final.returncode,
            "sync_rc": synced.returncode, "report_whole": report_whole(root / "tracked"),
            "outside": outside(before, snapshot(tmp), allowed), "seconds": time.perf_counter() - start}


def _moment(moment: Tuple[str, float]) -> str:
    kind, value = moment
    return f"start-up, {value:.1f} s" if kind == "start-up" else f"{int(value)} new lines"


def render(args: argparse.Namespace, reference_s: float, startup: float, chaos_s: float, log: List[dict],
           rows: List[dict], refused: Dict[str, Tuple[int, int]], track: dict) -> str:
    mid = sum(1 for e in log if not e["sweep_had_ended"] and e["steps_after"] < len(rows) * args.steps)
    lines = [
        "# Reliability benchmark: random SIGKILLs and hostile inputs",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores. "
        f"Command: `python benchmarks/chaos_bench.py --kills {args.kills} --steps {args.steps} --tracked-rounds "
        f"{args.tracked_rounds} --seed {args.seed}`.",
        "",
        f"A sweep of {len(rows)} tiny trails ({' '.join(AXES)}, {args.steps} steps each, checkpoint every 3 steps, "
        "tracking=none, 2 in parallel) was SIGKILLed as a whole process group "
        f"{len(log)} times at seeded random moments (seed {args.seed}), each kill followed by a rerun; a final rerun "
        "ran it to the end. "
        f"Uninterrupted it takes {reference_s:.0f} s, {startup:.1f} s of it before the first step; the chaos run "
        f"took {chaos_s:.0f} s in all. {mid} of the {len(log)} kills hit the sweep while trails were still to run, "
        f"{sum(1 for e in log if e['steps_after'] > e['steps_before'])} of them after it had written new steps.",
        "",
        f"**Steps lost: {sum(r['lost'] for r in rows)}. Steps duplicated: {sum(r['duplicated'] for r in rows)}. "
        f"Trails whose curves equal the uninterrupted run's: {sum(r['same_curves'] for r in rows)} of {len(rows)}.**",
        "",
        "| trail | state | attempts | journal lines | lost | duplicated | same curves as uninterrupted |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r['trail']} | {r['state']} | {r['attempts']} | {r['lines']} | {r['lost']} | {r['duplicated']} | "
          f"{'yes' if r['same_curves'] else 'NO'} |" for r in rows],
        "",
        "Kills: the moment drawn (a delay in the start-up, or a number of new journal lines), when it came after "
        "the start of the run, and the journal lines of the whole sweep before the run and after its kill (lines "
        "past a trail's last checkpoint are rewritten by the rerun, so a run can add fewer than it was killed after):",
        "",
        "| kill | moment | killed after (s) | lines before | lines after |",
        "|---|---|---|---|---|",
        *[f"| {e['kill']} | {_moment(e['moment'])} | {e['delay_s']:.1f} | {e['steps_before']} | "
          f"{e['steps_after']} |" for e in log],
        "",
        *render_tracked(args, track),
        "## Hostile inputs",
        "",
        "Names, overrides and sweep files each through `harness sweep <input> --dry-run` in its own process and an "
        "empty directory; sweep directories each a copy of the reference sweep, damaged, then given to `harness "
        "sweep` (a rerun), `status` or `report`. Refused = exit code 2 with one line, `harness: error: …`, and "
        "nothing written (a link's target unchanged, the copy as it was); a command that runs past "
        f"{HOSTILE_TIMEOUT_S} s counts as not refused (a hang).",
        "",
        "| input | tried | refused |",
        "|---|---|---|",
        *[f"| {kind} | {tried} | {ok} |" for kind, (tried, ok) in refused.items()],
        f"| **all** | **{sum(t for t, _ in refused.values())}** | **{sum(o for _, o in refused.values())}** |",
        "",
    ]
    return "\n".join(lines)


def render_tracked(args: argparse.Namespace, track: dict) -> List[str]:
    rows, log = track["rows"], track["log"]
    stopped = [e for e in log if e["fault"] == FAULTS[3]]
    return [
        "## MLflow and report phases, a stopped tracker",
        "",
        f"A sweep at lag 2 tracked to a sqlite store by its tracker ({args.steps} steps a trail, heartbeat timeout "
        f"3 s, MLflow deadline 30 s) grew by one seed a round for {len(log)} rounds (`--extend`), each round with a "
        f"fault; then a last rerun (exit {track['final_rc']}) and `harness sync` (exit {track['sync_rc']}). "
        f"{track['seconds']:.0f} s in all.",
        "",
        f"**MLflow values lost: {sum(r['lost'] for r in rows)}. Duplicated: {sum(r['duplicated'] for r in rows)}. "
        f"Not in a journal: {sum(r['extra'] for r in rows)}. Trails with other than one run: "
        f"{sum(r['runs'] != 1 for r in rows)}. Stopped trackers replaced: "
        f"{sum(bool(e.get('replaced')) for e in stopped)} of {len(stopped)}. Report whole, no partial file: "
        f"{'yes' if track['report_whole'] else 'NO'}. Files written outside the sweep's directory, its store and "
        f"the base-model cache: {len(track['outside'])}.**" +
        (f" ({', '.join(track['outside'][:5])})" if track["outside"] else ""),
        "",
        "| round | seeds | fault | what happened |",
        "|---|---|---|---|",
        *[f"| {i} | {e['seeds']} | {e['fault']} | {e['note']} |" for i, e in enumerate(log, 1)],
        "",
        "| trail | state | journal values | lost in MLflow | duplicated | runs |",
        "|---|---|---|---|---|---|",
        *[f"| {r['trail']} | {r['state']} | {r['values']} | {r['lost']} | {r['duplicated']} | {r['runs']} |"
          for r in rows],
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tracked-rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "reports" / "bench_chaos.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ, HARNESS_CACHE_DIR=str(tmp / "cache"), PYTHONPATH=str(REPO))
        root = tmp / "runs"
        run_to_end(sweep_cmd(root, "warm", 1), env)           # builds the base model: not part of any timing
        reference_s, launched = run_to_end(sweep_cmd(root, "reference", args.steps), env)
        startup = start_up_s(root / "reference", launched)
        start = time.perf_counter()
        log = chaos(root, env, args.kills, args.steps, random.Random(args.seed), startup, TRAILS)
        run_to_end(sweep_cmd(root, "chaos", args.steps), env)
        chaos_s = time.perf_counter() - start
        rows = check_trails(root, args.steps)
        track = tracked(tmp, env, args.tracked_rounds, args.steps, random.Random(args.seed + 1))
        refused = hostile(tmp, args.steps)
    text = render(args, reference_s, startup, chaos_s, log, rows, refused, track)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    clean = all(r["lost"] == 0 and r["duplicated"] == 0 and r["state"] == "done" for r in rows)
    mlflow_clean = all(r["lost"] == 0 and r["duplicated"] == 0 and r["runs"] == 1 for r in track["rows"]) and \
        track["report_whole"] and not track["outside"]
    return 0 if clean and mlflow_clean and all(t == o for t, o in refused.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
