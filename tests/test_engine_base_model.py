"""The base model cache: built once, reused by every trail, safe when several trails start at the same moment."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import torch

from harness.engines.embedded import base_model
from harness.spec.compose import compose_trail


def _tiny_engine(cache: Path, *extra: str):
    return compose_trail(["tracking=none", "engine.n_layer=1", "engine.n_embd=16", "engine.n_head=2",
                          "engine.base_max_steps=20", "engine.base_check_every=20", "engine.base_batch=16",
                          f"engine.cache_dir={cache}", *extra]).engine


def _build(cache: str, out: str) -> None:
    built = []
    model, info = base_model.load_or_build(_tiny_engine(Path(cache)), log=built.append)
    torch.save({"state": model.state_dict(), "built": len(built)}, out)


def test_concurrent_starts_build_once_and_load_the_same_weights(tmp_path) -> None:
    cache = tmp_path / "cache"
    ctx = mp.get_context("fork")  # three trails starting at the same moment, without re-importing torch
    procs = [ctx.Process(target=_build, args=(str(cache), str(tmp_path / f"out{i}.pt"))) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    outs = [torch.load(tmp_path / f"out{i}.pt") for i in range(3)]
    assert sum(o["built"] > 0 for o in outs) == 1      # exactly one process pretrained; the others waited and loaded
    for o in outs[1:]:
        assert all(torch.equal(o["state"][k], outs[0]["state"][k]) for k in o["state"])
    assert [p.name for p in cache.glob("*.pt")] == [base_model.cache_path(_tiny_engine(cache)).name]
    assert not list(cache.glob(".*tmp"))              # the atomic rename left no temporary file behind


def test_cache_key_follows_what_determines_the_weights(tmp_path) -> None:
    a = base_model.cache_path(_tiny_engine(tmp_path))
    assert a == base_model.cache_path(_tiny_engine(tmp_path, "engine.lr=0.5", "engine.steps=3", "seed=7"))  # RL knobs
    assert a != base_model.cache_path(_tiny_engine(tmp_path, "engine.difficulty=3"))
    assert a != base_model.cache_path(_tiny_engine(tmp_path, "engine.n_embd=32"))
    assert a != base_model.cache_path(_tiny_engine(tmp_path, "engine.base_ema=0.99"))  # another base model
    assert "base_ema" not in base_model.base_spec(_tiny_engine(tmp_path)), "off, it leaves earlier keys as they were"


def test_cache_dir_comes_from_env_when_not_configured(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "env"))
    eng = compose_trail(["tracking=none"]).engine
    assert base_model.cache_path(eng).parent == tmp_path / "env"


def test_pretraining_runs_on_build_threads_whatever_the_caller_set(tmp_path) -> None:
    # the weights depend on torch's thread count, so whoever builds the model (a sweep, a trail) builds it alike
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        base_model.pretrain(_tiny_engine(tmp_path), log=lambda _: seen.append(torch.get_num_threads()))
        assert seen and set(seen) == {base_model.BUILD_THREADS}  # every probe line, and the summary
        assert torch.get_num_threads() == 2, "the caller's thread count is restored"
    finally:
        torch.set_num_threads(before)


def test_ensure_built_says_when_another_process_holds_the_build(tmp_path) -> None:
    import fcntl
    import threading

    eng = _tiny_engine(tmp_path / "cache")
    path = base_model.cache_path(eng)
    path.parent.mkdir(parents=True)
    waited = threading.Event()
    result = {}
    with open(path.with_suffix(".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another builder (a separate open file: flock excludes it)
        builder = threading.Thread(target=lambda: result.update(info=base_model.ensure_built(
            eng, log=lambda _: None, on_wait=waited.set)))
        builder.start()
        assert waited.wait(30), "on_wait is called while the lock is held"
        assert builder.is_alive() and not path.exists(), "and the build waits for the holder"
        fcntl.flock(held, fcntl.LOCK_UN)
    builder.join(120)
    assert result["info"]["steps"] == 20 and path.exists()
    assert base_model.ensure_built(eng, log=lambda _: None) is None, "a cached model is not built again"


def test_the_base_model_is_the_moving_average_of_the_pretraining_weights(tmp_path, monkeypatch) -> None:
    """Against a naive reference: w̄ = d^T w_0 + Σ_t (1 − d) d^(T−t) w_t over the raw weights after each step."""
    snapshots = []

    class RecordingAdam(base_model.Adam):
        def step(self) -> None:
            super().step()
            snapshots.append([p.detach().double().clone() for p in self.params])

    monkeypatch.setattr(base_model, "Adam", RecordingAdam)
    eng = _tiny_engine(tmp_path, "engine.base_ema=0.9", "engine.base_target_acc=0.0")
    torch.manual_seed(int(eng.base_seed))
    init = [p.detach().double().clone() for p in base_model.TinyGPT(base_model.ModelConfig.of(eng)).parameters()]
    model, info = base_model.pretrain(eng, log=lambda _: None)
    steps, d = info["steps"], 0.9
    assert steps == len(snapshots) == 20
    want = [d ** steps * w0 for w0 in init]
    for t, weights in enumerate(snapshots, start=1):
        for i, w in enumerate(weights):
            want[i] += (1 - d) * d ** (steps - t) * w
    for got, ref in zip(model.parameters(), want, strict=True):
        assert torch.allclose(got.double(), ref, atol=1e-6)
    assert not torch.allclose(next(model.parameters()).double(), snapshots[-1][0], atol=1e-4), "not the raw weights"
