"""The base model cache: built once, reused by every trail, safe when several trails start at the same moment."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import torch

from harness.compose import compose_trail
from harness.engines.embedded import base_model


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


def test_cache_dir_comes_from_env_when_not_configured(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "env"))
    eng = compose_trail(["tracking=none"]).engine
    assert base_model.cache_path(eng).parent == tmp_path / "env"
