"""Benchmark of the embedded engine, today's code against the baseline commit, interleaved in one run.

    python benchmarks/engine_bench.py [--quick] [--rounds N] [--steps N]     # writes reports/bench_engine.md

Every figure is CPU time (`time.process_time()`) of one torch thread, measured in a fresh child process per
measurement, alternating baseline and new code, so both see the same machine load; with several rounds the report
gives the minimum and the median. The baseline is `git archive BASELINE harness conf` unpacked in a temporary directory
and run with PYTHONPATH pointing there; the new code is this checkout.

What is measured:
- pretraining of the base model to its probe target (each code once; CPU-s, steps, probe accuracy);
- a trail of the default shape: `--steps` steps (eval at the middle and the end) of a trail started from the same
  base weights (the baseline's, copied into the new code's cache), each step's CPU time taken at the engine's step
  callback; extrapolated to 400 steps + 8 evals as setup + 399 × (median train step) + 8 × (eval step − train step);
  without --quick, one full 400-step trail of each code as well, whose curves are printed side by side;
- FLOPs per train step and per eval (torch.utils.flop_counter.FlopCounterMode, matmuls only), and the trail's share
  of the FLOP limit = FLOPs / (matmul peak of this CPU on one thread) / CPU-s;
- sampled tokens per CPU-s of `sample` at the default batch (16 prompts × 8 samples, max_new_tokens 10);
- the M2PO mask (`m2po_mask.select_m2_mask`) on 1 M tokens, and each M2PO loss reading on 1 M tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import publish  # benchmarks/bench_report.py

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "bench_engine.md"
BASELINE = "e1f5942"
TRAIL_STEPS = 400
TRAIL_EVALS = 8
# the reference trail shape (the baseline's defaults: 400 steps of 16 prompts x 8, lr 1e-3), passed to both codes:
# the defaults have moved since
SHAPE = ["stale=1", "algo=grpo", "algo.variant=clip", "engine.batch_prompts=16", "engine.group_size=8",
         "engine.max_new_tokens=10", "engine.eval_size=512", "engine.lr=0.001", "engine.temperature=1.0",
         "engine.checkpoint_every=50"]


# ---------------------------------------------------------------------------------------------------------------
# child side: runs with whichever `harness` is first on PYTHONPATH, through APIs both versions share
# ---------------------------------------------------------------------------------------------------------------

def _cfg(cache: str, *extra: str):
    from harness.spec.compose import compose_trail

    return compose_trail(["tracking=none", "engine.threads=1", f"engine.cache_dir={cache}", *SHAPE, *extra])


def _ensure_base(cfg, base_file: str) -> None:
    """Start from the given base weights: copy them to where this code version's cache looks."""
    from harness.engines.embedded.base_model import cache_path

    path = cache_path(cfg.engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        shutil.copy(base_file, path)


def child_pretrain(args, *extra: str) -> dict:
    from harness.engines.embedded.base_model import cache_path, load_or_build

    cfg = _cfg(args.cache, *extra)
    c0 = time.process_time()
    _, info = load_or_build(cfg.engine, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    cpu = time.process_time() - c0
    return {"cpu": cpu, "steps": info["steps"], "probe_accuracy": info["probe_accuracy"],
            "path": str(cache_path(cfg.engine))}


def child_pretrain_averaged(args) -> dict:
    """The opt-in averaged base model (new code only)."""
    return child_pretrain(args, "engine.base_ema=0.99", "engine.base_check_every=50")


def child_trail(args) -> dict:
    """A trail run through the engine itself, with each step's CPU time taken at its step callback."""
    from harness.engines.embedded import engine
    from harness.store.journal import Journal, read_records
    from harness.store.rundir import save_config

    steps = args.steps
    extra = [f"engine.steps={steps}", f"engine.eval_every={min(max(steps // 2, 1), 50)}"]
    cfg = _cfg(args.cache, *extra)
    _ensure_base(cfg, args.base)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "trail"
        save_config(run_dir, cfg, SHAPE + extra)
        marks = []
        journal = Journal(run_dir)
        c0 = time.process_time()
        result = engine.run(cfg, run_dir, journal, lambda step, total, metrics: marks.append(time.process_time()))
        journal.close()
        records = [r for r in read_records(run_dir) if r["step"] > 0]  # step 0: the base model's eval
    cpu = [b - a for a, b in zip([c0] + marks[:-1], marks, strict=True)]
    evals = {r["step"] for r in records if "eval/reward" in r}
    return {"status": result.state, "cpu_total": marks[-1] - c0, "step_cpu": cpu,
            "eval_steps": sorted(evals), "records": records,
            "tokens": sum(r["perf/tokens_per_s"] * r["perf/sec_per_step"] for r in records)}


def child_flops(args) -> dict:
    """FLOPs (matmuls, as FlopCounterMode counts them) of each step of a short trail whose last step evaluates."""
    from torch.utils.flop_counter import FlopCounterMode

    from harness.engines.embedded import engine
    from harness.store.journal import Journal

    steps = args.steps
    extra = [f"engine.steps={steps}", f"engine.eval_every={steps}"]
    cfg = _cfg(args.cache, *extra)
    _ensure_base(cfg, args.base)
    counter = FlopCounterMode(display=False)
    marks = []
    with tempfile.TemporaryDirectory() as tmp, counter:
        journal = Journal(Path(tmp) / "trail")
        engine.run(cfg, Path(tmp) / "trail", journal, lambda step, total, m: marks.append(counter.get_total_flops()))
        journal.close()
    per = [b - a for a, b in zip([0] + marks[:-1], marks, strict=True)]
    train = statistics.mean(per[1:-1])  # the first step also evaluates the base model where the code does that
    return {"train_step": train, "eval_step": per[-1], "first_extra": max(per[0] - train, 0.0)}


def child_sample(args) -> dict:
    """Sampled tokens per CPU-s of `sample` at the default batch, from the base weights, `args.steps` calls."""
    import torch

    from harness.engines.embedded.base_model import load_or_build
    from harness.engines.embedded.model import sample
    from harness.engines.embedded.rollout import prompt_tensor
    from harness.engines.embedded.task import ProblemSet

    torch.set_num_threads(1)
    cfg = _cfg(args.cache)
    _ensure_base(cfg, args.base)
    eng = cfg.engine
    model, _ = load_or_build(eng)
    problems = ProblemSet(f"{eng.task_seed}", "train/1", int(eng.difficulty), int(eng.max_number))
    gen = torch.Generator().manual_seed(1)
    b = int(eng.batch_prompts)
    batches = [prompt_tensor(problems, list(range(i * b, (i + 1) * b))) for i in range(args.steps)]
    sample(model, batches[0], int(eng.group_size), int(eng.max_new_tokens), 1.0, gen)  # warm-up
    tokens, c0 = 0, time.process_time()
    for ids in batches:
        _, _, mask = sample(model, ids, int(eng.group_size), int(eng.max_new_tokens), float(eng.temperature), gen)
        tokens += int(mask.sum())
    return {"cpu": time.process_time() - c0, "tokens": tokens}


def child_mask(args) -> dict:
    """The M2PO mask on 1 M tokens, and each M2PO loss reading of the registry, best of a few calls."""
    import inspect

    import torch

    from harness.engines.embedded import losses, m2po_mask

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    n = 1_000_000
    rows = n // 1000
    log_r = torch.randn(rows, 1000, generator=gen) * 0.3
    valid = torch.rand(rows, 1000, generator=gen) < 0.97
    sq = log_r.square()
    out: dict = {}

    def best(fn, reps: int = 5) -> float:
        times = []
        for _ in range(reps):
            c0 = time.process_time()
            fn()
            times.append(time.process_time() - c0)
        return min(times) * 1000

    third = next(iter(p for p in list(inspect.signature(m2po_mask.select_m2_mask).parameters)[2:3]))
    out["select_m2_mask"] = best(lambda: m2po_mask.select_m2_mask(sq, valid, **{third: valid}, tau=0.04))

    class Algo:
        eps_clip, m2_threshold, behav_imp_weight_cap = 0.2, 0.04, 5.0

    behav = torch.randn(rows, 1000, generator=gen) * 0.5 - 2.0
    inputs = losses.LossInputs(logp=(behav + log_r).requires_grad_(), behav_logp=behav, prox_logp=behav + log_r * 0.5,
                               advantages=torch.randn(rows, generator=gen), mask=valid)
    for key in sorted(losses.LOSSES):
        if key.startswith("m2po/"):
            out[key] = best(lambda key=key: losses.LOSSES[key](inputs, Algo), reps=3)
    return out


CHILDREN = {"pretrain": child_pretrain, "pretrain_averaged": child_pretrain_averaged, "trail": child_trail,
            "flops": child_flops, "sample": child_sample, "mask": child_mask}


# ---------------------------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------------------------

def run_child(code: Path, what: str, cache: Path, base: str = "", steps: int = 0) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("HARNESS_CACHE_DIR", None)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", what, "--cache", str(cache), "--base", base,
               "--steps", str(steps), "--out", out.name]
        subprocess.run(cmd, env=env, check=True, cwd=str(code), stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())


def matmul_peak() -> float:
    """Best GFLOP/s of square float32 matmuls (256, 384, 512) on one thread, CPU time, best of many repeats."""
    import torch

    torch.set_num_threads(1)
    best = 0.0
    for n in (256, 384, 512):
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(40):
            c0 = time.process_time()
            for _ in range(10):
                torch.mm(a, b)
            best = max(best, 10 * 2 * n ** 3 / max(time.process_time() - c0, 1e-9) / 1e9)
    return best


def extrapolate(trail: dict) -> dict:
    """400 steps + 8 evals from a short trail: setup and first step as measured, then median steps."""
    cpu = trail["step_cpu"]
    evals = set(trail["eval_steps"])
    train = [c for s, c in enumerate(cpu, 1) if s not in evals and s > 1]
    step = statistics.median(train)
    extra = statistics.mean([cpu[s - 1] for s in evals]) - step
    return {"setup_first": cpu[0], "train_step": step, "eval_extra": extra,
            "trail": cpu[0] + (TRAIL_STEPS - 1) * step + TRAIL_EVALS * extra}


def fmt_range(values: list, unit: str = "", digits: int = 1) -> str:
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}{unit}"
    return f"{min(values):,.{digits}f}{unit} / {statistics.median(values):,.{digits}f}{unit}"


def _window_mean(records: dict, step: int, key: str = "rollout/reward", window: int = 50) -> float:
    """Mean of `key` over the `window` steps ending at `step`."""
    return statistics.mean(records[s][key] for s in range(step - window + 1, step + 1) if s in records)


def main(argv: list) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="no new-code pretraining, no full 400-step trails")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60, help="steps of each short trail")
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--child")
    ap.add_argument("--cache", default="")
    ap.add_argument("--base", default="")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if args.child:
        Path(args.out).write_text(json.dumps(CHILDREN[args.child](args)))
        return 0

    t_start = time.time()
    work = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    old_code = work / "baseline"
    old_code.mkdir()
    archive = subprocess.run(["git", "archive", args.baseline, "harness", "conf"], cwd=ROOT, check=True,
                             capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive.stdout, check=True)
    new_code = ROOT
    codes = {"baseline": old_code, "new": new_code}
    caches = {k: work / f"cache-{k}" for k in codes}
    load0 = os.getloadavg()[0]
    try:
        if args.base:  # reuse given base weights (a file the baseline code built), skip the baseline pretraining
            pre, base_file = {}, args.base
        else:
            print("pretraining the base model (baseline code) ...", flush=True)
            pre = {"baseline": run_child(old_code, "pretrain", caches["baseline"])}
            base_file = pre["baseline"]["path"]
        if not args.quick:
            print("pretraining the base model (new code) ...", flush=True)
            pre["new"] = run_child(new_code, "pretrain", work / "cache-new-pretrain")
            print("pretraining the averaged base model (new code, engine.base_ema=0.99) ...", flush=True)
            pre["averaged"] = run_child(new_code, "pretrain_averaged", work / "cache-new-averaged")
        peak = matmul_peak()
        trails: dict = {k: [] for k in codes}
        samples: dict = {k: [] for k in codes}
        for r in range(args.rounds):
            for name, code in codes.items():
                print(f"round {r + 1}/{args.rounds}: {name} trail of {args.steps} steps, sampling ...", flush=True)
                trails[name].append(run_child(code, "trail", caches[name], base_file, args.steps))
                samples[name].append(run_child(code, "sample", caches[name], base_file, 20))
        flops = {name: run_child(code, "flops", caches[name], base_file, 10) for name, code in codes.items()}
        masks = {name: run_child(code, "mask", caches[name]) for name, code in codes.items()}
        full: dict = {}
        if not args.quick:
            for name, code in codes.items():
                print(f"full {TRAIL_STEPS}-step trail: {name} ...", flush=True)
                full[name] = run_child(code, "trail", caches[name], base_file, TRAIL_STEPS)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()[0]
    lines = report(args, pre, peak, trails, samples, flops, masks, full, load0, load1, time.time() - t_start)
    publish(lines, REPORT)
    return 0


NOTES = """Notes.
- Both codes start every trail from the same base weights (the baseline's pretraining, copied into the new code's
  cache) and are given the reference trail shape (the baseline's defaults) explicitly (the defaults have since moved
  to 800 steps of 8 × 8).
- The two trails do not see the same problems: since the baseline the task holds eval questions out by a hash of their
  text and the train stream skips them (commit 8ea8e60), so the curves part from the first step for that reason,
  besides sampling: the new sampler draws by the exponential race from uniforms (token = argmax log p − log(−log u)),
  the distribution multinomial draws from (tests/test_engine_model.py checks the frequencies and checks the cached
  sampler token for token against a naive one that reruns the prefix) but from other random numbers, so the two
  trails sample different tokens from the first step, like two seeds, and their log-probs differ in the last float
  bits (another attention and summation order).
- The extrapolation from short trails takes their median step. The new code's cost follows the answers' lengths
  (it computes no position after an EOS, and drops prompts whose answers have all ended), the baseline's does not, so
  when later answers are longer the extrapolation flatters the new code: the full 400-step runs are the figure to read.
- The FLOP share is against each code's own FLOPs; the new code does fewer (no LM head at prompt positions, one prompt
  pass per eval chunk instead of two, no positions after EOS in training), which lowers its FLOP limit too.
- Pretraining: the baseline stops at the first probe ≥ base_target_acc, the new code when the mean of the last 3
  probes is (the greedy probe swings between answer formats); 'probe' is the value the rule read. The averaged base
  (`engine.base_ema=0.99`, probed every 50 steps) is an option, not the default: from it RL learns less (see
  harness/engines/embedded/base_model.py)."""


def report(args, pre, peak, trails, samples, flops, masks, full, load0, load1, seconds) -> list:
    ext = {k: [extrapolate(t) for t in v] for k, v in trails.items()}
    est = {k: [e["trail"] for e in v] for k, v in ext.items()}
    flop_trail = {k: TRAIL_STEPS * f["train_step"] + TRAIL_EVALS * (f["eval_step"] - f["train_step"])
                  + f.get("first_extra", 0.0) for k, f in flops.items()}
    limit = {k: flop_trail[k] / (peak * 1e9) for k in flops}
    share = {k: [100 * limit[k] / c for c in est[k]] for k in est}
    tps = {k: [s["tokens"] / s["cpu"] for s in v] for k, v in samples.items()}
    med = statistics.median
    lines = [
        "# Embedded engine benchmark: today's code against the baseline, measured in the same run",
        "",
        f"Command: `python benchmarks/engine_bench.py {' '.join(a for a in sys.argv[1:])}`".rstrip() + "  ",
        f"Baseline: commit {args.baseline} (`git archive`, run from a temporary directory); new: this checkout. "
        f"One torch thread, CPU time (`time.process_time()`) of fresh child processes, baseline and new alternating, "
        f"{args.rounds} round(s): figures are min / median. Matmul peak of this CPU on one thread (best square float32 "
        f"matmul of 256, 384, 512, CPU time): "
        f"{peak:.1f} GFLOP/s. Load average (1 min) before / after: {load0:.1f} / {load1:.1f} on "
        f"{os.cpu_count()} cores; "
        f"the benchmark took {seconds / 60:.1f} min.",
        "",
        "| figure | baseline | new | new / baseline | target | met |",
        "|---|---|---|---|---|---|",
    ]
    b, n = "baseline", "new"
    lines.append(f"| default trail (400 steps of 16 × 8, 8 evals of 512), CPU-s, extrapolated from {args.steps}-step "
                 f"trails | {fmt_range(est[b])} | {fmt_range(est[n])} | {med(est[n]) / med(est[b]):.2f} | ≤ 35 "
                 f"| {'yes' if med(est[n]) <= 35 else 'no'} |")
    if full:
        fb, fn = full[b]["cpu_total"], full[n]["cpu_total"]
        lines.append(f"| default trail, CPU-s, one full 400-step run each | {fb:.1f} | {fn:.1f} | {fn / fb:.2f} | ≤ 35 "
                     f"| {'yes' if fn <= 35 else 'no'} |")
    lines += [
        f"| FLOPs of the default trail (matmuls; 400 train steps + 8 evals + the base model's eval where the code "
        f"does it at step 1) | {flop_trail[b] / 1e9:,.0f} G "
        f"| {flop_trail[n] / 1e9:,.0f} G | {flop_trail[n] / flop_trail[b]:.2f} | | |",
        f"| FLOP limit of the trail (FLOPs / peak) | {limit[b]:.1f} s | {limit[n]:.1f} s | | | |",
        f"| share of the FLOP limit (limit / CPU-s, extrapolated trail) | {fmt_range(share[b])} % "
        f"| {fmt_range(share[n])} % | | ≥ 35 % | {'yes' if med(share[n]) >= 35 else 'no'} |",
    ]
    if full:
        sb, sn = 100 * limit[b] / full[b]["cpu_total"], 100 * limit[n] / full[n]["cpu_total"]
        lines.append(f"| share of the FLOP limit, full 400-step run | {sb:.1f} % | {sn:.1f} % | | ≥ 35 % "
                     f"| {'yes' if sn >= 35 else 'no'} |")
    ttps = {k: [t["tokens"] / t["cpu_total"] for t in v] for k, v in trails.items()}
    lines.append(f"| sampled tokens trained on per CPU-s of a whole trail ({args.steps}-step trails, evals included) "
                 f"| {fmt_range(ttps[b], digits=0)} | {fmt_range(ttps[n], digits=0)} "
                 f"| {med(ttps[n]) / med(ttps[b]):.2f} "
                 f"| ≥ 2× | {'yes' if med(ttps[n]) >= 2 * med(ttps[b]) else 'no'} |")
    if full:
        fb_t, fn_t = (full[k]["tokens"] / full[k]["cpu_total"] for k in (b, n))
        lines.append(f"| sampled tokens trained on per CPU-s, full 400-step run | {fb_t:,.0f} | {fn_t:,.0f} | "
                     f"{fn_t / fb_t:.2f} | ≥ 2× | {'yes' if fn_t >= 2 * fb_t else 'no'} |")
    lines += [
        f"| sampled tokens per CPU-s of `sample` alone, 16 prompts × 8, 20 batches | {fmt_range(tps[b], digits=0)} "
        f"| {fmt_range(tps[n], digits=0)} | {med(tps[n]) / med(tps[b]):.2f} | ≥ 2× | "
        f"{'yes' if med(tps[n]) >= 2 * med(tps[b]) else 'no'} |",
    ]
    if "new" in pre and b in pre:
        pb, pn = pre[b], pre[n]
        lines.append(f"| base-model pretraining to the probe target, CPU-s | {pb['cpu']:.1f} ({pb['steps']} steps, "
                     f"probe {pb['probe_accuracy']:.3f}) | {pn['cpu']:.1f} ({pn['steps']} steps, probe "
                     f"{pn['probe_accuracy']:.3f}) | {pn['cpu'] / pb['cpu']:.2f} | ≤ 45 | "
                     f"{'yes' if pn['cpu'] <= 45 else 'no'} |")
        if "averaged" in pre:
            pa = pre["averaged"]
            lines.append(f"| pretraining of the averaged base (option `engine.base_ema=0.99`, probed every 50 steps), "
                         f"CPU-s | | {pa['cpu']:.1f} ({pa['steps']} steps, probe {pa['probe_accuracy']:.3f}) "
                         f"| {pa['cpu'] / pb['cpu']:.2f} | ≤ 45 "
                         f"| {'yes' if pa['cpu'] <= 45 else 'no'} (not the default) |")
    elif b in pre:
        pb = pre[b]
        lines.append(f"| base-model pretraining (baseline only with --quick), CPU-s | {pb['cpu']:.1f} ({pb['steps']} "
                     f"steps, probe {pb['probe_accuracy']:.3f}) | | | ≤ 45 | |")
    for key in sorted(set(masks[b]) | set(masks[n])):
        vb, vn = masks[b].get(key), masks[n].get(key)
        what = "M2PO mask `select_m2_mask`" if key == "select_m2_mask" else f"loss `{key}` (mask included)"
        cell = lambda v: "—" if v is None else f"{v:.0f} ms"  # noqa: E731
        target = "≤ 50 ms" if key == "select_m2_mask" else ""
        lines.append(f"| {what} on 1 M tokens, best CPU time | {cell(vb)} | {cell(vn)} | "
                     f"{'' if vb is None or vn is None else f'{vn / vb:.2f}'} | {target} | "
                     f"{'yes' if key == 'select_m2_mask' and vn is not None and vn <= 50 else ''} |")
    lines += ["", "## Where a trail's time goes (medians over rounds)", "",
              "| | baseline | new |", "|---|---|---|"]
    for key, label in (("setup_first", "setup + first step (imports, base model load, optimiser), CPU-s"),
                       ("train_step", "train step (sample + update), CPU-ms"), ("eval_extra", "one eval, CPU-s")):
        scale = 1000 if key == "train_step" else 1
        lines.append(f"| {label} | {med([e[key] for e in ext[b]]) * scale:.2f} | "
                     f"{med([e[key] for e in ext[n]]) * scale:.2f} |")
    lines.append(f"| `sample` at 16 × 8: CPU-ms per call | {med([1000 * s['cpu'] / 20 for s in samples[b]]):.1f} | "
                 f"{med([1000 * s['cpu'] / 20 for s in samples[n]]):.1f} |")
    lines.append(f"| FLOPs per train step / per eval | {flops[b]['train_step'] / 1e9:.2f} G / "
                 f"{flops[b]['eval_step'] / 1e9:.1f} G | {flops[n]['train_step'] / 1e9:.2f} G / "
                 f"{flops[n]['eval_step'] / 1e9:.1f} G |")
    lines += ["", NOTES]
    if full:
        lines += ["", "## Curves of the two full trails side by side (same seed, same base weights)", "",
                  "| step | eval reward baseline | eval reward new | sampled eval baseline | sampled eval new "
                  "| rollout reward baseline | rollout reward new |", "|---|---|---|---|---|---|---|"]
        rb = {r["step"]: r for r in full[b]["records"]}
        rn = {r["step"]: r for r in full[n]["records"]}
        for step in sorted(s for s in rb if "eval/reward" in rb[s]):
            x, y = rb[step], rn.get(step, {})
            lines.append(f"| {step} | {x['eval/reward']:.3f} | {y.get('eval/reward', float('nan')):.3f} | "
                         f"{x['eval/reward_sampled']:.3f} | {y.get('eval/reward_sampled', float('nan')):.3f} | "
                         f"{_window_mean(rb, step):.3f} | {_window_mean(rn, step):.3f}"
                         " |")
        lines.append("")
        lines.append("Rollout reward: mean of the 50 steps up to the eval step.")
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
