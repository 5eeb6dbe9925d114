"""Staleness sources on their own: the fixed lag is exact, and AReaL's rule never lets staleness exceed η."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.engines.embedded.rollout import Batch
from harness.engines.embedded.staleness import AsyncSim, FixedLag


def _fake_generate(log: list, group: int = 2, tokens_of=lambda i: 3):
    """A generator of placeholder groups (this tests only the bookkeeping; the engine tests sample for real)."""
    def generate(indices, version, use_base):
        log.append((list(indices), version, use_base))
        n = len(indices) * group
        width = 8
        mask = torch.zeros(n, width, dtype=torch.bool)
        for j, i in enumerate(indices):
            mask[j * group:(j + 1) * group, :tokens_of(i)] = True
        return Batch(list(indices), torch.zeros(n, width, dtype=torch.long), torch.zeros(n, width), mask,
                     torch.zeros(n), [version] * len(indices))
    return generate


def test_fixed_lag_trains_step_t_on_version_t_minus_stale() -> None:
    steps, stale, b = 12, 4, 3
    log: list = []
    src = FixedLag(stale, steps, b)
    for t in range(steps):
        batch = src.next_batch(t, _fake_generate(log))
        assert batch.versions == [max(0, t - stale)] * b
    # the first `stale` steps used base-model rollouts; then nothing is generated that would never be consumed
    assert [use_base for _, _, use_base in log].count(True) == stale
    assert len(log) == steps
    # every prompt of the stream is used once, in order
    assert sum((idx for idx, _, _ in log), []) == list(range(steps * b))


def test_fixed_lag_zero_is_on_policy() -> None:
    log: list = []
    src = FixedLag(0, 5, 2)
    assert [src.next_batch(t, _fake_generate(log)).versions for t in range(5)] == [[t, t] for t in range(5)]


def _run_async(eta, x, y, cap, b, speeds, steps=12):
    log: list = []
    sim = AsyncSim(eta, x, y, cap, b, 2, speeds[0], speeds[1])
    sim.prompt_len = 5
    gen = _fake_generate(log, tokens_of=lambda i: 1 + (i * 7919) % 8)   # varied lengths, deterministic
    worst = []
    for t in range(steps):
        batch = sim.next_batch(t, gen)
        worst.append(max(t - v for v in batch.versions))
        assert len(batch.versions) == b
    return worst, log


@settings(max_examples=40, deadline=None)
@given(eta=st.integers(0, 6), x=st.integers(1, 3), y=st.integers(1, 3), cap=st.integers(1, 40), b=st.integers(1, 6),
       r_speed=st.sampled_from([50.0, 500.0, 5000.0]), t_speed=st.sampled_from([50.0, 500.0, 5000.0]))
def test_async_staleness_never_exceeds_eta(eta, x, y, cap, b, r_speed, t_speed) -> None:
    worst, _ = _run_async(eta, x, y, cap, b, (r_speed, t_speed))
    assert max(worst) <= eta


def test_async_staleness_is_realised_when_generation_outpaces_training() -> None:
    # fast rollout workers, slow trainer, generous cap: the generator runs ahead up to the bound
    worst, _ = _run_async(4, 2, 1, 1000, 4, (1e5, 10.0), steps=20)
    assert max(worst) == 4
    # a slow generator, a fast trainer and a cap of one batch keep it well below the bound
    worst_slow, _ = _run_async(4, 1, 2, 4, 4, (10.0, 1e5), steps=20)
    assert max(worst_slow) < max(worst)


def test_async_concurrency_cap_limits_in_flight_groups() -> None:
    _, log = _run_async(8, 2, 1, 3, 4, (100.0, 1000.0), steps=6)
    assert max(len(idx) for idx, _, _ in log) <= 3


def test_async_state_round_trips() -> None:
    log_a: list = []
    a = AsyncSim(2, 2, 1, 10, 3, 2, 300.0, 500.0)
    gen = _fake_generate(log_a, tokens_of=lambda i: 1 + i % 5)
    for t in range(4):
        a.next_batch(t, gen)
    b = AsyncSim(2, 2, 1, 10, 3, 2, 300.0, 500.0)
    b.load(a.state())
    va = [a.next_batch(t, gen).versions for t in range(4, 8)]
    vb = [b.next_batch(t, _fake_generate([], tokens_of=lambda i: 1 + i % 5)).versions for t in range(4, 8)]
    assert va == vb
