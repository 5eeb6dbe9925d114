"""The embedded engine end to end on a tiny model: exact lag, on-policy ratios, divergence, SIGKILL + resume."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_trail import tiny_trail

from harness.backends.runner import run_trail_dir
from harness.engines.embedded import engine as engine_mod
from harness.engines.embedded import train as train_mod
from harness.spec.compose import compose_trail
from harness.store.journal import read_records
from harness.store.rundir import read_status, save_config


def make_run_dir(tmp_path: Path, name: str, overrides: list) -> Path:
    run_dir = tmp_path / name
    save_config(run_dir, compose_trail(overrides), overrides)
    return run_dir


def training_records(run_dir: Path) -> list:
    """The journal's records of training steps (step 0 is the base model's eval)."""
    return [r for r in read_records(run_dir) if r["step"] > 0]


def weights_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for p in model.state_dict().values():
        h.update(p.detach().numpy().tobytes())
    return h.hexdigest()


def test_fixed_lag_really_trains_step_t_on_samples_of_version_t_minus_stale(tmp_path, monkeypatch) -> None:
    stale = 3
    generated: dict = {}      # first prompt index of a batch -> hash of the weights that sampled it
    at_update: list = []      # per step: hash of the weights being updated, first prompt index of its batch
    real_generate, real_update = engine_mod.generate, train_mod.Trainer.update

    def spy_generate(policy, problems, indices, *args, **kw):
        generated[indices[0]] = weights_hash(policy)
        return real_generate(policy, problems, indices, *args, **kw)

    def spy_update(self, batch):
        at_update.append((weights_hash(self.policy), batch.prompt_idx[0]))
        return real_update(self, batch)

    monkeypatch.setattr(engine_mod, "generate", spy_generate)
    monkeypatch.setattr(train_mod.Trainer, "update", spy_update)
    run_dir = make_run_dir(tmp_path, "lag", tiny_trail(f"stale={stale}", "engine.steps=8"))
    assert run_trail_dir(run_dir) == "done"
    base_hash = at_update[0][0]
    for t, (_, first_prompt) in enumerate(at_update):
        version = max(0, t - stale)
        # the batch step t trains on was sampled by exactly the weights that step `version` started from
        assert generated[first_prompt] == (at_update[version][0] if t >= stale else base_hash)
    base, *records = read_records(run_dir)
    assert [r["staleness/max"] for r in records] == [min(t, stale) for t in range(8)]
    assert [r["train/version"] for r in records] == list(range(1, 9))
    # step 0 states where RL started: the base model's greedy and sampled eval, the first point of the eval curves
    assert base["step"] == 0 and set(base) == {"step", "time", "eval/reward", "eval/reward_sampled", "base/reward",
                                               "base/reward_sampled"}
    assert 0.0 <= base["eval/reward"] == base["base/reward"] <= 1.0
    assert 0.0 <= base["eval/reward_sampled"] == base["base/reward_sampled"] <= 1.0
    assert not any(k.startswith("base/") for r in records for k in r)


@pytest.mark.parametrize("algo", ["grpo", "m2po", "m2po algo.variant=areal", "grpo algo.variant=decoupled"])
def test_on_policy_ratios_are_one_and_nothing_is_masked_or_clipped(tmp_path, algo) -> None:
    name, *variant = algo.split()
    run_dir = make_run_dir(tmp_path, "onpolicy", tiny_trail("stale=0", f"algo={name}", *variant, "engine.steps=4"))
    assert run_trail_dir(run_dir) == "done"
    for r in training_records(run_dir):
        assert r["staleness/max"] == 0
        assert r["train/is_ratio_mean"] == pytest.approx(1.0, abs=1e-4)
        assert r["train/approx_kl"] == pytest.approx(0.0, abs=1e-6)
        assert r["train/clip_frac"] == 0.0
        assert r["m2po/masked_frac"] == 0.0


def test_async_trail_records_staleness_within_eta(tmp_path) -> None:
    run_dir = make_run_dir(tmp_path, "async", tiny_trail("engine.staleness_mode=async", "stale=2", "alloc=d2+d1",
                                                          "rollout=12", "engine.train_worker_tokens_per_s=50",
                                                          "engine.steps=8"))
    assert run_trail_dir(run_dir) == "done"
    maxima = [r["staleness/max"] for r in training_records(run_dir)]
    assert max(maxima) <= 2 and max(maxima) > 0


def test_absurd_learning_rate_ends_diverged_with_metrics_kept_fake_reward(tmp_path, monkeypatch) -> None:
    # the tiny untrained base model never answers right, so every advantage would be 0 and no lr could move it:
    # a fake reward (1 when a sample's first token has an even id) gives the updates something to push on
    from harness.engines.embedded import rollout
    from harness.engines.embedded.model import STOI

    monkeypatch.setattr(rollout, "reward", lambda text, problem: float(bool(text) and STOI[text[0]] % 2 == 0))
    run_dir = make_run_dir(tmp_path, "nan", tiny_trail("engine.lr=1e35", "engine.steps=8", "algo=is"))
    assert run_trail_dir(run_dir) == "diverged"
    status = read_status(run_dir)
    records = read_records(run_dir)
    assert status["step"] == records[-1]["step"] < 8 and "non-finite" in status["reason"]
    assert [r["step"] for r in records] == list(range(0, status["step"] + 1))  # every step up to it is kept


def _curves(run_dir: Path) -> list:
    return [{k: v for k, v in r.items() if k != "time" and not k.startswith("perf/")} for r in read_records(run_dir)]


def test_sigkill_and_resume_gives_the_same_curves(tmp_path) -> None:
    overrides = tiny_trail("stale=2", "engine.staleness_mode=fixed", "engine.steps=24", "engine.checkpoint_every=6",
                     "algo=m2po")
    reference = make_run_dir(tmp_path, "ref", overrides)
    assert run_trail_dir(reference) == "done"
    killed = make_run_dir(tmp_path, "killed", overrides)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "harness.backends.worker", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoint" / "state.pt"
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    while len(read_records(killed)) < 8 and proc.poll() is None:  # run past the checkpoint: steps resume must drop
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the trail never checkpointed"
    written = len(read_records(killed))
    assert 6 < written < 24, f"kill came too late to test anything ({written} steps written)"
    assert run_trail_dir(killed) == "done"  # resumed here, as a new worker process would (harness.backends.worker)
    assert [r["step"] for r in read_records(killed)] == list(range(0, 25))  # the base model's eval kept, once
    assert _curves(killed) == _curves(reference)


def test_async_trail_crashed_mid_run_resumes_to_the_same_curves(tmp_path, monkeypatch) -> None:
    """The async clock's state (in-flight groups, finished groups, counters) survives a checkpoint exactly.
    In-process: a crash injected at step 15 (after the step-12 checkpoint) stands in for the kill."""
    overrides = tiny_trail("stale=3", "engine.staleness_mode=async", "rollout=10", "engine.steps=24",
                     "engine.checkpoint_every=6", "engine.train_worker_tokens_per_s=200", "algo=m2po")
    reference = make_run_dir(tmp_path, "ref", overrides)
    assert run_trail_dir(reference) == "done"
    assert max(r["staleness/max"] for r in training_records(reference)) > 0
    crashed = make_run_dir(tmp_path, "crashed", overrides)
    real_update, calls = train_mod.Trainer.update, [0]

    def crash_at_15(self, batch):
        calls[0] += 1
        if calls[0] == 15:
            raise RuntimeError("injected crash")
        return real_update(self, batch)

    monkeypatch.setattr(train_mod.Trainer, "update", crash_at_15)
    assert run_trail_dir(crashed) == "failed"
    assert len(training_records(crashed)) == 14
    monkeypatch.setattr(train_mod.Trainer, "update", real_update)
    assert run_trail_dir(crashed) == "done"
    assert _curves(crashed) == _curves(reference)


def test_a_trail_restarted_before_its_first_checkpoint_logs_the_base_eval_once(tmp_path, monkeypatch) -> None:
    """No checkpoint yet: the rerun starts from scratch, writes step 0 again and the journal drops what the crashed
    attempt wrote from step 0 on, so every step, the base model's eval included, is there exactly once."""
    overrides = tiny_trail("stale=2", "engine.steps=6", "engine.checkpoint_every=3")
    reference = make_run_dir(tmp_path, "ref", overrides)
    assert run_trail_dir(reference) == "done"
    crashed = make_run_dir(tmp_path, "crashed", overrides)
    real_update, calls = train_mod.Trainer.update, [0]

    def crash_at_2(self, batch):
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("injected crash")
        return real_update(self, batch)

    monkeypatch.setattr(train_mod.Trainer, "update", crash_at_2)
    assert run_trail_dir(crashed) == "failed"
    assert [r["step"] for r in read_records(crashed)] == [0, 1]
    assert not (crashed / "checkpoint").exists()
    monkeypatch.setattr(train_mod.Trainer, "update", real_update)
    assert run_trail_dir(crashed) == "done"
    assert [r["step"] for r in read_records(crashed)] == list(range(0, 7))
    assert _curves(crashed) == _curves(reference)
