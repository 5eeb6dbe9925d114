"""Orchestration latency of the harness beside the tools a user would otherwise run the same sweep with: Hydra's
multirun (BasicLauncher, and the joblib launcher), Ray Tune (default, and with `reuse_actors=True`) and submitit's
LocalExecutor, all on the same trivial trial.

    python benchmarks/peer_bench.py [--rounds 3] [--trials 50] [--starts 3] [--tools NAME,…]
                                                                                   → reports/bench_peers.md

The trial is the toy engine's work (tests/toy_engine: three steps, a metric and a flushed JSON line each), run by the
harness as a trail of `engine=toy` and by the peers through benchmarks/peers/toy_work.py. Every tool runs it N = 1
and N = `--trials` times, in rounds: each round runs every tool at each N, the tools in a rotated order, so a change
in the machine's load touches all of them alike. Measured: wall time of the tool's command (from its start to its
exit, every trial's result back), and CPU time of its whole process tree — this process is a child subreaper (Linux
PR_SET_CHILD_SUBREAPER), so daemons a tool leaves behind (Ray's) are reparented here, waited for and counted by
getrusage(RUSAGE_CHILDREN). Start-up: the 1-trial run (for the tools compared on it, the median of `--starts` runs a
round); per trial: (N-trial run − start-up) / (N − 1) of the same round; each figure the median over the rounds. A
peer that was far from the fastest per trial when this benchmark was written (Hydra's joblib launcher 0.133 s, submitit
0.250 s, Ray Tune's default 1.36 s, against 0.047 s for Ray Tune with reused actors) runs one round, after the others'
rounds: its runs take minutes on a loaded machine and cannot change a comparison.

The peers run from a venv of their own (`.venv-peers`, built from benchmarks/peers/requirements.txt on first use),
so that neither the harness's runtime nor its dev install grows; the harness runs from the interpreter running this
script (the project's .venv), its code from this checkout (ahead on PYTHONPATH of any installed copy), byte-compiled
first as an install would be. Parallelism is each tool's default on this machine: two trails at a time for the
harness (cores ÷ threads per trail), Hydra's BasicLauncher one job at a time, its joblib launcher one job per core,
Ray Tune one trial per CPU of a 2-CPU local Ray, submitit's LocalExecutor every job at once.
"""

from __future__ import annotations

import argparse
import compileall
import ctypes
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "benchmarks" / "peers"
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_report import publish  # noqa: E402  (benchmarks/bench_report.py)

PR_SET_CHILD_SUBREAPER = 36
ORPHAN_WAIT_S = 60.0  # how long daemons a tool left behind may take to end before they are killed
RETRIES = 2  # a failed run is run again this often (Ray's head can time out starting on a loaded machine)


@dataclass
class Tool:
    name: str
    parallelism: str
    command: Callable[[int, Path], List[str]]  # (trials, run dir) -> argv
    env: Dict[str, str] = field(default_factory=dict)
    peer: bool = True  # runs from the peers' venv
    startup: bool = False  # in the start-up comparison: its 1-trial run is repeated `--starts` times a round
    every_round: bool = True  # False: one round, after the others' rounds (see `main`)


def _seeds(n: int) -> str:
    return f"seed=range(1,{n + 1})" if n > 1 else "seed=1"


def _harness(*extra: str) -> Callable[[int, Path], List[str]]:
    def command(n: int, run_dir: Path) -> List[str]:
        return [sys.executable, "-m", "harness.cli", "sweep", "engine=toy", _seeds(n), *extra, "--name", "toy",
                "--root", str(run_dir / "runs")]
    return command


def tools(peer_python: str) -> List[Tool]:
    # this checkout's harness (ahead of any installed copy of it) and the toy engine
    harness_env = {"HARNESS_PLUGINS": "toy_engine:PLUGIN",
                   "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    peer_env = {"PYTHONPATH": str(PEERS)}
    hydra = [peer_python, str(PEERS / "hydra_app.py"), "-m"]
    return [
        Tool("harness, `tracking=none`, `--no-report`", "2 warm workers",
             _harness("tracking=none", "--no-report"), harness_env, peer=False, startup=True),
        Tool("harness, `tracking=none`", "2 warm workers", _harness("tracking=none"), harness_env, peer=False),
        Tool("harness, default sqlite MLflow", "2 warm workers", _harness(), harness_env, peer=False),
        Tool("harness, default sqlite MLflow, `--no-report`", "2 warm workers", _harness("--no-report"), harness_env,
             peer=False),
        Tool("Hydra BasicLauncher", "serial",
             lambda n, d: [*hydra, _seeds(n), f"hydra.sweep.dir={d}/multirun"], peer_env, startup=True),
        Tool("Hydra joblib launcher", "2 (a job per core)",
             lambda n, d: [*hydra, _seeds(n), f"hydra.sweep.dir={d}/multirun", "hydra/launcher=joblib"], peer_env,
             every_round=False),
        Tool("Ray Tune, default", "2 (a trial per CPU)",
             lambda n, d: [peer_python, str(PEERS / "ray_tune_app.py"), str(n), str(d / "ray")], peer_env,
             every_round=False),
        Tool("Ray Tune, `reuse_actors=True`", "2 (a trial per CPU)",
             lambda n, d: [peer_python, str(PEERS / "ray_tune_app.py"), str(n), str(d / "ray"), "--reuse-actors"],
             peer_env),
        Tool("submitit LocalExecutor", "all at once",
             lambda n, d: [peer_python, str(PEERS / "submitit_app.py"), str(n), str(d)], peer_env, every_round=False),
    ]


def peers_venv(path: Path) -> str:
    """The peers' interpreter, building their venv from benchmarks/peers/requirements.txt when it is missing."""
    python = path / "bin" / "python"
    requirements = PEERS / "requirements.txt"
    stamp = path / ".requirements"
    if not python.exists() or not stamp.exists() or stamp.read_text() != requirements.read_text():
        print(f"building the peers' venv {path} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        stamp.write_text(requirements.read_text())
    return str(python)


def byte_compile() -> None:
    """Byte-compile what the tools import from source (the harness, the toy engine, the peers' trial), as an install
    does. Without it, a run under PYTHONDONTWRITEBYTECODE would compile the harness's modules at every start, while the
    peers' libraries come with their bytecode from pip."""
    for path in (REPO / "harness", REPO / "tests" / "toy_engine", PEERS):
        compileall.compile_dir(str(path), quiet=1)


def _descendants() -> List[int]:
    """Processes reparented to this one (it is their subreaper) that are still running."""
    pids: List[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def _reap_orphans(deadline_s: float) -> int:
    """Wait for every process left behind to end (killing what is still there after `deadline_s`); how many
    had to be killed."""
    end, killed = time.monotonic() + deadline_s, 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return killed
        if pid:
            continue
        if time.monotonic() > end:
            for orphan in _descendants():
                try:
                    os.kill(orphan, 9)
                    killed += 1
                except ProcessLookupError:
                    pass
            end = float("inf")
        time.sleep(0.05)


@dataclass
class Run:
    wall: float
    cpu: float
    killed: int


def run_once(tool: Tool, trials: int, scratch: Path, peer_python: str) -> Run:
    """One run of `tool` on `trials` trials in a fresh directory; wall of its command, CPU of its process tree."""
    run_dir = Path(tempfile.mkdtemp(dir=scratch))
    env = dict(os.environ, **tool.env)
    argv = tool.command(trials, run_dir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(run_dir / "output.txt", "wb") as out:
        proc = subprocess.run(argv, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    killed = _reap_orphans(ORPHAN_WAIT_S)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = (run_dir / "output.txt").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{tool.name} (N = {trials}) exited with {proc.returncode}:\n{tail}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    shutil.rmtree(run_dir, ignore_errors=True)
    return Run(wall, cpu, killed)


def run_retrying(fig: Figures, trials: int, scratch: Path, peer_python: str) -> Run:
    """run_once, again up to RETRIES times when the tool fails (Ray's head can time out starting on a loaded
    machine); each failure is kept for the report."""
    for attempt in range(RETRIES + 1):
        try:
            return run_once(fig.tool, trials, scratch, peer_python)
        except RuntimeError as exc:
            if attempt == RETRIES:
                raise
            fig.failures.append(f"N = {trials}: {str(exc).splitlines()[-1][:200]}")
            print(f"{fig.tool.name}, N = {trials}: failed, running it again", flush=True)
    raise AssertionError("unreachable")


@dataclass
class Figures:
    tool: Tool
    one: List[List[Run]] = field(default_factory=list)  # each round's 1-trial runs
    many: List[Run] = field(default_factory=list)  # each round's N-trial run
    failures: List[str] = field(default_factory=list)  # runs that failed and were run again

    def starts(self, what: str) -> List[float]:
        """Each round's start-up: the median of its 1-trial runs."""
        return [_med([getattr(r, what) for r in runs]) for runs in self.one]

    def per_trial(self, trials: int, what: str) -> List[float]:
        """(N-trial − 1-trial) / (N − 1) of each round."""
        return [(getattr(b, what) - a) / (trials - 1) for a, b in zip(self.starts(what), self.many, strict=True)]


def _med(values: Sequence[float]) -> float:
    return statistics.median(values)


def _range(values: Sequence[float], digits: int) -> str:
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def report(figures: List[Figures], trials: int, planned: int, starts: int, started: float, load_before: str,
           command: str) -> List[str]:
    missing = [f.tool.name for f in figures if not f.many]
    figures = [f for f in figures if f.many]
    rounds = max((len(f.many) for f in figures if f.tool.every_round), default=0)
    lines = [
        "# Orchestration latency beside Hydra, Ray Tune and submitit",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average (1 / 5 / 15 min) before: {load_before}, after: {load_average()} "
        f"(the machine is shared: each figure is a median over the rounds run, {rounds} of the {planned} planned "
        f"for the comparisons' tools, each round running the tools at "
        f"N = 1 and N = {trials}, in an order rotated from round to round; the 1-trial run of the tools in the "
        f"start-up comparison {starts} times a round, their median counting; the peers that were far from the "
        f"fastest per trial when this benchmark was written run one round, after the others); the benchmark took "
        f"{(time.time() - started) / 60:.1f} min.",
        "",
        f"| tool | parallelism | per trial: wall / CPU (s) | start-up, N = 1: wall / CPU (s) | "
        f"N = {trials}: wall / CPU (s) | per-trial wall, each round |",
        "|---|---|---|---|---|---|",
    ]
    for fig in figures:
        wall_pt, cpu_pt = fig.per_trial(trials, "wall"), fig.per_trial(trials, "cpu")
        lines.append(
            f"| {fig.tool.name} | {fig.tool.parallelism} | **{_med(wall_pt):.3f}** / {_med(cpu_pt):.3f} | "
            f"{_med(fig.starts('wall')):.2f} / {_med(fig.starts('cpu')):.2f} | "
            f"{_med([r.wall for r in fig.many]):.2f} / {_med([r.cpu for r in fig.many]):.2f} | "
            f"{_range(wall_pt, 3)} ({len(wall_pt)} round{'s' if len(wall_pt) > 1 else ''}) |")
    if missing:
        lines += ["", f"Not measured in this run (the benchmark was stopped before their round): {', '.join(missing)}."]
    killed = sum(r.killed for fig in figures for r in [*(x for runs in fig.one for x in runs), *fig.many])
    lines += ["", f"Processes a tool left running past {ORPHAN_WAIT_S:.0f} s after its command ended, killed: "
              f"{killed}."]
    failed = [f"{fig.tool.name}, {failure}" for fig in figures for failure in fig.failures]
    lines += [f"Runs that failed and were run again (not counted): {len(failed)}" + (": " if failed else ".")]
    lines += [f"- {line}" for line in failed]
    by_name = {fig.tool.name: fig for fig in figures}
    lines += ["", *verdicts(by_name, trials)]
    return lines


def verdicts(by_name: Dict[str, Figures], trials: int) -> List[str]:
    """The comparisons the harness is held to, on this run's figures."""
    def per_trial(name: str) -> Optional[float]:
        fig = by_name.get(name)
        return _med(fig.per_trial(trials, "wall")) if fig else None

    def start_up(name: str) -> Optional[float]:
        fig = by_name.get(name)
        return _med(fig.starts("wall")) if fig else None

    lines = ["## Held against the peers (this run's medians)", ""]
    harness_off = "harness, `tracking=none`, `--no-report`"
    peers = {name: per_trial(name) for name, fig in by_name.items() if fig.tool.peer}
    peers = {k: v for k, v in peers.items() if v is not None}
    ours = per_trial(harness_off)
    if peers and ours is not None:
        fastest = min(peers, key=lambda k: peers[k])
        ratio = ours / peers[fastest]
        lines.append(f"- Wall per trial, harness (tracking off, no report) ÷ the fastest peer ({fastest}): "
                     f"{ours:.3f} / {peers[fastest]:.3f} s = **{ratio:.2f}×** (goal ≤ 0.5×: "
                     f"{'met' if ratio <= 0.5 else 'not met'}).")
    hydra_start, ours_start = start_up("Hydra BasicLauncher"), start_up(harness_off)
    if hydra_start is not None and ours_start is not None:
        lines.append(f"- Start-up (N = 1), harness (tracking off) vs Hydra's BasicLauncher: {ours_start:.2f} s vs "
                     f"{hydra_start:.2f} s (goal ≤: {'met' if ours_start <= hydra_start else 'not met'}).")
    hydra_pt, mlflow_pt = per_trial("Hydra BasicLauncher"), per_trial("harness, default sqlite MLflow, `--no-report`")
    if hydra_pt is not None and mlflow_pt is not None:
        lines.append(f"- Wall per trial with default MLflow tracking (sqlite store, its final catch-up included; "
                     f"without the end-of-sweep report, which a 1-trial sweep skips and which would put its one-off "
                     f"cost into the per-trial slope) vs Hydra's BasicLauncher: {mlflow_pt:.3f} s vs {hydra_pt:.3f} s "
                     f"(goal: ahead: {'met' if mlflow_pt < hydra_pt else 'not met'}).")
    return lines


def command(args: argparse.Namespace) -> str:
    return "python benchmarks/peer_bench.py" + (f" --rounds {args.rounds}" if args.rounds != 3 else "") + \
        (f" --starts {args.starts}" if args.starts != 3 else "") + \
        (f" --trials {args.trials}" if args.trials != 50 else "") + (f" --tools '{args.tools}'" if args.tools else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--starts", type=int, default=3,
                        help="1-trial runs a round for the tools in the start-up comparison (their median counts)")
    parser.add_argument("--tools", default="", help="comma-separated names (a part of each is enough); default all")
    parser.add_argument("--venv", default=str(REPO / ".venv-peers"), help="the peers' venv (built when missing)")
    parser.add_argument("--out", default=str(REPO / "reports" / "bench_peers.md"),
                        help="the report; every run's figures go beside it as .json")
    args = parser.parse_args()
    started, load_before = time.time(), load_average()
    peer_python = peers_venv(Path(args.venv))
    byte_compile()
    chosen = tools(peer_python)
    if args.tools:
        wanted = [w.strip().lower() for w in args.tools.split(",")]
        chosen = [t for t in chosen if any(w in t.name.lower() for w in wanted)]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    figures = [Figures(tool) for tool in chosen]
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        scratch = Path(tmp)
        # the comparisons' tools in `--rounds` rounds, then one round of the peers far from the fastest per trial
        # (minutes a run on a loaded machine)
        rounds = [[f for f in figures if f.tool.every_round]] * args.rounds
        rounds += [[f for f in figures if not f.tool.every_round]]
        for round_no, active in enumerate(r for r in rounds if r):
            shift = round_no % len(active)
            for fig in active[shift:] + active[:shift]:
                fig.one.append([])
                for trials in [1] * (args.starts if fig.tool.startup else 1) + [args.trials]:
                    run = run_retrying(fig, trials, scratch, peer_python)
                    (fig.one[-1].append if trials == 1 else fig.many.append)(run)
                    print(f"round {round_no + 1}: {fig.tool.name}, N = {trials}: {run.wall:.2f} s wall, "
                          f"{run.cpu:.2f} CPU-s", flush=True)
            done = [f for f in figures if f.many]  # the report so far, rewritten after every round
            publish(report(figures, args.trials, args.rounds, args.starts, started, load_before, command(args)),
                    args.out)
            Path(args.out).with_suffix(".json").write_text(json.dumps(
                {f.tool.name: {"one": [[asdict(r) for r in runs] for runs in f.one],
                               "many": [asdict(r) for r in f.many]} for f in done}, indent=1) + "\n")


if __name__ == "__main__":
    main()
