"""Staleness sources on their own: the fixed lag is exact; AReaL's rule bounds staleness by η unless groups are
consumed out of admission order (the trainer takes the oldest *finished* groups), and then only."""

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


def _run_async(eta, x, y, cap, b, speeds, steps=12, tokens_of=lambda i: 1 + (i * 7919) % 8):
    """Run the simulated clock; returns the worst staleness of each step, the generation log and the admission
    indices of each consumed batch, in consumption order."""
    log: list = []
    sim = AsyncSim(eta, x, y, cap, b, 2, speeds[0], speeds[1])
    sim.prompt_len = 5
    gen = _fake_generate(log, tokens_of=tokens_of)   # varied lengths by default, deterministic
    worst, taken = [], []
    for t in range(steps):
        batch = sim.next_batch(t, gen)
        worst.append(max(t - v for v in batch.versions))
        taken.append(batch.prompt_idx)
        assert len(batch.versions) == b
    return worst, log, taken


def _out_of_order(taken) -> bool:
    """Some group was consumed in a later batch than a group admitted after it."""
    return any(max(earlier) > min(later) for i, earlier in enumerate(taken) for later in taken[i + 1:])


_speeds = st.sampled_from([50.0, 500.0, 5000.0])


@settings(max_examples=60, deadline=None)
@given(eta=st.integers(0, 6), x=st.integers(1, 3), y=st.integers(1, 3), cap=st.integers(1, 40), b=st.integers(1, 6),
       r_speed=_speeds, t_speed=_speeds, varied=st.booleans())
def test_async_staleness_exceeds_eta_only_when_consumed_out_of_order(eta, x, y, cap, b, r_speed, t_speed,
                                                                      varied) -> None:
    lengths = (lambda i: 1 + (i * 7919) % 8) if varied else (lambda i: 4)
    worst, _, taken = _run_async(eta, x, y, cap, b, (r_speed, t_speed), tokens_of=lengths)
    if max(worst) > eta:
        assert _out_of_order(taken)
    if not _out_of_order(taken):
        assert max(worst) <= eta


@settings(max_examples=40, deadline=None)
@given(eta=st.integers(0, 6), cap=st.integers(1, 40), b=st.integers(1, 6), r_speed=_speeds, t_speed=_speeds)
def test_async_one_worker_equal_lengths_never_exceeds_eta(eta, cap, b, r_speed, t_speed) -> None:
    # one worker shares its speed among its groups, so equal groups finish in admission order: the bound holds
    worst, _, taken = _run_async(eta, 1, 1, cap, b, (r_speed, t_speed), tokens_of=lambda i: 4)
    assert not _out_of_order(taken) and max(worst) <= eta


def test_async_oldest_finished_first_lets_a_slow_group_exceed_eta() -> None:
    # η = 1, a slow generator, varied lengths: a long old group is passed over by shorter newer ones and is consumed
    # two versions after it was sampled — what AReaL's trainer does, since it takes the oldest *finished* groups
    worst, _, taken = _run_async(1, 1, 1, 4, 2, (50.0, 5000.0), steps=20)
    assert max(worst) == 2 and _out_of_order(taken)
    # the same configuration with equal lengths stays within η
    worst_equal, _, _ = _run_async(1, 1, 1, 4, 2, (50.0, 5000.0), steps=20, tokens_of=lambda i: 4)
    assert max(worst_equal) <= 1


def test_async_staleness_is_realised_when_generation_outpaces_training() -> None:
    # fast rollout workers, slow trainer, generous cap: the generator runs ahead up to the bound
    worst, _, _ = _run_async(4, 2, 1, 1000, 4, (1e5, 10.0), steps=20, tokens_of=lambda i: 4)
    assert max(worst) == 4
    # a slow generator, a fast trainer and a cap of one batch keep it well below the bound
    worst_slow, _, _ = _run_async(4, 1, 2, 4, 4, (10.0, 1e5), steps=20, tokens_of=lambda i: 4)
    assert max(worst_slow) < max(worst)


def test_async_concurrency_cap_limits_in_flight_groups() -> None:
    _, log, _ = _run_async(8, 2, 1, 3, 4, (100.0, 1000.0), steps=6)
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
