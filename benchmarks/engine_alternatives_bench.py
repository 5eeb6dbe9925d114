"""What other ways of running the embedded engine's training step would buy: bf16 autocast, torch.compile, tcmalloc.

    python benchmarks/engine_alternatives_bench.py [--rounds N] [--no-compile]

writes reports/bench_engine_alternatives.md.

Two workloads, each the engine's own code: a base-model pretraining step (`base_model.pretraining_step`, batch
`engine.base_batch` from fresh weights) and a trail's RL update (`train.Trainer.update` at the reference trail shape of
benchmarks/engine_bench.py, 16 prompts × 8, on batches sampled from the default base model). Each variant runs in a
fresh child process on one torch thread, variants alternating, and the figure is CPU time per step after warm-up:
- eager: the engine as it runs;
- bf16: the same under `torch.autocast("cpu", dtype=torch.bfloat16)` (matmuls in bfloat16, weights kept in float32);
- compile: `sequence_logprobs` replaced by `torch.compile(sequence_logprobs, dynamic=True)` (Inductor, C++ kernels);
  its compile time is the warm-up's CPU time beyond that many steady steps, reported apart, from an empty Inductor
  cache (a fresh machine) and again with the cache that run left (compile-warm: every later process);
- tcmalloc: eager with libtcmalloc_minimal preloaded (`LD_PRELOAD`), when the library is installed.
The eager update is also profiled (matmul kernels' share of its CPU time, FLOPs by FlopCounterMode), and the bf16
update's log-probs are compared with float32's on the same weights: an importance ratio is exp of their difference.
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Dict, List

from bench_report import publish  # benchmarks/bench_report.py
from engine_bench import _cfg, fmt_range, matmul_peak

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "bench_engine_alternatives.md"
VARIANTS = ("eager", "bf16", "compile", "compile-warm", "tcmalloc")
WORKLOADS = ("pretrain", "update")
WARMUP, TIMED = 5, 30
TRAIL_STEPS = 400
ON_POLICY_M2 = 3e-4  # measured at lr 1e-4 on the default base model (docs/STUDY.md)


# ---------------------------------------------------------------------------------------------------------------
# child side
# ---------------------------------------------------------------------------------------------------------------

def _variant(variant: str, module: Any) -> Callable[[], Any]:
    """Install the variant into `module` (whose global `sequence_logprobs` the step calls); the context to step in."""
    import torch

    if variant.startswith("compile"):
        module.sequence_logprobs = torch.compile(module.sequence_logprobs, dynamic=True)
    if variant == "bf16":
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext


def _cpu_with_children() -> float:
    """CPU-s of this process and of the child processes it has waited for (the C++ compiler Inductor runs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _timed(step: Callable[[int], Any], n_batches: int) -> Dict[str, float]:
    """CPU time of WARMUP steps (compiler processes included), then the median of TIMED single steps; steps cycle over
    `n_batches` batches."""
    c0 = _cpu_with_children()
    for i in range(WARMUP):
        step(i % n_batches)
    warm = _cpu_with_children() - c0
    times = []
    for i in range(WARMUP, WARMUP + TIMED):
        c0 = time.process_time()
        step(i % n_batches)
        times.append(time.process_time() - c0)
    ms = statistics.median(times) * 1000
    return {"ms": ms, "warmup_extra": max(warm - WARMUP * ms / 1000, 0.0)}


def child_pretrain(variant: str) -> Dict[str, Any]:
    import torch

    from harness.engines.embedded import base_model
    from harness.engines.embedded.config import ModelConfig
    from harness.engines.embedded.model import TinyGPT
    from harness.engines.embedded.task import ProblemSet
    from harness.engines.embedded.train import Adam

    torch.set_num_threads(1)
    eng = _cfg("").engine  # the reference trail shape, the default base-model cache
    torch.manual_seed(int(eng.base_seed))
    model = TinyGPT(ModelConfig.of(eng))
    opt = Adam(list(model.parameters()), lr=float(eng.base_lr))
    data = ProblemSet(f"{eng.task_seed}", "pretrain", int(eng.difficulty), int(eng.max_number))
    rng, size = random.Random(0), int(eng.base_batch)
    batches = [base_model.pretraining_batch(data, i * size, size, rng, float(eng.base_format_frac)) for i in range(20)]
    context = _variant(variant, base_model)

    def step(i: int) -> None:
        with context():
            base_model.pretraining_step(model, opt, *batches[i])

    return dict(_timed(step, len(batches)), batch=size)


def child_update(variant: str) -> Dict[str, Any]:
    import copy

    import torch

    from harness.engines.embedded import train
    from harness.engines.embedded.base_model import load_or_build
    from harness.engines.embedded.model import sequence_logprobs
    from harness.engines.embedded.rollout import generate, prompt_tensor
    from harness.engines.embedded.task import ProblemSet

    torch.set_num_threads(1)
    cfg = _cfg("")
    eng = cfg.engine
    base, info = load_or_build(eng, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    problems = ProblemSet(f"{eng.task_seed}", "train/1", int(eng.difficulty), int(eng.max_number))
    gen = torch.Generator().manual_seed(1)
    b, g = int(eng.batch_prompts), int(eng.group_size)
    batches = [generate(base, problems, list(range(i * b, (i + 1) * b)), g, int(eng.max_new_tokens),
                        float(eng.temperature), gen, 0) for i in range(20)]
    out: Dict[str, Any] = {"base_steps": int(info["steps"])}
    if variant == "bf16":  # log-prob error of bfloat16 on the base weights, over every sampled token
        errors = []
        for batch in batches:
            prompts = prompt_tensor(problems, batch.prompt_idx)
            with torch.no_grad():
                exact, _ = sequence_logprobs(base, prompts, g, batch.tokens, 1.0, batch.mask)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    low, _ = sequence_logprobs(base, prompts, g, batch.tokens, 1.0, batch.mask)
            errors.append((low.float() - exact)[batch.mask])
        diff = torch.cat(errors)
        out.update(m2_error=float(diff.square().mean()), max_error=float(diff.abs().max()), tokens=diff.numel())
    trainer = train.Trainer(copy.deepcopy(base), cfg, problems)
    context = _variant(variant, train)

    def step(i: int) -> None:
        with context():
            trainer.update(batches[i])

    out.update(_timed(step, len(batches)))
    if variant == "eager":
        out.update(_profile_update(trainer, batches))
    return out


def _profile_update(trainer: Any, batches: List[Any]) -> Dict[str, float]:
    """Matmul kernels' share of the update's CPU time, and FLOPs per update (matmuls)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches[:10]:
            trainer.update(batch)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::bmm", "aten::addmm"))
    counter = FlopCounterMode(display=False)
    with counter:
        for batch in batches[10:15]:
            trainer.update(batch)
    return {"matmul_share": matmul / total, "matmul_ms": matmul / 10 / 1000, "profiled_ms": total / 10 / 1000,
            "flops": counter.get_total_flops() / 5}


CHILDREN = {"pretrain": child_pretrain, "update": child_update}


# ---------------------------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------------------------

def run_child(workload: str, variant: str, tcmalloc: str, inductor_cache: Path) -> Dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT),
               TORCHINDUCTOR_CACHE_DIR=str(inductor_cache / workload),
               TORCHINDUCTOR_COMPILE_THREADS="1")  # compile in this process, so its CPU time is counted
    if variant == "tcmalloc":
        env["LD_PRELOAD"] = tcmalloc
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", workload, "--variant", variant,
               "--out", out.name]
        subprocess.run(cmd, env=env, check=True, cwd=str(ROOT), stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())


def find_tcmalloc() -> str:
    """The file name of libtcmalloc_minimal if the dynamic linker finds it (LD_PRELOAD resolves it the same way), else
    ''."""
    return ctypes.util.find_library("tcmalloc_minimal") or ""


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (about 1.5 CPU-min per run)")
    ap.add_argument("--child")
    ap.add_argument("--variant", default="eager")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if args.child:
        Path(args.out).write_text(json.dumps(CHILDREN[args.child](args.variant)))
        return 0
    t_start, load0 = time.time(), os.getloadavg()[0]
    tcmalloc = find_tcmalloc()
    variants = [v for v in VARIANTS if not (v.startswith("compile") and args.no_compile)
                and not (v == "tcmalloc" and not tcmalloc)]
    inductor_cache = Path(tempfile.mkdtemp(prefix="inductor-cache-"))  # empty: the first compile is a cold one
    results: Dict[str, Dict[str, List[Dict[str, Any]]]] = {w: {v: [] for v in variants} for w in WORKLOADS}
    try:
        for r in range(args.rounds):
            for workload in WORKLOADS:
                for variant in variants:
                    if variant.startswith("compile") and r > 0:  # one compile per workload: it costs minutes
                        continue
                    print(f"round {r + 1}/{args.rounds}: {workload}, {variant} ...", flush=True)
                    results[workload][variant].append(run_child(workload, variant, tcmalloc, inductor_cache))
    finally:
        shutil.rmtree(inductor_cache, ignore_errors=True)
    peak = matmul_peak()
    lines = report(args, results, peak, tcmalloc, load0, time.time() - t_start)
    publish(lines, REPORT)
    return 0


def m2_threshold() -> float:
    """M2PO's τ in the algo config's default."""
    from harness.spec.compose import compose_trail

    return float(compose_trail(["tracking=none", "algo=m2po"]).algo.m2_threshold)


def report(args: Any, results: Dict[str, Any], peak: float, tcmalloc: str, load0: float, seconds: float) -> List[str]:
    med = statistics.median
    update = results["update"]
    eager = {w: med(r["ms"] for r in results[w]["eager"]) for w in WORKLOADS}
    base_steps = update["eager"][0]["base_steps"]
    lines = [
        "# Other ways to run the embedded engine's training step, measured against the engine as it runs",
        "",
        f"Command: `python benchmarks/engine_alternatives_bench.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"One torch thread, CPU time of fresh child processes, variants alternating; {args.rounds} round(s) "
        f"(torch.compile once per workload): figures are min / median of each run's median step after {WARMUP} "
        f"warm-up steps. Load average (1 min) at the start: {load0:.1f} on {os.cpu_count()} cores; the benchmark took "
        f"{seconds / 60:.1f} min. Matmul peak of this CPU on one thread: {peak:.1f} GFLOP/s.",
        "",
        "| workload | variant | CPU-ms per step | / eager | compile, CPU-s | what it implies |",
        "|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        for variant, runs in results[workload].items():
            ms = med(r["ms"] for r in runs)
            compiled = variant.startswith("compile")
            compile_s = runs[0]["warmup_extra"] if compiled else 0.0
            what = f"pretraining step, batch {runs[0]['batch']}" if workload == "pretrain" else \
                "RL update, 16 prompts × 8"
            if workload == "pretrain":
                implied = (f"{base_steps:,} pretraining steps (the default base model's): "
                           f"{(base_steps * ms / 1000 + compile_s):.1f} CPU-s, probes excluded (target ≤ 45 in all)")
            elif variant == "eager":
                implied = "the reference"
            else:
                implied = (f"a {TRAIL_STEPS}-step trail {TRAIL_STEPS * (ms - eager[workload]) / 1000 + compile_s:+.1f} "
                           f"CPU-s against eager")
            lines.append(f"| {what} | {variant} | {fmt_range([r['ms'] for r in runs])} | {ms / eager[workload]:.2f} | "
                         f"{f'{compile_s:.1f}' if compiled else ''} | {implied} |")
    prof = update["eager"][0]
    matmul_rate, update_rate = prof["flops"] / prof["matmul_ms"] / 1e6, prof["flops"] / eager["update"] / 1e6
    lines += [
        "",
        "## Where the eager update's time goes",
        "",
        f"Profiled over 10 updates (torch.profiler, self CPU time): matmul kernels (`mm`, `bmm`, `addmm`) take "
        f"{100 * prof['matmul_share']:.0f} % ({prof['matmul_ms']:.1f} of {prof['profiled_ms']:.1f} ms per update); "
        f"an update is {prof['flops'] / 1e9:.2f} GFLOP of matmuls, so the matmuls run at "
        f"{matmul_rate:.0f} GFLOP/s ({100 * matmul_rate / peak:.0f} % of the peak) and the update as a whole at "
        f"{update_rate:.0f} GFLOP/s ({100 * update_rate / peak:.0f} %). The rest is element-wise work, copies, "
        f"softmax, layer norm and the cost of dispatching each small op: at width 64 each op "
        f"moves a few hundred kB, which eager execution writes to memory and reads back between ops.",
    ]
    if "bf16" in update:
        low = update["bf16"][0]
        lines += [
            "",
            "## What bf16 does to an importance ratio",
            "",
            f"On the same weights, the log-probs of {low['tokens']:,} sampled tokens under bf16 autocast differ from "
            f"float32's by up to {low['max_error']:.3f}, mean square {low['m2_error']:.2e}: that is the M2 (mean "
            f"squared log-ratio) an on-policy batch would show from rounding alone, where a ratio should be exactly 1; "
            f"M2PO's mask threshold τ is {m2_threshold()}, and at the study's small step (lr 1e-4) the on-policy M2 is "
            f"about {ON_POLICY_M2:g} (docs/STUDY.md): rounding alone would be {low['m2_error'] / ON_POLICY_M2:.0%} of "
            f"the signal M2PO reads.",
        ]
    lines += ["", "Notes.",
              "- tcmalloc: " + (f"`{tcmalloc}`." if tcmalloc else "not installed (Debian: libtcmalloc-minimal4), "
                                                                      "so not measured."),
              "- torch.compile: its C++ kernels need a compiler (g++) at run time; the compile cost is paid in every "
              "process that compiles, unless Inductor's on-disk cache already holds the graph."]
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
