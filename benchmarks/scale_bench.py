"""Scale benchmark: the harness's own costs on sweeps of 1,000 trails, each beside today's code measured in the same
run — a baseline commit `git archive`d to a temporary directory and run from there, command for command.

    python benchmarks/scale_bench.py [--baseline 6abc0b2] [--trails 1000] [--steps 1000] [--mlflow-trails 100]
                                     [--mlflow-fill log_batch|sync] [--server]   → reports/bench_scale.md

Figures (wall seconds, and CPU seconds of the command and every process it waited for: the machine is shared):
- `harness sweep <1,000 trails> --dry-run`, end to end;
- per-trail harness overhead on the local backend, one trail at a time: the slope of a sweep's wall time over its
  number of trails (so the command's own start-up is not counted), with trails of the toy engine (no work: all of
  it is overhead) and 2-step trails of the embedded engine (overhead = slope − the trail's own compute); warm
  workers, a fresh process per trail (`backend.workers=process`) and the baseline;
- `harness report` over a synthetic sweep of trails × steps × 10 metrics, from journals;
- `harness status` on that sweep: no journal index yet (cold), with it (warm), and the baseline;
- `harness report --source mlflow` over a synthetic sweep of --mlflow-trails trails in a real sqlite store (filled by
  MLflow's log_batch, or with --mlflow-fill sync by the harness's own sync), beside the journal source on the same
  sweep, extrapolated to --trails when smaller; with --server also through a real `mlflow server`
  (benchmarks/scale_mlflow.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench_report import publish  # noqa: E402  (benchmarks/bench_report.py)
from scale_mlflow import Filled, extrapolate, filled_sweep, load_times, served_copy, with_server  # noqa: E402
from synthetic_sweeps import random_sweep  # noqa: E402  (a test helper: tests/synthetic_sweeps.py)
from tiny_trail import tiny_trail  # noqa: E402

from harness.store.journal_index import INDEX_NAME  # noqa: E402
from harness.store.rundir import read_status  # noqa: E402
from harness.store.sweepdir import trail_dirs  # noqa: E402

DRY_RUN = ["stale=range(0,50)", "algo=grpo,m2po", "seed=range(1,11)", "tracking=none"]  # 1,000 trails
# the test suite's tiny trail, shorter and with smaller batches
EMBEDDED = tiny_trail("engine.steps=2", "engine.batch_prompts=2", "engine.group_size=2", "engine.eval_every=2",
                      "engine.eval_size=8", "engine.checkpoint_every=2")
TARGETS = {"dry": 15.0, "overhead": 0.3, "report": 20.0, "status": 1.0}
DEFAULT_TRAIL_CPU_S = 35.0  # the faster engine's default trail (reports/bench_engine.md): the 5 % yardstick


@dataclass
class Took:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.2f} s ({self.cpu:.2f} CPU-s)"


@dataclass
class Code:
    """A checkout of the harness to run commands with: this one, or the baseline."""
    name: str
    root: Path

    def env(self, plugins: Optional[str] = None, cache: Optional[Path] = None) -> Dict[str, str]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(self.root), str(self.root / "tests")]))
        env.pop("HARNESS_PLUGINS", None)
        if plugins:
            env["HARNESS_PLUGINS"] = plugins
        if cache is not None:
            env["HARNESS_CACHE_DIR"] = str(cache)
        return env

    def run(self, args: Sequence[str], **env: object) -> Took:
        """`harness ARGS` from this checkout, timed."""
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=self.root, env=self.env(**env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{self.name}: harness {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return Took(wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def baseline_checkout(commit: str, into: Path) -> Code:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    code = Code(f"baseline {commit}", into)
    where = subprocess.run([sys.executable, "-c", "import harness; print(harness.__file__)"], env=code.env(), cwd=into,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(into)), f"the baseline run imports {where}, not the baseline"
    return code


def per_trail(code: Code, root: Path, tag: str, overrides: Sequence[str], small: int, large: int,
              **env: object) -> tuple[Took, List[Path]]:
    """The slope of a serial sweep's wall (and CPU) time over its number of trails."""
    timings = []
    for n in (small, large):
        timings.append(code.run(["sweep", f"stale=range(0,{n})", *overrides, "backend.max_parallel=1",
                                 "--name", f"{tag}-{n}", "--root", str(root), "--no-report"], **env))
    span = large - small
    slope = Took((timings[1].wall - timings[0].wall) / span, (timings[1].cpu - timings[0].cpu) / span)
    return slope, trail_dirs(root / f"{tag}-{large}")


def engine_compute(run_dirs: List[Path]) -> float:
    """Median time inside a warm worker's trail after its first (imports done): the trail's own work."""
    spans = sorted((read_status(d)["started"], read_status(d)["ended"] - read_status(d)["started"]) for d in run_dirs)
    return statistics.median(s for _, s in spans[1:])


def row(figure: str, target: str, today: Optional[Took], now: Took, note: str = "") -> str:
    ratio = f"{now.wall / today.wall:.2f}" if today is not None and today.wall > 0 else ""
    return f"| {figure} | {target} | {today if today is not None else '—'} | **{now}** | {ratio} | {note} |"


def mlflow_rows(args: argparse.Namespace, filled: Filled, old: Optional[Took], new: Took, journal: Took,
                loads: Dict[str, list], served: Optional[Dict[str, object]], estimate: Optional[float],
                journal_full: Took) -> List[str]:
    """The table's rows for the MLflow source."""
    size = f"{args.mlflow_trails:,} trails × {args.steps:,} steps × 10 metrics"
    ratio = f"{new.wall / journal.wall:.1f}× wall, {new.cpu / journal.cpu:.1f}× CPU"
    rows = [row(f"`harness report` over {size}, from MLflow (sqlite store); today = {args.mlflow_baseline}",
                "≤ 3× journals", old, new,
                f"from journals, same sweep: {journal} → MLflow / journals = {ratio}; loading alone (one process, "
                f"mlflow's import of {loads['import'][0]:.1f} s apart): MLflow {loads['mlflow'][0]:.2f} s, "
                f"journals {loads['journal'][0]:.2f} s; the "
                f"store ({filled.values:,} values) filled by {args.mlflow_fill} in {filled.wall:.0f} s "
                f"({filled.cpu:.0f} CPU-s), not counted")]
    if served is not None:
        rows.append(row(f"`harness report` over {size}, from an `mlflow server` on that store", "", served["old"],
                        served["new"], f"the server's own CPU over both reports: {served['server_cpu']:.0f} CPU-s; "
                        "histories read per run and metric, 8 at a time"))
    if estimate is not None:
        target = 3 * journal_full.wall
        rows.append(f"| `harness report` over {args.trails:,} trails × {args.steps:,} steps × 10 metrics, from MLflow "
                    f"(sqlite store), extrapolated | ≤ {target:.0f} s (3× journals) | — | **≈ {estimate:.0f} s** | | "
                    f"the journal report above ({journal_full.wall:.1f} s) + mlflow's import once + the MLflow "
                    f"load's extra time over the journal load at {args.mlflow_trails:,} trails × "
                    f"{args.trails / args.mlflow_trails:g} (both loads grow with the trails; the rest of the report "
                    f"is the same for both sources) |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="6abc0b2", help="commit of today's code (default: 6abc0b2)")
    parser.add_argument("--trails", type=int, default=1000, help="trails of the report/status sweep")
    parser.add_argument("--steps", type=int, default=1000, help="steps per trail of the report/status sweep")
    parser.add_argument("--mlflow-baseline", default="bfe9df9",
                        help="commit of today's MLflow source (default: bfe9df9, per-metric history reads; "
                        "none: skip it)")
    parser.add_argument("--mlflow-trails", type=int, default=100, help="trails of the sweep read from MLflow")
    parser.add_argument("--mlflow-fill", choices=("log_batch", "sync"), default="log_batch",
                        help="how the store is filled: MLflow's log_batch, or the harness's own sync")
    parser.add_argument("--server", action="store_true", help="also read the store through a real mlflow server")
    parser.add_argument("--out", default=str(REPO / "reports" / "bench_scale.md"))
    args = parser.parse_args()
    load_before, began = os.getloadavg()[0], time.perf_counter()
    new = Code("this checkout", REPO)
    lines: List[str] = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        tmp_dir = Path(tmp)
        old = baseline_checkout(args.baseline, tmp_dir / "baseline")
        cache = tmp_dir / "cache"

        print("dry run of 1,000 trails …", flush=True)
        dry = {c.name: c.run(["sweep", *DRY_RUN, "--dry-run", "--root", str(tmp_dir / "dry")]) for c in (old, new)}

        print("per-trail overhead …", flush=True)
        toy = {}
        for label, code, extra in (("baseline", old, []), ("process", new, ["backend.workers=process"]),
                                   ("warm", new, [])):
            toy[label], _ = per_trail(code, tmp_dir / "toy", f"toy-{label}", ["engine=toy", "tracking=none", *extra],
                                      4, 24, plugins="toy_engine:PLUGIN")
        new.run(["sweep", "seed=99", *EMBEDDED, "--name", "warm-cache", "--root", str(tmp_dir / "emb")],
                cache=cache)  # the tiny base model, built once outside every timing
        emb, emb_dirs = {}, {}
        # warm trails take a fraction of a second: more of them, so the slope is not one scheduler hiccup
        for label, code, extra, large in (("baseline", old, [], 8), ("process", new, ["backend.workers=process"], 8),
                                          ("warm", new, [], 22)):
            emb[label], emb_dirs[label] = per_trail(code, tmp_dir / "emb", f"emb-{label}", [*EMBEDDED, *extra], 2,
                                                    large, cache=cache)
        compute = engine_compute(emb_dirs["warm"])
        # wall: the slope less the trail's own compute; CPU: the whole trail's (its compute included), per trail
        emb_over = {k: Took(v.wall - compute, v.cpu) for k, v in emb.items()}

        print(f"synthetic sweep of {args.trails} trails × {args.steps} steps …", flush=True)
        start = time.perf_counter()
        sweep = random_sweep(tmp_dir / "synthetic" / "scale", trails=args.trails, steps=args.steps)
        generated = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in sweep.glob("*/journal.jsonl")) / 1e6

        print("report …", flush=True)
        report_old = old.run(["report", str(sweep)])
        (sweep / INDEX_NAME).unlink(missing_ok=True)
        report_new = new.run(["report", str(sweep)])

        print("status …", flush=True)
        status_old = old.run(["status", str(sweep)])
        (sweep / INDEX_NAME).unlink(missing_ok=True)
        status_cold = new.run(["status", str(sweep)])
        status_warm = new.run(["status", str(sweep)])
        shutil.rmtree(tmp_dir / "synthetic", ignore_errors=True)

        print(f"MLflow: {args.mlflow_trails} trails × {args.steps} steps into a sqlite store ({args.mlflow_fill}) …",
              flush=True)
        filled = filled_sweep(tmp_dir / "mlflow", args.mlflow_trails, args.steps, args.mlflow_fill)
        from_mlflow = ["report", str(filled.sweep), "--source", "mlflow"]
        old_ml = (None if args.mlflow_baseline == "none"
                  else baseline_checkout(args.mlflow_baseline, tmp_dir / "mlflow-baseline"))
        ml_old, ml_new = old_ml.run(from_mlflow) if old_ml else None, new.run(from_mlflow)
        ml_journal = new.run(["report", str(filled.sweep)])
        loads = load_times(new.env(), filled.sweep)
        served = None
        if args.server:
            print("MLflow server …", flush=True)

            def through(url: str) -> Dict[str, object]:
                copy = served_copy(filled.sweep, url, tmp_dir / "served")
                return {"old": old_ml.run(["report", str(copy), "--source", "mlflow"]) if old_ml else None,
                        "new": new.run(["report", str(copy), "--source", "mlflow"])}

            served = with_server(filled.db, tmp_dir / "server", through)
        estimate = extrapolate(report_new.wall, loads, args.mlflow_trails, args.trails)

    minutes = (time.perf_counter() - began) / 60
    lines = [
        "# Scale benchmark: sweeps of 1,000 trails, today's code against this one in the same run",
        "",
        f"Command: `python benchmarks/scale_bench.py {' '.join(sys.argv[1:])}`. Baseline: commit {args.baseline} "
        f"({args.mlflow_baseline} for the MLflow source; `git archive`, run from a temporary directory); "
        f"now: this checkout. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average (1 min) before / after: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f} (the machine is shared, so each figure is wall time and, in brackets, the CPU "
        f"time of the command and every process it waited for); the benchmark took {minutes:.1f} min.",
        "",
        "| figure | target | today | now | now / today (wall) | note |",
        "|---|---|---|---|---|---|",
        row("`harness sweep` of 1,000 trails `--dry-run`, end to end", f"≤ {TARGETS['dry']:.0f} s",
            dry[old.name], dry[new.name], "compose-once is in both; the 1,000-row table printed"),
        row("per-trail overhead, toy engine (no work), warm workers", f"≤ {TARGETS['overhead']} s", toy["baseline"],
            toy["warm"], "slope of a serial sweep's time over 4 → 24 trails; spawn, config, bookkeeping, polling"),
        row("per-trail overhead, toy engine, `backend.workers=process`", "", toy["baseline"], toy["process"],
            "a fresh Python per trail, as today"),
        row("per-trail overhead, embedded engine (2-step trail), warm workers", f"≤ {TARGETS['overhead']} s",
            emb_over["baseline"], emb_over["warm"],
            f"wall: slope over 2 → 22 trails (2 → 8 for the others) less the trail's own compute "
            f"({compute:.2f} s); CPU: the whole "
            f"trail's; torch imported once per worker; {emb_over['warm'].wall / DEFAULT_TRAIL_CPU_S:.1%} of a "
            f"{DEFAULT_TRAIL_CPU_S:.0f}-s default trail (target ≤ 5 %)"),
        row("per-trail overhead, embedded engine, `backend.workers=process`", "", emb_over["baseline"],
            emb_over["process"], "imports torch and the engine in every trail"),
        row(f"`harness report` over {args.trails:,} trails × {args.steps:,} steps × 10 metrics, from journals",
            f"≤ {TARGETS['report']:.0f} s", report_old, report_new,
            f"end to end (imports, load, tables, 3 PNG, markdown); {size_mb:.0f} MB of journals"),
        row("`harness status` on that sweep, warm (journal index present)", f"≤ {TARGETS['status']:.0f} s",
            status_old, status_warm, "the index is written by the report (at the end of a sweep) or the last status"),
        row("`harness status` on that sweep, cold (no journal index)", "", status_old, status_cold,
            "every journal's steps read column-wise (pyarrow), then indexed"),
        *mlflow_rows(args, filled, ml_old, ml_new, ml_journal, loads, served, estimate, report_new),
        "",
        f"The synthetic sweep (GRPO vs M2PO, 20 configurations, 10 metrics every step plus eval/reward every 10th, "
        f"all trails done) was written in {generated:.0f} s, not counted. Tracking is off in every sweep here "
        f"(`tracking=none`): its per-trail cost belongs to the per-sweep tracking process and its own benchmark. "
        f"Overhead includes the sweep's poll interval (0.2 s): a serial sweep notices a finished trail at the "
        f"next poll. Wall times move with the machine's load from run to run (the slopes most, being differences "
        f"of two sweeps); the CPU figures move much less.",
        "",
    ]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
