"""Benchmark of the embedded engine: one default trail on one core → seconds/step, tokens/s, wall time.

    python benchmarks/engine_bench.py [overrides ...]      # writes reports/bench_engine.md

The base model is built (or loaded from the cache) first and timed separately: it is a one-off cost shared by every
trail. The trail's own CPU time (one torch thread) is what its wall time is on an idle core; wall time and the load
average are recorded beside it because on a shared machine the wall time says more about the neighbours.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from harness.compose import compose_trail
from harness.engines.embedded.base_model import cache_path, load_or_build
from harness.engines.embedded.model import param_count
from harness.journal import read_records
from harness.rundir import read_status, save_config
from harness.runner import run_trail_dir

REPORT = Path(__file__).resolve().parent.parent / "reports" / "bench_engine.md"


def main(argv: list[str]) -> int:
    overrides = ["tracking=none", "engine.threads=1", *argv]
    cfg = compose_trail(overrides)
    torch.set_num_threads(1)
    fresh = not cache_path(cfg.engine).exists()
    t0 = time.perf_counter()
    model, info = load_or_build(cfg.engine)
    base_s = time.perf_counter() - t0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "trail"
        save_config(run_dir, cfg, overrides)
        t0, c0 = time.perf_counter(), time.process_time()
        state = run_trail_dir(run_dir)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        records = read_records(run_dir)
        status = read_status(run_dir)
    load_after = os.getloadavg()[0]
    sec = [r["perf/sec_per_step"] for r in records]
    train_sec = [r["perf/sec_per_step"] for r in records if "eval/reward" not in r]
    tps = [r["perf/tokens_per_s"] for r in records if "eval/reward" not in r]
    evals = [r for r in records if "eval/reward" in r]
    tokens = sum(r["perf/tokens_per_s"] * r["perf/sec_per_step"] for r in records)
    eng = cfg.engine
    lines = [
        "# Embedded engine benchmark",
        "",
        f"Command: `python benchmarks/engine_bench.py {' '.join(argv)}`".rstrip() + "  ",
        f"Trail: {cfg.stale=} algo={cfg.algo.name}/{cfg.algo.variant}, {eng.steps} steps of {eng.batch_prompts} prompts "
        f"× {eng.group_size} samples, model {eng.n_layer} layers × width {eng.n_embd} ({param_count(model):,} "
        f"parameters), eval of {eng.eval_size} held-out problems every {eng.eval_every} steps, one torch thread.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| CPU time of one trail on one thread (incl. eval, excl. base model) = its wall time on an idle core "
        f"| {cpu:.1f} s |",
        f"| wall time of that trail on this machine, as loaded as it was | {wall:.1f} s |",
        f"| CPU seconds per step | {cpu / max(len(records), 1):.3f} |",
        f"| tokens per CPU second (sampled tokens trained on, whole trail incl. eval) | {tokens / cpu:,.0f} |",
        f"| seconds per step (mean over all steps, incl. eval steps) | {statistics.mean(sec):.3f} |",
        f"| seconds per training step (median, steps without eval) | {statistics.median(train_sec):.3f} |",
        f"| tokens per second (median; sampled tokens trained on / step time) | {statistics.median(tps):,.0f} |",
        f"| eval steps / extra time per eval step | {len(evals)} / "
        f"{(statistics.mean([r['perf/sec_per_step'] for r in evals]) - statistics.median(train_sec)):.2f} s |",
        f"| base model: one-off pretraining time (cached) | {info.get('seconds', float('nan')):.1f} s over "
        f"{info.get('steps')} steps, probe greedy accuracy {info.get('probe_accuracy', 0):.3f} |",
        f"| base model this run | {'built' if fresh else 'loaded from cache'} in {base_s:.1f} s |",
        f"| trail final state | {state} at step {status.get('step')} |",
        f"| final eval reward (greedy / sampled) | {evals[-1]['eval/reward']:.3f} / "
        f"{evals[-1]['eval/reward_sampled']:.3f} |" if evals else "| final eval | none |",
        f"| load average (1 min) before / after, {os.cpu_count()} cores | {load_before:.1f} / {load_after:.1f} |",
        "",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
