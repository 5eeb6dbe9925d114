"""Benchmark of the harness's own cost: per-trail overhead (spawn, config, bookkeeping) as a share of trail wall time,
and the throughput of two trails in parallel on two cores against the same two run serially.

    python benchmarks/sweep_bench.py [--steps N]      → reports/bench_sweep.md
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_report import publish  # noqa: E402  (benchmarks/bench_report.py)

from harness.store.rundir import read_status  # noqa: E402
from harness.store.sweepdir import trail_dirs  # noqa: E402


def run_sweep(root: Path, name: str, overrides: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", "sweep", *overrides, "--name", name, "--root", str(root),
                    "--no-report"], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def engine_seconds(sweep_dir: Path) -> list[float]:
    """Time each trail spent inside the engine, from the status the runner writes around the engine call."""
    out = []
    for run_dir in trail_dirs(sweep_dir):
        status = read_status(run_dir)
        out.append(float(status["ended"]) - float(status["started"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400, help="steps per trail (400 = the default trail)")
    parser.add_argument("--out", default=str(REPO / "reports" / "bench_sweep.md"))
    args = parser.parse_args()
    common = [f"engine.steps={args.steps}", "tracking=none"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # warm the base-model cache so neither timing includes the one-off pretraining
        run_sweep(root, "warm", [*common, "engine.steps=1", "seed=99"])
        serial = run_sweep(root, "serial", [*common, "seed=1,2", "backend.max_parallel=1"])
        parallel = run_sweep(root, "parallel", [*common, "seed=3,4", "backend.max_parallel=2"])
        engine = engine_seconds(root / "serial")
    overhead = (serial - sum(engine)) / serial
    speedup = serial / parallel * 1.0
    lines = [
        "# Sweep benchmark",
        "",
        f"Machine: {platform.machine()}, {platform.python_version()}, {__import__('os').cpu_count()} cores. "
        f"Command: `python benchmarks/sweep_bench.py --steps {args.steps}`.",
        "",
        "| figure | value | goal |",
        "|---|---|---|",
        f"| two trails serially (wall) | {serial:.1f} s | |",
        f"| of which inside the engine | {sum(engine):.1f} s ({', '.join(f'{e:.1f}' for e in engine)}) | |",
        f"| harness overhead per trail (spawn, config, bookkeeping) | {(serial - sum(engine)) / 2:.2f} s | |",
        f"| overhead share of trail wall time | {overhead:.1%} | ≤ 5 % |",
        f"| two trails in parallel (wall) | {parallel:.1f} s | |",
        f"| parallel throughput vs serial | {speedup:.2f}× | ≥ 1.7× |",
        "",
        "Overhead counts everything outside the engine call: the sweep command's start-up and validation, process "
        "spawn and imports of each worker, status and run-dir bookkeeping, and the polling loop.",
    ]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
