"""The simulated clock's cost model: how fast a rollout worker generates, how long a trainer trains, and what a step
of either schedule costs in simulated seconds.

Rollout worker (one SGLang/vLLM server). Continuous batching decodes every running sequence in one forward pass, so
a server's token rate rises with the number of concurrent sequences s until the GPU saturates:

    r(s) = r_max · s / (s + s_half)

r_max (`engine.rollout_worker_tokens_per_s`) is the saturated rate; s_half (`engine.rollout_half_saturation`) the
concurrency at which a server reaches half of it; s_half = 0 is a constant rate r_max whatever the load (the model
before this one). A running group is G sequences (`engine.group_size`); with n groups on a worker each gets r(n·G)/n
tokens per second (processor sharing). The shape and s_half come from published throughput-vs-concurrency
measurements of vLLM and SGLang servers, fitted here by relative least squares (r_max, s_half):

- vLLM 0.16, Nemotron Nano 30B FP8 on 2 × B200, 2,048 in / 512 out, concurrency 1–1,024 (docs.vultr.com,
  inference-cookbook/cuda/optimization/concurrency-tuning, "Throughput Results"): s_half 91, r_max 20,076 tok/s;
- vLLM 0.17, Qwen3.5-4B on an RTX 4090, ~16 in / 128 out, concurrency 1–64 (github.com/aaronzhfeng/gpu-inference,
  benchmarks/rtx-4090.md at b764d49): s_half 68, r_max 6,056 tok/s (RMS relative error 5 %);
- vLLM, Mistral-7B-Instruct-v0.3 on an RTX 4090, 256 in / 128 out, concurrency 4–48 (mushfiqrahman.dev, "Part 1 —
  Full Concurrency Sweep"): s_half 36, r_max 2,065 tok/s (RMS relative error 0.5 %);
- SGLang, Qwen2.5-0.5B-Instruct on an RTX 4070 (github.com/Liangcheng-Cao/sglang-inference-benchmark at 8be8f11,
  README "Key Results"): 254 tok/s at concurrency 1, 1,548 at 8, far below saturation; the two points alone give
  s_half ≈ 21, inside the same range.
The default s_half = 64 concurrent sequences is the middle of the three vLLM fits (36–91). r_max's absolute value
only sets the simulated time unit: the default 2,400 tok/s keeps the default async trail (d2+d1, rollout 96: 384
sequences a worker, r = 2,057 tok/s) at the speed of the earlier constant-rate model (2,000 tok/s a worker).

Trainer (one of y data-parallel training workers): a batch of T tokens takes T / (y · `train_worker_tokens_per_s`)
seconds; nothing about it depends on concurrency. Both sides are charged the same tokens per sample: the prompt
(prefill, `prompt_len` tokens, one constant per trail) plus the generated tokens.

Two schedules use this model:
- async (staleness.AsyncSim): AReaL's, rollout and training overlap under the staleness rule;
- fixed lag (OneStepOffClock here): a synchronous one-step-off pipeline. Each step generates one batch of B groups
  (at most `rollout` of them running at once, each new group on the least-loaded worker) while the trainer trains
  on the previous one, and weights are synchronised at the step boundary: a step takes max(generation, training).
  With lag 0 nothing overlaps (the batch must come from the current weights): generation + training. A lag above 1
  changes which weights sampled the batch, not the cost, since each side still does one batch a step. Both sides
  are charged for the batch the step trains on (in steady state the next batch costs the same, up to its lengths).

What each step logs (both schedules, over the step's simulated interval, from the end of the previous update to the
end of this one): `sim/time_s` (simulated seconds since the trail started), `sim/step_s`, `sim/rollout_busy_frac`
(mean over workers of the share of the interval a worker had at least one running group),
`sim/rollout_util` (mean over workers of r(s)/r_max: how full their batches were), `sim/trainer_idle_frac` (share of
the interval the trainer waited for data), `sim/groups_in_flight` (time-averaged running groups, all workers) and
`sim/samples_per_s` (samples trained so far ÷ `sim/time_s`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

from harness.store.metrics import (
    SIM_GROUPS_IN_FLIGHT,
    SIM_ROLLOUT_BUSY_FRAC,
    SIM_ROLLOUT_UTIL,
    SIM_SAMPLES_PER_S,
    SIM_STEP_S,
    SIM_TIME_S,
    SIM_TRAINER_IDLE_FRAC,
)

TIME_EPS_S = 1e-9
DEFAULT_MAX_TOKENS_PER_S = 2400.0
DEFAULT_HALF_SATURATION = 64.0


@dataclass(frozen=True)
class WorkerModel:
    """A rollout worker's token rate as a function of its concurrent sequences (see the module docstring)."""

    max_tokens_per_s: float
    half_saturation: float = 0.0
    group_size: int = 1

    def rate(self, sequences: float) -> float:
        """r(s) = r_max · s / (s + s_half); 0 with nothing running."""
        if sequences <= 0:
            return 0.0
        return self.max_tokens_per_s * sequences / (sequences + self.half_saturation)

    def group_rate(self, groups: int) -> float:
        """Tokens per second each of `groups` running groups gets on one worker."""
        return self.rate(groups * self.group_size) / groups if groups > 0 else 0.0

    def utilisation(self, groups: int) -> float:
        """r(s) / r_max for `groups` running groups: how full the worker's batch is."""
        return self.rate(groups * self.group_size) / self.max_tokens_per_s


def train_seconds(tokens: float, train_workers: int, tokens_per_s: float) -> float:
    """The trainer's cost: tokens / (y · rate)."""
    return tokens / (train_workers * tokens_per_s)


def least_loaded(running: Sequence[Dict[str, Any]], workers: int) -> int:
    """The worker a new group goes to: the one with the fewest running groups, the lowest index on a tie."""
    load = [0] * workers
    for r in running:
        load[r["worker"]] += 1
    return min(range(workers), key=lambda w: (load[w], w))


def group_rates(running: Sequence[Dict[str, Any]], workers: int, model: WorkerModel) -> List[float]:
    """The token rate of each running group ({"worker", "left"}), in order."""
    counts = [0] * workers
    for r in running:
        counts[r["worker"]] += 1
    return [model.group_rate(counts[r["worker"]]) for r in running]


def next_finish(running: Sequence[Dict[str, Any]], workers: int, model: WorkerModel) -> float:
    """Seconds until the next running group finishes at the current rates (inf with nothing running)."""
    rates = group_rates(running, workers, model)
    return min((r["left"] / rate for r, rate in zip(running, rates, strict=True)), default=float("inf"))


class Window:
    """What the clock accumulates over one step's interval: worker busy time, batch fullness, groups in flight."""

    def __init__(self, workers: int, model: WorkerModel):
        self.workers, self.model = workers, model
        self.busy = 0.0        # Σ over workers of the seconds they had a running group
        self.util = 0.0        # Σ over workers of ∫ r(s)/r_max dt
        self.in_flight = 0.0   # ∫ running groups dt

    def add(self, running: Sequence[Dict[str, Any]], dt: float) -> None:
        counts = [0] * self.workers
        for r in running:
            counts[r["worker"]] += 1
        self.busy += dt * sum(1 for c in counts if c)
        self.util += dt * sum(self.model.utilisation(c) for c in counts)
        self.in_flight += dt * len(running)

    def stats(self, step_s: float, idle_s: float, now: float, samples: int) -> Dict[str, float]:
        """The step's clock metrics (see the module docstring)."""
        span = step_s if step_s > 0 else float("nan")
        return {SIM_TIME_S: now, SIM_STEP_S: step_s,
                SIM_ROLLOUT_BUSY_FRAC: self.busy / (self.workers * span),
                SIM_ROLLOUT_UTIL: self.util / (self.workers * span),
                SIM_TRAINER_IDLE_FRAC: idle_s / span,
                SIM_GROUPS_IN_FLIGHT: self.in_flight / span,
                SIM_SAMPLES_PER_S: samples / now if now > 0 else float("nan")}


def advance(running: List[Dict[str, Any]], workers: int, model: WorkerModel, dt: float,
            window: Window | None = None) -> List[Dict[str, Any]]:
    """Run every group for `dt` seconds at its current rate (dt ≤ the next finish); remove and return the finished
    ones. A group is finished when its remaining time fits in dt within a time tolerance: once the clock is large,
    now + (a tiny remaining time) rounds back to now and a token-count tolerance alone never ends the group."""
    if window is not None:
        window.add(running, dt)
    for r, rate in zip(running, group_rates(running, workers, model), strict=True):
        r["left"] = 0.0 if r["left"] / rate <= dt + TIME_EPS_S else r["left"] - dt * rate
    finished = [r for r in running if r["left"] <= 0.0]
    for r in finished:
        running.remove(r)
    return finished


def generation_seconds(tokens: Sequence[float], workers: int, cap: int, model: WorkerModel,
                       window: Window | None = None) -> float:
    """Seconds to generate groups of these token counts from an empty pool: at most `cap` running at once, each new
    group (in order) on the least-loaded worker as soon as a slot frees."""
    queue = list(tokens)
    running: List[Dict[str, Any]] = []
    elapsed = 0.0
    while queue or running:
        while queue and len(running) < cap:
            running.append({"worker": least_loaded(running, workers), "left": queue.pop(0)})
        dt = next_finish(running, workers, model)
        advance(running, workers, model, dt, window)
        elapsed += dt
    return elapsed


class OneStepOffClock:
    """The fixed-lag schedule's clock: a synchronous one-step-off pipeline on the same worker model (module
    docstring). Only the clock: which weights sampled a batch stays FixedLag's business."""

    def __init__(self, stale: int, rollout_workers: int, train_workers: int, max_concurrent: int, group_size: int,
                 model: WorkerModel, train_speed: float):
        self.overlap = stale >= 1
        self.x, self.y, self.cap, self.g = rollout_workers, train_workers, max_concurrent, group_size
        self.model, self.train_speed = model, train_speed
        self.now = 0.0
        self.samples = 0
        self.prompt_len = 0

    def group_tokens(self, n_tokens: Sequence[int]) -> List[float]:
        return [float(n + self.prompt_len * self.g) for n in n_tokens]

    def step(self, group_tokens: Sequence[float]) -> Dict[str, float]:
        """Charge one step that trains on groups of these token counts; returns its clock metrics."""
        window = Window(self.x, self.model)
        generation = generation_seconds(group_tokens, self.x, self.cap, self.model, window)
        training = train_seconds(sum(group_tokens), self.y, self.train_speed)
        step_s = max(generation, training) if self.overlap else generation + training
        self.now += step_s
        self.samples += len(group_tokens) * self.g
        return window.stats(step_s, step_s - training, self.now, self.samples)

    FIELDS = ("now", "samples", "prompt_len")

    def state(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}

    def load(self, state: Dict[str, Any]) -> None:
        for k in self.FIELDS:
            if k in state:
                setattr(self, k, state[k])


__all__ = ["DEFAULT_HALF_SATURATION", "DEFAULT_MAX_TOKENS_PER_S", "OneStepOffClock", "Window", "WorkerModel",
           "advance", "generation_seconds", "group_rates", "least_loaded", "next_finish", "train_seconds"]
