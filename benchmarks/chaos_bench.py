"""Reliability benchmark: a sweep SIGKILLed at random moments loses and duplicates no step, and hostile inputs are
refused before anything is written.

    python benchmarks/chaos_bench.py [--kills 20] [--steps 30] [--seed 0]      → reports/bench_chaos.md

Chaos: a sweep of 6 tiny trails runs once uninterrupted (the reference), then again under another name, killed
`--kills` times as a whole process group (the sweep and its workers, as a crashed node or an OOM killer would) at a
seeded random moment, each kill followed by a rerun of the same command; a last rerun runs to the end. Every journal
is then read line by line: a step of 1..steps it lacks is lost, a step on two lines is duplicated, and the curves are
compared with the reference (every metric but times). Why kill the group: killing only the sweep process leaves its
workers to finish their trails, which tests less.

Hostile inputs: the bad sweep names, overrides, Slurm parameters and sweep files the tests try, each through
`harness sweep … --dry-run` in its own process; refused = exit code 2, one `harness: error:` line, nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from test_config_validation import BAD_OVERRIDES  # noqa: E402
from tiny_trail import tiny_trail  # noqa: E402

from harness.rundir import read_status  # noqa: E402
from harness.sweepdir import read_trail_meta, trail_dirs  # noqa: E402

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
]


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
                     "lines": len(seen), "lost": len(set(range(1, steps + 1)) - set(seen)),
                     "duplicated": len(seen) - len(set(seen)),
                     "same_curves": name in reference and curves(run_dir) == curves(reference[name])})
    return rows


def _written(root: Path, cwd: Path) -> bool:
    return root.exists() or any(cwd.iterdir())


def try_hostile(args: List[str], tmp: Path) -> bool:
    """Run `harness sweep <args> --dry-run` in a fresh directory; True when refused cleanly and nothing written."""
    cwd = Path(tempfile.mkdtemp(dir=tmp))
    root = cwd.parent / f"{cwd.name}-root"
    proc = subprocess.run([*CLI, "sweep", *args, "--root", str(root), "--dry-run"], cwd=cwd, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    ok = proc.returncode == 2 and any(ln.startswith("harness: error: ") for ln in lines) and not _written(root, cwd)
    if not ok:
        print(f"NOT REFUSED: {args!r}: rc {proc.returncode}, {proc.stderr[-300:]!r}", file=sys.stderr)
    return ok


def hostile(tmp: Path) -> Dict[str, Tuple[int, int]]:
    """(tried, refused) per kind of hostile input."""
    files = tmp / "sweep-files"
    files.mkdir()
    cases: Dict[str, List[List[str]]] = {
        "sweep names": [["stale=0", "tracking=none", "--name", n] for n in BAD_NAMES],
        "overrides": [[*o, "tracking=none"] for o, _ in BAD_OVERRIDES] + [[*o, "tracking=none"] for o in BAD_CLI],
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
    return {kind: (len(runs), sum(try_hostile(a, tmp) for a in runs)) for kind, runs in cases.items()}


def _moment(moment: Tuple[str, float]) -> str:
    kind, value = moment
    return f"start-up, {value:.1f} s" if kind == "start-up" else f"{int(value)} new lines"


def render(args: argparse.Namespace, reference_s: float, startup: float, chaos_s: float, log: List[dict],
           rows: List[dict], refused: Dict[str, Tuple[int, int]]) -> str:
    mid = sum(1 for e in log if not e["sweep_had_ended"] and e["steps_after"] < len(rows) * args.steps)
    lines = [
        "# Reliability benchmark: random SIGKILLs and hostile inputs",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores. "
        f"Command: `python benchmarks/chaos_bench.py --kills {args.kills} --steps {args.steps} --seed {args.seed}`.",
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
        "## Hostile inputs",
        "",
        "Each through `harness sweep <input> --dry-run` in its own process and an empty directory; refused = exit "
        "code 2 with a `harness: error:` line and nothing written.",
        "",
        "| input | tried | refused |",
        "|---|---|---|",
        *[f"| {kind} | {tried} | {ok} |" for kind, (tried, ok) in refused.items()],
        f"| **all** | **{sum(t for t, _ in refused.values())}** | **{sum(o for _, o in refused.values())}** |",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=30)
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
        refused = hostile(tmp)
    text = render(args, reference_s, startup, chaos_s, log, rows, refused)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    clean = all(r["lost"] == 0 and r["duplicated"] == 0 and r["state"] == "done" for r in rows)
    return 0 if clean and all(t == o for t, o in refused.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
