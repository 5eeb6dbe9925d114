"""Every bad input is rejected before anything launches, with a message naming the key, the value and what is
allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.spec.compose import compose_trail
from harness.spec.validate import parse_alloc

BAD_OVERRIDES = [
    (["stale=-1"], ["'stale'", "-1", "≥ 0"]),
    (["stale=1.5"], ["'stale'", "1.5", "integer"]),
    (["stale=abc"], ["'stale'", "abc", "integer"]),
    (["alloc=d2+"], ["'alloc'", "d2+", "d<x>+d<y>"]),
    (["alloc=d0+d1"], ["'alloc'", "d0+d1", "d<x>+d<y>"]),
    (["alloc=2+1"], ["'alloc'", "2+1", "d<x>+d<y>"]),
    (["alloc=d1+d2+d3"], ["'alloc'", "d1+d2+d3"]),
    (["rollout=0"], ["'rollout'", "0", "≥ 1"]),
    (["rollout=-5"], ["'rollout'", "-5", "≥ 1"]),
    (["algo=ppo"], ["'algo'", "ppo", "grpo", "m2po"]),
    (["algo=m2po", "algo.variant=clip"], ["'algo.variant'", "clip", "paper", "areal"]),
    (["backend=k8s"], ["'backend'", "k8s", "local", "ray", "slurm"]),
    (["engine=vllm"], ["'engine'", "vllm", "embedded", "areal"]),
    (["stal=3"], ["'stal'", "stale"]),
    (["engine.stepz=3"], ["'engine.stepz'", "steps"]),
    (["backend=slurm", "backend.partitio=x"], ["'backend.partitio'", "partition"]),
    (["seed=-2"], ["'seed'", "-2"]),
    (["engine.staleness_mode=sometimes"], ["'engine.staleness_mode'", "fixed", "async"]),
    (["engine.batch_prompts=6", "engine.ppo_n_minibatches=4"], ["'engine.ppo_n_minibatches'", "divisor"]),
    (["engine.lr=0"], ["'engine.lr'", "> 0"]),
    (["tracking.live=always"], ["'tracking.live'", "always", "sweep", "trail", "off"]),
    (["tracking.live_mode=fork"], ["'tracking.live_mode'", "fork", "process", "thread"]),
    # with tracking off too: still a typo, named as one
    (["tracking.live=always", "tracking=none"], ["'tracking.live'", "always", "sweep", "trail", "off"]),
    (["tracking.live_mode=fork", "tracking=none"], ["'tracking.live_mode'", "fork", "process", "thread"]),
    (["tracking.deadline_s=0", "tracking=none"], ["'tracking.deadline_s'", "0", "seconds > 0"]),
]


@pytest.mark.parametrize("overrides,needles", BAD_OVERRIDES, ids=[" ".join(o) for o, _ in BAD_OVERRIDES])
def test_bad_override_is_rejected_with_key_value_and_allowed(overrides, needles):
    with pytest.raises(HarnessError) as info:
        compose_trail(overrides)
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} missing from: {message}"


@pytest.mark.parametrize("overrides,needles", BAD_OVERRIDES[:8], ids=[" ".join(o) for o, _ in BAD_OVERRIDES[:8]])
def test_bad_sweep_launches_nothing(overrides, needles, root: Path, capsys):
    """A sweep with one bad value among good ones fails before any run dir is written."""
    key, value = overrides[0].split("=", 1)
    good = {"stale": "1", "alloc": "d2+d1", "rollout": "96", "seed": "1"}.get(key, "1")
    rc = main(["sweep", f"{key}={good},{value}", *overrides[1:], "--root", str(root)])
    assert rc == 2
    assert not root.exists(), "a rejected sweep must not create anything"
    assert needles[0] in capsys.readouterr().err


def test_missing_sweep_file_names_known_sweeps(root: Path, capsys):
    assert main(["sweep", "sweeps/nope.yaml", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "demo" in err
    assert not root.exists()


@pytest.mark.parametrize("text,needle", [
    ("overrides: [stale=1\n", "not valid YAML"),
    ("- just a list\n", "expected a mapping"),
    ("overides: [stale=1]\n", "unknown key 'overides'"),
    ("trails: {algo: grpo}\n", "'trails' must be a list"),
    ("overrides: [stale=oops]\n", "'stale'"),
])
def test_bad_sweep_file_is_rejected(tmp_path: Path, root: Path, capsys, text: str, needle: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["sweep", str(path), "--root", str(root)]) == 2
    assert needle in capsys.readouterr().err
    assert not root.exists()


def test_detach_needs_a_cluster_backend(root: Path, capsys):
    assert main(["sweep", "stale=1", "--detach", "--root", str(root)]) == 2
    assert "--detach" in capsys.readouterr().err


def test_not_an_override_is_rejected(root: Path, capsys):
    assert main(["sweep", "demo", "stale", "--root", str(root)]) == 2
    assert "not an override" in capsys.readouterr().err


@pytest.mark.parametrize("alloc,expected", [("d2+d1", (2, 1)), ("d1+d2", (1, 2)), ("d16+d8", (16, 8))])
def test_parse_alloc(alloc: str, expected):
    assert parse_alloc(alloc) == expected


def test_good_config_has_the_axes():
    cfg = compose_trail(["stale=256", "alloc=d1+d2", "rollout=64", "algo=m2po", "seed=3"])
    assert (cfg.stale, cfg.alloc, cfg.rollout, cfg.algo.name, cfg.seed) == (256, "d1+d2", 64, "m2po", 3)
    assert cfg.algo.m2_threshold == pytest.approx(0.04)
