"""The fast test tier (`python -m pytest -q`: every test not marked integration) timed side by side at two commits
of this repository, alternating between them (base, new, base, new, …) so that both see the same machine load.

    python benchmarks/test_tier_bench.py [--base e1f5942] [--rounds 2] [--new-args ARGS …]  → reports/bench_tests.md

--new-args, repeatable, times the new commit once per round with each set of extra pytest arguments (e.g. "" and
"-n 2"); by default it runs as the fast tier runs, with none.

Each run starts cold, as on a fresh CI machine: a new temporary directory (TMPDIR) holds the base-model cache, the
MLflow stores and pytest's tmp dirs, and pytest's cache is off, so nothing built by one run serves the next. The base
commit runs from a detached git worktree with the same interpreter; the new one is this checkout as it stands.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

REPO = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
SUMMARY = re.compile(r"(\d+) (passed|failed|error|errors|skipped|deselected)")


@dataclass
class Run:
    label: str
    wall_s: float
    cpu_s: float      # user + system time of pytest and every process it waited for
    counts: Dict[str, int]
    load: float       # 1-minute load average when the run started
    code: int


def _counts(output: str) -> Dict[str, int]:
    lines = [ln for ln in output.splitlines() if " in " in ln and ("passed" in ln or "failed" in ln)]
    return {kind.rstrip("s") if kind == "errors" else kind: int(n) for n, kind in SUMMARY.findall(lines[-1])} \
        if lines else {}


def run_tier(label: str, checkout: Path, extra: Sequence[str], log: Path) -> Run:
    """One cold run of the fast tier in `checkout`; its output is kept in `log`."""
    scratch = Path(tempfile.mkdtemp(prefix="tier-" + re.sub(r"\W", "", label) + "-"))  # no spaces in tests' paths
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_CACHE_DIR", "MLFLOW_TRACKING_URI")}
    env["TMPDIR"] = str(scratch)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([*PYTEST, *extra], cwd=checkout, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(scratch, ignore_errors=True)
    log.write_text(done.stdout + done.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(label, wall, cpu, _counts(done.stdout), load, done.returncode)


def _fmt(seconds: float) -> str:
    return f"{seconds:.0f} s ({int(seconds // 60)} min {seconds % 60:04.1f} s)"


def _label(extra: Sequence[str]) -> str:
    return f"new ({' '.join(extra)})" if extra else "new"


def report(runs: List[Run], base: str, new: str, command: str, variants: Sequence[Sequence[str]]) -> str:
    def of(label: str) -> List[Run]:
        return [r for r in runs if r.label == label]

    def mean(label: str) -> float:
        return sum(r.wall_s for r in of(label)) / len(of(label))

    lines = [
        "# Fast test tier: wall time side by side",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores, shared with "
        f"other work (the load average at each start is in the table). Command: `{command}`.",
        "",
        "Each run: `python -m pytest -q -p no:cacheprovider` in the commit's checkout (the new commit with the extra "
        "arguments its label names, if any), cold: a fresh TMPDIR for the base-model cache, the MLflow stores and "
        "pytest's tmp dirs, and no pytest cache. Runs alternate, base first.",
        "",
        f"- base: `{base}`",
        f"- new: `{new}`",
        "",
        "| run | commit | wall | CPU (user + sys, with subprocesses) | tests passed | failed | load at start |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(f"| {i} | {r.label} | {_fmt(r.wall_s)} | {r.cpu_s:.0f} s | {r.counts.get('passed', 0)} | "
                     f"{r.counts.get('failed', 0) + r.counts.get('error', 0)} | {r.load:.1f} |")
    base_wall = mean("base")
    lines += ["", f"Mean wall of the base: {_fmt(base_wall)}, {of('base')[0].counts.get('passed', 0)} tests."]
    for extra in variants:
        label = _label(extra)
        wall = mean(label)
        change = f"{1 - wall / base_wall:.0%} less" if wall <= base_wall else f"{wall / base_wall - 1:.0%} more"
        lines.append(f"Mean wall of {label}: {_fmt(wall)}, {of(label)[0].counts.get('passed', 0)} tests: "
                     f"{wall / base_wall:.0%} of the base's wall time ({change}).")
    return "\n".join(lines) + "\n"


def _describe(checkout: Path) -> str:
    out = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=checkout, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip()[:100] + (" (with uncommitted changes)" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="e1f5942", help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs (base, new)")
    parser.add_argument("--new-args", action="append", default=None,
                        help="extra pytest arguments for the new commit only (repeatable: one variant each)")
    parser.add_argument("--out", default=str(REPO / "reports" / "bench_tests.md"))
    args = parser.parse_args()
    variants = [shlex.split(a) for a in (args.new_args or [""])]
    logs = Path(tempfile.mkdtemp(prefix="tier-logs-"))
    base_dir = logs / "base-checkout"
    subprocess.run(["git", "worktree", "add", "--detach", str(base_dir), args.base], cwd=REPO, check=True,
                   capture_output=True)
    try:
        runs: List[Run] = []
        for i in range(args.rounds):
            for label, checkout, more in [("base", base_dir, []), *((_label(v), REPO, v) for v in variants)]:
                run = run_tier(label, checkout, more, logs / f"{i + 1}-{label}.log")
                runs.append(run)
                print(f"{label}: {run.wall_s:.1f} s wall, {run.cpu_s:.0f} s CPU, {run.counts}, exit {run.code}, "
                      f"load {run.load:.1f}", flush=True)
        command = "python benchmarks/test_tier_bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        text = report(runs, _describe(base_dir), _describe(REPO), command.strip(), variants)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=REPO, check=False,
                       capture_output=True)
    Path(args.out).write_text(text)
    print(text)
    print(f"pytest output of each run: {logs}")


if __name__ == "__main__":
    main()
