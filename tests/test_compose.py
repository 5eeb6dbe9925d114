"""Composing a sweep against one Hydra initialisation gives exactly what a full Hydra compose per trail gives."""

from __future__ import annotations

from typing import List

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from harness.errors import HarnessError
from harness.spec.compose import Composer
from harness.spec.config import register_configs
from harness.spec.resources import CONF_DIR, SWEEPS_DIR
from harness.spec.sweepspec import build_spec, expand

# extra command-line overrides laid over every shipped sweep: values, group choices, appends, in any order
EXTRA = [[], ["engine.steps=7", "backend=slurm", "backend.partition=p"], ["tracking=none", "rollout=32", "+tags=[a]"],
         ["algo.eps_clip=0.3", "engine=areal", "engine.n_nodes=1"], ["seed=5", "note=hello", "engine.threads=2"]]


def _full_compose(overrides: List[str]) -> dict:
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


@pytest.mark.parametrize("sweep", sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml")))
@pytest.mark.parametrize("extra", EXTRA, ids=lambda e: " ".join(e) or "plain")
def test_same_configs_as_a_full_compose_per_trail(sweep: str, extra: List[str]) -> None:
    jobs = expand(build_spec([sweep, *extra]))
    with Composer() as composer:
        try:
            shared = [composer.compose(job) for job in jobs]
        except HarnessError:  # a combination the harness rejects (e.g. algo=is on areal): nothing to compare
            return
    # a full compose (~0.1 s each) of the first, a middle and the last trail; every trail of the demo as shipped
    every = sweep == "demo" and not extra
    for index in range(len(jobs)) if every else sorted({0, len(jobs) // 2, len(jobs) - 1}):
        assert OmegaConf.to_container(shared[index], resolve=True) == _full_compose(jobs[index]), jobs[index]


def test_errors_are_the_same_as_a_full_compose() -> None:
    for bad in (["engine.stepz=3"], ["algo=nope"], ["stale=abc"], ["stale=1,2"], ["engine=areal", "engine.steps=3"]):
        with pytest.raises(HarnessError) as shared:
            with Composer() as composer:
                composer.compose(["algo=m2po"])
                composer.compose(bad)
        with pytest.raises(Exception) as full:
            _full_compose(bad)
        assert type(shared.value.__cause__) is type(full.value), bad
