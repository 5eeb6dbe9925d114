"""The scale benchmark's MLflow part: `harness report --source mlflow` beside `harness report` (journals) on one
synthetic sweep held in a real sqlite store, and with `server` the same store behind a real `mlflow server` (started
and stopped by PID). Used by scale_bench.py, or alone at one size (`main`, → reports/bench_scale_mlflow.md).

Why a smaller sweep may be used: MLflow's log_batch takes about 130 µs of CPU a value here, so filling a store with
1,000 trails × 1,000 steps × 10 metrics takes about 20 CPU-minutes; the figures at a smaller size give the ratio of
the two sources and, per trail, an extrapolation to 1,000 trails. The harness's own sync fills the full size in
minutes (its writer's rows are MLflow's, tests/test_tracking_writer.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bench_report import publish  # noqa: E402  (benchmarks/bench_report.py)
from mlflow_stores import empty_store, fill_store  # noqa: E402  (test helpers: tests/mlflow_stores.py)
from synthetic_sweeps import random_sweep  # noqa: E402
from tracking_support import MlflowServer, group_cpu_s  # noqa: E402

EXPERIMENT = "bench"
FILLS = {"sync": "the harness's own sync (`harness sync`: what a tracked sweep writes)",
         "log_batch": "MLflow's log_batch"}

LOAD = """
import json, sys, time
from harness.report.load import load_journals, load_mlflow
out = {}
wall, cpu = time.perf_counter(), time.process_time()
import mlflow.tracking, mlflow.store.tracking.sqlalchemy_store  # paid once per process, whatever the sweep's size
out["import"] = [time.perf_counter() - wall, time.process_time() - cpu]
for name, load in (("mlflow", load_mlflow), ("journal", load_journals)):
    wall, cpu = time.perf_counter(), time.process_time()
    load(sys.argv[1])
    out[name] = [time.perf_counter() - wall, time.process_time() - cpu]
print(json.dumps(out))
"""


@dataclass
class Filled:
    sweep: Path
    db: Path
    values: int
    wall: float
    cpu: float


def filled_sweep(where: Path, trails: int, steps: int, fill: str) -> Filled:
    """A synthetic sweep whose trails track to a fresh sqlite store, filled with MLflow's log_batch (`fill` =
    log_batch) or by the harness's own sync (`sync`, what a tracked sweep writes)."""
    where.mkdir(parents=True)
    db = where / "mlflow.db"
    uri = empty_store(db)
    sweep = random_sweep(where / "runs" / "scale", trails=trails, steps=steps,
                         tracking={"uri": uri, "experiment": EXPERIMENT})
    wall, cpu = time.perf_counter(), time.process_time()
    if fill == "log_batch":
        values = fill_store(sweep, uri, EXPERIMENT, neighbours=False)
    else:
        from harness.tracking.sync import sync_sweep

        values = sum(r.logged for r in sync_sweep(sweep))
    return Filled(sweep, db, values, time.perf_counter() - wall, time.process_time() - cpu)


def served_copy(sweep: Path, url: str, into: Path) -> Path:
    """The sweep's run dirs (journals left out: the MLflow source does not read them) with trail configs pointing
    at `url`."""
    copy = into / sweep.name
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("journal.jsonl", "report", "*.index*"))
    for config in copy.glob("*/config.yaml"):
        cfg = yaml.safe_load(config.read_text())
        cfg["tracking"]["uri"] = url
        config.write_text(yaml.safe_dump(cfg))
    return copy


def load_times(env: Dict[str, str], sweep: Path) -> Dict[str, list]:
    """Wall and CPU seconds, in one fresh process, of mlflow's import (`import`) and of loading the sweep from each
    source (`mlflow`, `journal`), harness's imports outside."""
    import json

    out = subprocess.run([sys.executable, "-c", LOAD, str(sweep)], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def with_server(db: Path, workdir: Path, run: Any) -> Dict[str, Any]:
    """`run(url)` while a real `mlflow server` serves the store; adds the server's own CPU seconds (its process group,
    from /proc) as `server_cpu`."""
    server = MlflowServer(db, workdir).start()
    try:
        assert server.proc is not None
        before = group_cpu_s(server.proc.pid)
        result = run(server.url)
        result["server_cpu"] = group_cpu_s(server.proc.pid) - before
    finally:
        server.stop()
    return result


def extrapolate(journal_report: float, loads: Dict[str, list], trails: int, target_trails: int) -> Optional[float]:
    """Wall seconds of `harness report` from MLflow at `target_trails`: the journal report measured there, plus
    mlflow's import once, plus the MLflow load's extra time over the journal load measured at `trails`, scaled by
    trails (the loads are linear in trails; the tables, plots and markdown are the same for both sources)."""
    if trails >= target_trails:
        return None
    extra = loads["mlflow"][0] - loads["journal"][0]
    return journal_report + loads["import"][0] + extra * target_trails / trails


def main() -> None:
    """Only the MLflow part, at one size (e.g. the full 1,000 trails, filled by the harness's sync):

        python benchmarks/scale_mlflow.py [--trails 1000] [--steps 1000] [--fill sync] [--baseline none] [--server]
                                          [--out reports/bench_scale_mlflow.md]
    """
    import argparse
    import os
    import platform
    import tempfile

    import scale_bench as bench

    parser = argparse.ArgumentParser(description=main.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trails", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--fill", choices=("log_batch", "sync"), default="sync")
    parser.add_argument("--baseline", default="none", help="commit of today's MLflow source, or none")
    parser.add_argument("--server", action="store_true")
    parser.add_argument("--out", default=str(REPO / "reports" / "bench_scale_mlflow.md"))
    args = parser.parse_args()
    load_before, began = os.getloadavg()[0], time.perf_counter()
    new = bench.Code("this checkout", REPO)
    with tempfile.TemporaryDirectory(prefix="scale-mlflow-") as tmp:
        tmp_dir = Path(tmp)
        print(f"{args.trails} trails × {args.steps} steps into a sqlite store ({args.fill}) …", flush=True)
        filled = filled_sweep(tmp_dir / "mlflow", args.trails, args.steps, args.fill)
        old = None if args.baseline == "none" else bench.baseline_checkout(args.baseline, tmp_dir / "baseline")
        from_mlflow = ["report", str(filled.sweep), "--source", "mlflow"]
        print("reports …", flush=True)
        ml_old, ml_new = old.run(from_mlflow) if old else None, new.run(from_mlflow)
        journal = new.run(["report", str(filled.sweep)])
        loads = load_times(new.env(), filled.sweep)
        served = None
        if args.server:
            def through(url: str) -> Dict[str, Any]:
                copy = served_copy(filled.sweep, url, tmp_dir / "served")
                return {"old": old.run(["report", str(copy), "--source", "mlflow"]) if old else None,
                        "new": new.run(["report", str(copy), "--source", "mlflow"])}

            served = with_server(filled.db, tmp_dir / "server", through)
    shape = argparse.Namespace(mlflow_trails=args.trails, steps=args.steps, trails=args.trails,
                               mlflow_fill=args.fill, mlflow_baseline=args.baseline)
    lines = [
        f"# Scale benchmark, MLflow source: {args.trails:,} trails × {args.steps:,} steps × 10 metrics",
        "",
        f"Command: `python benchmarks/scale_mlflow.py {' '.join(sys.argv[1:])}`. Today: "
        f"{args.baseline if old else 'not run'}; now: this checkout. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; load average (1 min) before / after: "
        f"{load_before:.1f} / {os.getloadavg()[0]:.1f} (wall time and, in brackets, the CPU time of the command and "
        f"every process it waited for); the benchmark took {(time.perf_counter() - began) / 60:.1f} min. The store "
        f"is filled by {FILLS[args.fill]}.",
        "",
        "| figure | target | today | now | now / today (wall) | note |",
        "|---|---|---|---|---|---|",
        *bench.mlflow_rows(shape, filled, ml_old, ml_new, journal, loads, served, None, journal),
        "",
    ]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
