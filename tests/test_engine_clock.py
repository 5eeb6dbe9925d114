"""The simulated clock's cost model (clock.py): a batching rollout worker, an explicit trainer cost, the one-step-off
schedule of fixed lag, and the clock metrics every step of both modes logs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_engine_run import make_run_dir
from tiny_trail import tiny_trail

from harness.backends.runner import run_trail_dir
from harness.engines.embedded.clock import (
    DEFAULT_HALF_SATURATION,
    DEFAULT_MAX_TOKENS_PER_S,
    OneStepOffClock,
    WorkerModel,
    generation_seconds,
    train_seconds,
)
from harness.engines.embedded.config import EmbeddedEngineConfig
from harness.engines.embedded.engine import make_source
from harness.engines.embedded.rollout import Batch
from harness.engines.embedded.staleness import AsyncSim
from harness.spec.compose import compose_trail
from harness.store.journal import read_records

SIM_KEYS = {"sim/time_s", "sim/step_s", "sim/rollout_busy_frac", "sim/rollout_util", "sim/trainer_idle_frac",
            "sim/groups_in_flight", "sim/samples_per_s"}

# The published throughput-vs-concurrency measurements clock.py cites (concurrent sequences, output tokens/s).
PUBLISHED = {
    "vLLM 0.16, Nemotron Nano 30B FP8, 2 x B200": ([1, 8, 16, 32, 64, 128, 256, 512, 1024],
                                                    [277, 1881, 3455, 3798, 8120, 11556, 15552, 18746, 18829]),
    "vLLM 0.17, Qwen3.5-4B, RTX 4090": ([1, 2, 8, 16, 32, 64], [97.5, 162, 635, 1150, 1955, 2954]),
    "vLLM, Mistral-7B, RTX 4090": ([4, 8, 16, 32, 48], [210, 377, 644, 975, 1190]),
}


def test_worker_rate_rises_with_concurrency_to_saturation() -> None:
    model = WorkerModel(1000.0, 64.0, group_size=8)
    s = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 10 ** 6], dtype=float)
    r = np.array([model.rate(x) for x in s])
    assert model.rate(0) == 0.0
    assert (np.diff(r) > 0).all()                        # more concurrency, more tokens per second
    assert (np.diff(r / s) < 0).all()                    # at a falling rate per sequence (batching's gain flattens)
    assert model.rate(64) == pytest.approx(500.0)        # s_half: half the saturated rate
    assert model.rate(10 ** 6) == pytest.approx(1000.0, rel=1e-4) and r.max() < 1000.0
    # a group is G sequences; each of n groups on a worker gets r(nG)/n
    assert model.group_rate(3) == pytest.approx(model.rate(24) / 3)
    assert model.utilisation(8) == pytest.approx(model.rate(64) / 1000.0) == pytest.approx(0.5)


def test_half_saturation_zero_is_the_constant_rate_model() -> None:
    model = WorkerModel(1000.0, 0.0, group_size=8)
    assert [model.rate(s) for s in (1, 8, 500)] == [1000.0, 1000.0, 1000.0]
    assert model.group_rate(4) == 250.0


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_default_half_saturation_describes_the_cited_measurements(name) -> None:
    """With s_half fixed at the default, each cited curve is fitted by its best r_max (least squares in relative
    error, closed form) to within 25 % RMS: the default shape is the measured one, not a free choice."""
    s, measured = (np.asarray(v, dtype=float) for v in PUBLISHED[name])
    shape = s / (s + DEFAULT_HALF_SATURATION)
    # minimise Σ ((r_max·shape − m)/m)²  ⇒  r_max = Σ(shape/m) / Σ(shape²/m²)
    r_max = float(np.sum(shape / measured) / np.sum(shape ** 2 / measured ** 2))
    rms = math.sqrt(float(np.mean((r_max * shape / measured - 1.0) ** 2)))
    assert rms < 0.25, f"{name}: RMS relative error {rms:.2f} at s_half {DEFAULT_HALF_SATURATION}"


def test_config_defaults_are_the_clock_defaults() -> None:
    eng = EmbeddedEngineConfig()
    assert (eng.rollout_worker_tokens_per_s, eng.rollout_half_saturation) == (DEFAULT_MAX_TOKENS_PER_S,
                                                                              DEFAULT_HALF_SATURATION)


@pytest.mark.parametrize("mode", ["fixed", "async"])
def test_the_trail_config_reaches_the_clock(mode) -> None:
    cfg = compose_trail(tiny_trail(f"engine.staleness_mode={mode}", "alloc=d3+d2", "rollout=7", "stale=1",
                                   "engine.rollout_half_saturation=12.5", "engine.rollout_worker_tokens_per_s=900",
                                   "engine.train_worker_tokens_per_s=300"))
    source = make_source(cfg)
    clock = source.clock if mode == "fixed" else source
    assert clock.model == WorkerModel(900.0, 12.5, int(cfg.engine.group_size))
    assert (clock.x, clock.y, clock.cap, clock.train_speed) == (3, 2, 7, 300.0)


def test_batching_makes_concurrent_generation_faster_and_a_constant_rate_does_not() -> None:
    tokens = [80.0] * 8
    batching = WorkerModel(100.0, 16.0, group_size=4)
    one_at_a_time = generation_seconds(tokens, workers=1, cap=1, model=batching)
    all_at_once = generation_seconds(tokens, workers=1, cap=8, model=batching)
    # cap 1: each group alone, 4 sequences at r(4) = 100·4/20 = 20 tok/s → 8 × 80/20 = 32 s
    assert one_at_a_time == pytest.approx(32.0)
    # cap 8: 32 sequences at r(32) = 100·32/48 tok/s for 640 tokens → 9.6 s
    assert all_at_once == pytest.approx(640.0 / (100.0 * 32 / 48))
    constant = WorkerModel(100.0, 0.0, group_size=4)
    assert generation_seconds(tokens, 1, 1, constant) == pytest.approx(generation_seconds(tokens, 1, 8, constant))
    # two workers split the groups: each serves 4, faster than one worker serving 8 under batching
    assert generation_seconds(tokens, 2, 8, batching) < all_at_once


def test_trainer_cost_is_tokens_over_workers_times_rate() -> None:
    assert train_seconds(1200.0, 3, 100.0) == pytest.approx(4.0)


def test_one_step_off_overlaps_generation_with_training_and_lag_zero_does_not() -> None:
    model = WorkerModel(100.0, 0.0, group_size=1)
    # two groups of 100 tokens on one worker: generation 2 s; training 200 / (1 · 50) = 4 s
    overlap = OneStepOffClock(1, 1, 1, 8, 1, model, 50.0)
    stats = overlap.step([100.0, 100.0])
    assert stats["sim/step_s"] == pytest.approx(4.0) and stats["sim/time_s"] == pytest.approx(4.0)
    assert stats["sim/trainer_idle_frac"] == pytest.approx(0.0)
    assert stats["sim/rollout_busy_frac"] == pytest.approx(0.5)
    assert stats["sim/groups_in_flight"] == pytest.approx(2 * 2.0 / 4.0)
    assert stats["sim/samples_per_s"] == pytest.approx(2 / 4.0)
    assert overlap.step([100.0, 100.0])["sim/time_s"] == pytest.approx(8.0)
    serial = OneStepOffClock(0, 1, 1, 8, 1, model, 50.0)
    stats = serial.step([100.0, 100.0])
    assert stats["sim/step_s"] == pytest.approx(6.0)
    assert stats["sim/trainer_idle_frac"] == pytest.approx(2.0 / 6.0)
    assert stats["sim/rollout_busy_frac"] == pytest.approx(2.0 / 6.0)


def _fake_generate(tokens: int = 4, group: int = 2):
    def generate(indices, version, use_base):
        n, width = len(indices) * group, 8
        mask = torch.zeros(n, width, dtype=torch.bool)
        mask[:, :tokens] = True
        return Batch(list(indices), torch.zeros(n, width, dtype=torch.long), torch.zeros(n, width), mask,
                     torch.zeros(n), [version] * len(indices))
    return generate


def _async_throughput(cap: int, half_saturation: float, warm: int = 40, steps: int = 80) -> float:
    """Steady-state samples per simulated second of a generation-bound async run (slow workers, fast trainer, η not
    binding), measured after `warm` steps: a deeper pipeline holds more work in flight at any moment, which a
    count from time 0 would charge to it."""
    sim = AsyncSim(1000, 1, 1, cap, 4, 2, 100.0, 1e6, half_saturation=half_saturation)
    sim.prompt_len = 2
    gen = _fake_generate()
    for t in range(warm):
        sim.next_batch(t, gen)
    start = sim.now
    for t in range(warm, steps):
        sim.next_batch(t, gen)
    return (steps - warm) * 4 * 2 / (sim.now - start)


def test_async_throughput_rises_with_the_rollout_cap_only_when_workers_batch() -> None:
    batching = [_async_throughput(cap, 16.0) for cap in (2, 4, 8, 16)]
    assert all(b > a * 1.1 for a, b in zip(batching, batching[1:], strict=False)), batching
    constant = [_async_throughput(cap, 0.0) for cap in (2, 4, 8, 16)]
    assert max(constant) == pytest.approx(min(constant), rel=0.01), constant


def test_async_clock_metrics_say_which_side_waits() -> None:
    gen = _fake_generate()
    # a slow trainer: the workers run ahead to the bound and wait; the trainer never waits after its first batch
    slow_trainer = AsyncSim(2, 2, 1, 64, 4, 2, 1e4, 1.0, half_saturation=16.0)
    slow_trainer.prompt_len = 2
    for t in range(10):
        slow_trainer.next_batch(t, gen)
        stats = slow_trainer.stats
        assert set(stats) == SIM_KEYS
        assert 0.0 <= stats["sim/rollout_busy_frac"] <= 1.0 and 0.0 <= stats["sim/trainer_idle_frac"] <= 1.0
    assert stats["sim/trainer_idle_frac"] < 0.01 and stats["sim/rollout_busy_frac"] < 0.05
    # slow workers: the trainer waits most of each step, the workers are always busy
    slow_workers = AsyncSim(1000, 2, 1, 4, 4, 2, 10.0, 1e6, half_saturation=16.0)
    slow_workers.prompt_len = 2
    for t in range(10):
        slow_workers.next_batch(t, gen)
    stats = slow_workers.stats
    assert stats["sim/trainer_idle_frac"] > 0.99 and stats["sim/rollout_busy_frac"] > 0.99
    assert 0.0 < stats["sim/rollout_util"] < 1.0
    assert stats["sim/time_s"] == pytest.approx(slow_workers.now)
    assert stats["sim/samples_per_s"] == pytest.approx(10 * 4 * 2 / slow_workers.now)


@pytest.mark.parametrize("mode", ["fixed", "async"])
def test_every_training_step_logs_the_clock(tmp_path, mode) -> None:
    run_dir = make_run_dir(tmp_path, mode, tiny_trail(f"engine.staleness_mode={mode}", "stale=2", "alloc=d2+d1",
                                                      "rollout=6", "engine.steps=8"))
    assert run_trail_dir(run_dir) == "done"
    records = [r for r in read_records(run_dir) if r["step"] > 0]
    assert len(records) == 8
    times = [r["sim/time_s"] for r in records]
    assert all(b > a > 0 for a, b in zip(times, times[1:], strict=False))
    for r in records:
        assert SIM_KEYS | {"staleness/mean", "staleness/max", "staleness/p95"} <= set(r)
        assert r["staleness/mean"] <= r["staleness/p95"] <= r["staleness/max"]
