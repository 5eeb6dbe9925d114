"""What the embedded engine's own Adam (harness.engines.embedded.train.Adam) saves over torch.optim.Adam, now that
local trails run in warm workers, and whether the two give the same bits.

    python benchmarks/optimizer_bench.py [--rounds N] [--steps N] [--trail-steps N]  # reports/bench_optimizer.md

Every figure is CPU time (`time.process_time()`) of one torch thread, in fresh child processes, the two optimisers
alternating round by round, so both see the same machine load; figures are min / median over the rounds.

What is measured:
- the first optimiser of a process: constructing it over the default TinyGPT's parameters and its first step, after
  the imports a warm worker has done before its first trail (harness.backends.worker, the embedded engine); whether
  torch._dynamo was imported before and after (torch's optimisers import it on first use);
- the second optimiser of the same process (a warm worker's next trail);
- a whole short trail of the default shape in a fresh process (imports, base model load, `--trail-steps` steps, the
  base and the last eval), run through the engine with `train.Adam` replaced by `torch.optim.Adam`, and the SHA-256
  of its journal's metrics (timings left out) and of its checkpoint (weights and optimiser state);
- one `step()` on the default model's parameters (median of `--steps`), for torch's default CPU path and foreach=True;
- bits: the parameters and moments after 200 updates with the same gradients, each torch variant against train.Adam;
  a state_dict saved by one optimiser after 100 updates and loaded by the other, 100 more updates, against 200 updates
  without a break (an old checkpoint resumed by the library optimiser, and back).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import publish  # benchmarks/bench_report.py

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "bench_optimizer.md"
IMPLS = ("train.Adam", "torch.optim.Adam")


# ---------------------------------------------------------------------------------------------------------------
# child side
# ---------------------------------------------------------------------------------------------------------------

def _default_engine(*extra: str):
    from harness.spec.compose import compose_trail

    return compose_trail(["tracking=none", "engine.threads=1", *extra])


def _optimiser(impl: str, params: list, lr: float, **kwargs):
    import torch

    from harness.engines.embedded.train import Adam

    return Adam(params, lr=lr) if impl == "train.Adam" else torch.optim.Adam(params, lr=lr, **kwargs)


def _model(seed: int = 0):
    import torch

    from harness.engines.embedded.model import ModelConfig, TinyGPT

    torch.manual_seed(seed)
    return TinyGPT(ModelConfig.of(_default_engine().engine))


def _grads(params: list, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2


def child_first(impl: str) -> dict:
    """The first and the second optimiser of a process, after a warm worker's imports."""
    import torch

    import harness.backends.worker  # noqa: F401 - what a warm worker has imported before its first trail
    from harness.engines.embedded import engine  # noqa: F401

    torch.set_num_threads(1)
    params = list(_model().parameters())
    before = "torch._dynamo" in sys.modules
    out: dict = {"dynamo_before": before}
    for key in ("first", "second"):
        _grads(params, 1)
        c0 = time.process_time()
        opt = _optimiser(impl, params, 1e-3)
        opt.step()
        out[key] = time.process_time() - c0
    out["dynamo_after"] = "torch._dynamo" in sys.modules
    return out


def _sha(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def child_trail(impl: str, steps: int) -> dict:
    """A short trail through the engine in this fresh process; CPU time from the interpreter's start."""
    import torch

    from harness.engines.embedded import engine, train
    from harness.store.journal import Journal, read_records
    from harness.store.rundir import save_config

    if impl == "torch.optim.Adam":
        train.Adam = torch.optim.Adam  # type: ignore[misc,assignment]  # what the Trainer constructs
    extra = [f"engine.steps={steps}", f"engine.checkpoint_every={steps - 1}"]
    cfg = _default_engine(*extra)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "trail"
        save_config(run_dir, cfg, extra)
        journal = Journal(run_dir)
        result = engine.run(cfg, run_dir, journal, lambda step, total, metrics: None)
        journal.close()
        cpu = time.process_time()  # since the process started
        records = [{k: v for k, v in r.items() if not k.startswith("perf/") and k != "time"}
                   for r in read_records(run_dir)]
        ckpt = torch.load(run_dir / engine.CKPT_DIR / engine.CKPT_FILE, weights_only=True)
    tensors = {f"model.{k}": v for k, v in ckpt["model"].items()}
    for i, state in ckpt["optim"]["state"].items():
        tensors.update({f"optim.{i}.{k}": v for k, v in state.items()})
    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].detach().to(torch.float64).numpy().tobytes())
    return {"state": str(result.state), "cpu": cpu, "journal": _sha(records), "checkpoint": digest.hexdigest()[:12]}


def child_steps(impl: str, steps: int, foreach: bool) -> dict:
    """Median CPU time of one step() on the default model's parameters."""
    import torch

    torch.set_num_threads(1)
    params = list(_model().parameters())
    opt = _optimiser(impl, params, 1e-3, **({"foreach": True} if foreach else {}))
    _grads(params, 1)
    for _ in range(20):  # warm-up (and torch's lazy imports)
        opt.step()
    times = []
    for _ in range(steps):
        c0 = time.process_time()
        opt.step()
        times.append(time.process_time() - c0)
    eng = _default_engine().engine
    return {"median_ms": statistics.median(times) * 1000, "n_tensors": len(params),
            "n_params": sum(p.numel() for p in params),
            "trail_updates": int(eng.steps) * int(eng.ppo_n_minibatches)}  # optimiser steps of a default trail


def child_bits(_: str) -> dict:
    """Bit equality of the torch variants with train.Adam, and state_dicts carried from one to the other."""
    import torch

    torch.set_num_threads(1)

    def run(impl: str, updates: range, params: list, opt=None, **kwargs):
        opt = opt or _optimiser(impl, params, 1e-3, **kwargs)
        for i in updates:
            _grads(params, 1000 + i)
            opt.step()
        return opt

    def same(a: list, b: list) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    def moments(opt) -> list:
        state = opt.state_dict()["state"]
        return [t for i in sorted(state) for t in (state[i]["exp_avg"], state[i]["exp_avg_sq"])]

    ours_params = list(_model().parameters())
    ours = run("train.Adam", range(200), ours_params)
    out: dict = {"torch": torch.__version__}
    for name, kwargs in (("default", {}), ("foreach", {"foreach": True})):
        params = list(_model().parameters())
        opt = run("torch.optim.Adam", range(200), params, **kwargs)
        out[name] = same(params, ours_params) and same(moments(opt), moments(ours))
    for first, second in (("train.Adam", "torch.optim.Adam"), ("torch.optim.Adam", "train.Adam")):
        params = list(_model().parameters())
        saved = run(first, range(100), params).state_dict()
        resumed = _optimiser(second, params, 1e-3)
        resumed.load_state_dict(saved)
        run(second, range(100, 200), params, opt=resumed)
        out[f"{first} -> {second}"] = same(params, ours_params) and same(moments(resumed), moments(ours))
    return out


# ---------------------------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------------------------

def run_child(*args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *args, "--out", out.name],
                       env=env, check=True, cwd=str(ROOT), stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())


def fmt_range(values: list, digits: int = 2) -> str:
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f}"


def main(argv: list) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300, help="timed step() calls per optimiser")
    ap.add_argument("--trail-steps", type=int, default=20)
    ap.add_argument("--child", nargs="*", default=None)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if args.child is not None:
        kind, impl, *rest = args.child
        result = {"first": lambda: child_first(impl), "trail": lambda: child_trail(impl, int(rest[0])),
                  "steps": lambda: child_steps(impl, int(rest[0]), rest[1] == "foreach"),
                  "bits": lambda: child_bits(impl)}[kind]()
        Path(args.out).write_text(json.dumps(result))
        return 0

    t_start, load0 = time.time(), os.getloadavg()[0]
    print("base model and warm-up ...", flush=True)
    run_child("trail", "train.Adam", "2")  # builds the default base model into the cache if it is not there
    first = {impl: [] for impl in IMPLS}
    trails = {impl: [] for impl in IMPLS}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds} ...", flush=True)
        for impl in (IMPLS if r % 2 == 0 else IMPLS[::-1]):
            first[impl].append(run_child("first", impl))
            trails[impl].append(run_child("trail", impl, str(args.trail_steps)))
    steps = {(impl, mode): run_child("steps", impl, str(args.steps), mode)
             for impl, mode in (("train.Adam", "default"), ("torch.optim.Adam", "default"),
                                ("torch.optim.Adam", "foreach"))}
    bits = run_child("bits", "-")
    minutes, load1 = (time.time() - t_start) / 60, os.getloadavg()[0]

    def col(impl: str, key: str, source: dict) -> list:
        return [row[key] for row in source[impl]]

    extra_first = [b - a for a, b in zip(col("train.Adam", "first", first), col("torch.optim.Adam", "first", first),
                                         strict=True)]
    extra_trail = [b - a for a, b in zip(col("train.Adam", "cpu", trails), col("torch.optim.Adam", "cpu", trails),
                                         strict=True)]
    same_trail = all(len({row[k] for impl in IMPLS for row in trails[impl]}) == 1 for k in ("journal", "checkpoint"))
    ours_step = steps[("train.Adam", "default")]
    shape = f"{ours_step['n_tensors']} tensors, {ours_step['n_params']:,} parameters"
    updates = ours_step["trail_updates"]
    per_trail = {mode: (steps[("torch.optim.Adam", mode)]["median_ms"] - ours_step["median_ms"]) * updates / 1000
                 for mode in ("default", "foreach")}
    first_median = statistics.median(extra_first)
    lines = [
        "# train.Adam against torch.optim.Adam in the embedded engine",
        "",
        f"Command: `python benchmarks/optimizer_bench.py --rounds {args.rounds} --steps {args.steps} "
        f"--trail-steps {args.trail_steps}`  ",
        f"One torch thread, CPU time (`time.process_time()`) of fresh child processes, the two optimisers alternating, "
        f"{args.rounds} round(s): figures are min / median. torch {bits['torch']}, the default TinyGPT ({shape}). "
        f"Load average (1 min) "
        f"before / after: {load0:.1f} / {load1:.1f} on {os.cpu_count()} cores; the benchmark took {minutes:.1f} min.",
        "",
        "| figure | train.Adam | torch.optim.Adam | difference |",
        "|---|---|---|---|",
        f"| first optimiser of a process (construct + first step, after a warm worker's imports), CPU-s "
        f"| {fmt_range(col('train.Adam', 'first', first), 3)} "
        f"| {fmt_range(col('torch.optim.Adam', 'first', first), 3)} "
        f"| {fmt_range(extra_first, 3)} |",
        f"| second optimiser of the same process (a warm worker's next trail), CPU-s "
        f"| {fmt_range(col('train.Adam', 'second', first), 4)} "
        f"| {fmt_range(col('torch.optim.Adam', 'second', first), 4)} | |",
        f"| torch._dynamo imported before / after the first optimiser "
        f"| {first['train.Adam'][0]['dynamo_before']} / {first['train.Adam'][0]['dynamo_after']} "
        f"| {first['torch.optim.Adam'][0]['dynamo_before']} / {first['torch.optim.Adam'][0]['dynamo_after']} | |",
        f"| a {args.trail_steps}-step trail in a fresh process (interpreter start to the end), CPU-s "
        f"| {fmt_range(col('train.Adam', 'cpu', trails))} | {fmt_range(col('torch.optim.Adam', 'cpu', trails))} "
        f"| {fmt_range(extra_trail)} |",
        f"| that trail's journal and checkpoint (weights, moments), SHA-256 "
        f"| {trails['train.Adam'][0]['journal']}, {trails['train.Adam'][0]['checkpoint']} "
        f"| {trails['torch.optim.Adam'][0]['journal']}, {trails['torch.optim.Adam'][0]['checkpoint']} "
        f"| {'identical in every round' if same_trail else 'DIFFERENT'} |",
        f"| one step(), median of {args.steps}, CPU-ms | {ours_step['median_ms']:.2f} "
        f"| {steps[('torch.optim.Adam', 'default')]['median_ms']:.2f} (default: one tensor at a time on CPU); "
        f"{steps[('torch.optim.Adam', 'foreach')]['median_ms']:.2f} (foreach=True) | |",
        f"| a default trail's {updates} optimiser steps (engine.steps × engine.ppo_n_minibatches), from the medians "
        f"above: extra CPU-s in a warm worker | | | {per_trail['default']:.2f} (default); "
        f"{per_trail['foreach']:.2f} (foreach=True) |",
        f"| the same trail in a process of its own (Slurm, backend.workers=process, `harness run`): extra CPU-s "
        f"| | | {per_trail['default'] + first_median:.2f} (default); {per_trail['foreach'] + first_median:.2f} "
        f"(foreach=True) |",
        "",
        "Bits after 200 updates with the same gradients (parameters and both moments, `torch.equal`):",
        "",
        f"- torch.optim.Adam (default) = train.Adam: {bits['default']}; torch.optim.Adam(foreach=True) = train.Adam: "
        f"{bits['foreach']}",
        f"- a train.Adam state_dict after 100 updates, loaded by torch.optim.Adam, 100 more = 200 without a break: "
        f"{bits['train.Adam -> torch.optim.Adam']}; and the other way round: {bits['torch.optim.Adam -> train.Adam']}",
        "",
        "Who pays the first optimiser: a warm local worker (the default, backend.workers=warm) once for all the trails "
        "it runs; a Ray worker process once for the tasks it runs; a trail in a process of its own once per trail: "
        "Slurm (a job per trail), backend.workers=process and `harness run`.",
    ]
    publish(lines, REPORT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
